"""What a function's cold start imports (its structure; ``bench/coldstart.py`` times it).

Each function is built in a fresh interpreter as its first request builds it (the
handler module's cached ``_default_app`` or ``_default``, and ``_logger``), with the
environment a deployment gives it; the modules loaded then are what every cold start
pays for. Clients come from botocore (boto3 would bring its S3 transfer manager); Jinja2
is loaded where every request renders (sender's emails, unsubscribe's pages) and waits
for the first page elsewhere (capture answers JSON clients without one); email-validator
waits for the first address to validate; PyYAML for the first content file to read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import DeploymentConfig, Resources, function_environment
from infra.wiring import FUNCTIONS, QUEUES, TOPICS, FunctionSpec

ROOT = Path(__file__).resolve().parents[2]
# Optional heavy imports, and which of them a built function has loaded.
WATCHED = (
    "boto3",
    "s3transfer",
    "jinja2",
    "email_validator",
    "yaml",
    # Imported by Powertools' batch utility when pydantic was imported before it.
    "aws_lambda_powertools.utilities.parser",
)
LOADED_AFTER_BUILD = {
    "capture": {"yaml"},  # programs and scoring rules
    "unsubscribe": {"yaml", "jinja2"},  # scoring rules; every answer is a page
    "scheduler": set(),  # reads no content, renders nothing
    "sender": {"yaml", "jinja2"},  # programs and assets; every job renders an email
    "engagement": {"yaml"},
    "handoff": {"yaml"},
    "visits": {"yaml"},
    "admin": {"yaml"},
}
RESOURCES = Resources(
    table_name="lead-nurture",
    api_url="https://abc123.execute-api.ap-northeast-1.amazonaws.com/v1/",
    configuration_set="lead-nurture",
    queue_urls={q.name: f"https://sqs.ap-northeast-1.amazonaws.com/1/{q.name}" for q in QUEUES},
    topic_arns={t: f"arn:aws:sns:ap-northeast-1:123456789012:{t}" for t in TOPICS},
    signing_secret="a-signing-secret-for-the-test-0123456789",  # no Secrets Manager call
)
FIRST_REQUEST = """
import importlib, json, sys
module = importlib.import_module({module!r})
for name in ("_default_app", "_default", "_logger"):
    if hasattr(module, name):
        getattr(module, name)()
print(json.dumps(sorted(sys.modules)))
"""


def modules_after_build(spec: FunctionSpec) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(
        function_environment(spec, DeploymentConfig(), RESOURCES),
        AWS_DEFAULT_REGION="ap-northeast-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        # Nothing is called when a function is built; were it, it would fail here.
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    module = spec.handler.rpartition(".")[0]
    result = subprocess.run(  # noqa: S603 - this interpreter, our code
        [sys.executable, "-c", FIRST_REQUEST.format(module=module)],
        cwd=ROOT,  # first on sys.path: this checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_a_function_built_for_its_first_request_loads_only_the_heavy_modules_it_uses(
    spec: FunctionSpec,
) -> None:
    modules = modules_after_build(spec)

    assert "botocore.client" in modules  # its clients were created
    assert {m for m in WATCHED if m in modules} == LOADED_AFTER_BUILD[spec.name]


def test_every_function_of_the_wiring_is_listed() -> None:
    assert set(LOADED_AFTER_BUILD) == {spec.name for spec in FUNCTIONS}

"""What a function's cold start imports (its structure; ``bench/coldstart.py`` times it).

Each function is built in a fresh interpreter as its first request builds it (the
handler module's cached ``_default_app`` or ``_default``, and ``_logger``), from the code
asset the Lambda build stages, with the environment a deployment gives it; the modules
loaded then are what every cold start pays for. Clients come from botocore (boto3 would
bring its S3 transfer manager); Jinja2 is loaded where every request renders (sender's
emails, unsubscribe's pages) and waits for the first page elsewhere (capture answers
JSON clients without one); email-validator waits for the first address to validate;
PyYAML is never loaded: the content comes with its documents parsed at build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import DeploymentConfig, Resources, function_environment
from infra.packaging import code_asset_dir
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
    "capture": set(),
    "unsubscribe": {"jinja2"},  # every answer is a page
    "scheduler": set(),
    "sender": {"jinja2"},  # every job renders an email
    "engagement": set(),
    "handoff": set(),
    "visits": set(),
    "admin": set(),
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


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function code as the Lambda build stages it (with the content snapshots)."""
    return code_asset_dir(ROOT, tmp_path_factory.mktemp("build"))


def modules_after_build(spec: FunctionSpec, asset: Path) -> set[str]:
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
        cwd=asset,  # first on sys.path: the staged code
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
    spec: FunctionSpec, asset: Path
) -> None:
    modules = modules_after_build(spec, asset)

    assert "botocore.client" in modules  # its clients were created
    assert {m for m in WATCHED if m in modules} == LOADED_AFTER_BUILD[spec.name]


def test_the_scheduler_queues_jobs_without_the_senders_code_or_the_lead_models(
    asset: Path,
) -> None:
    (scheduler,) = [spec for spec in FUNCTIONS if spec.name == "scheduler"]

    modules = modules_after_build(scheduler, asset)

    assert {"shared.domain.jobs", "shared.adapters.due"} <= modules
    senders = {
        "shared.services.sending",
        "shared.domain.email",
        "shared.domain.leads",
        "shared.adapters.leads",
    }
    assert not senders & modules


def test_every_function_of_the_wiring_is_listed() -> None:
    assert set(LOADED_AFTER_BUILD) == {spec.name for spec in FUNCTIONS}

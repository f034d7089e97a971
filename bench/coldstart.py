"""Cold start of each function next to the floor ``import boto3`` + one client.

For each function of the wiring (``infra/wiring.py``), a fresh interpreter imports the
handler module from the code as the Lambda build stages it (``infra/packaging.py``'s
code asset, made from this checkout into a folder of the run: the content files come
with their build-time JSON snapshots) and calls what its first request calls to build
the function (the module's cached ``_default_app``/``_default``, and ``_logger`` where
the handler has one): settings, clients, programs, scoring rules, templates. The time
is measured inside the child with ``time.perf_counter`` (interpreter start-up itself is
left out, as it is the same for every function), with the environment a deployed
function gets (``infra/config.py``'s ``function_environment``) and fake credentials. No
call leaves the machine: creating clients makes none, and the one call a build makes on
AWS (the signing secret from Secrets Manager) is answered in the child by a botocore
``before-send`` hook, after its client was created as on Lambda.

The floor is a fresh interpreter doing ``import boto3; boto3.client("dynamodb")``,
measured in the same run, interleaved with the functions (the order shuffled per round).
Prints the median per function, the floor and their ratio; ``--check`` exits 1 when a
ratio is above ``--limit`` (1.5). ``--stack`` adds, per function, its third-party stack
alone: a fresh interpreter importing, in the same order, every module the function
imported except the project's (``shared``, ``functions``), and creating the same clients
(and the same secret call): what the cold start would cost with none of the project's
code. ``--importtime NAME`` prints where one function's import time goes
(``python -X importtime``, summed per top-level package).

``--no-bytecode`` measures the functions as Lambda runs them when the deployment ships
no byte code: the project's packages and the layer's (the runtime dependencies less
boto3 and botocore, with what they require, as ``infra/packaging.py`` installs them) are
copied without ``__pycache__`` into a folder of the run, first on the path, and each
child compiles them from source and writes nothing (``PYTHONDONTWRITEBYTECODE``). The
standard library and boto3 and botocore, which the Lambda runtime provides compiled,
keep their byte code; the floor is boto3 alone, without the layer. By default the byte
code compiled by the warm-up is read, as from a deployment that ships it
(``infra/packaging.py``).

Run: ``make bench-coldstart`` (or ``python -m bench.coldstart --runs 15 --check``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "floor"
STACK = "+stack"  # suffix of a function's third-party stack alone (--stack)
# Modules a function should load only where a request path needs them.
WATCHED = ("boto3", "s3transfer", "jinja2", "email_validator", "yaml")
PROJECT = ("shared", "functions", "__main__")

# The child: everything after ``_started`` is the cold start being measured.
CHILD = """\
import time
_started = time.perf_counter()
{body}
_elapsed = time.perf_counter() - _started
import json, sys
print(json.dumps({{
    "ms": _elapsed * 1000,
    "modules": list(sys.modules),  # in the order they were first imported
    "services": globals().get("_services", []),
    "secret": globals().get("_secret_calls", 0) > 0,
}}))
"""

FLOOR_BODY = """\
import boto3
boto3.client("dynamodb")
"""

# Answers GetSecretValue in the child (no network), as moto does: botocore's built-in
# handlers are copied into every session, boto3's or botocore's, created afterwards. The
# services whose clients are created are noted too (for --stack).
HOOKS = """\
import botocore.handlers
from botocore.awsrequest import AWSResponse

_services, _secret_calls = [], 0

class _Raw:
    def stream(self, **_):
        yield b'{"SecretString": "bench-signing-secret-0123456789"}'

def _secret(request, **_):
    global _secret_calls
    _secret_calls += 1
    return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.1"}, _Raw())

def _client(event_name, **_):
    _services.append(event_name.split(".", 1)[1].replace("-", ""))

botocore.handlers.BUILTIN_HANDLERS.append(("before-send.secrets-manager.GetSecretValue", _secret))
botocore.handlers.BUILTIN_HANDLERS.append(("creating-client-class", _client))
"""

FUNCTION_BODY = """\
import importlib
module = importlib.import_module({module!r})
for name in ("_default_app", "_default", "_logger"):
    if hasattr(module, name):
        getattr(module, name)()
"""

# The function's third-party stack alone: its modules, its clients, its secret call.
STACK_BODY = """\
import importlib
for name in {modules!r}:
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
import botocore.session
session = botocore.session.get_session()
clients = [session.create_client(service) for service in {services!r}]
if {secret!r}:
    session.create_client("secretsmanager").get_secret_value(SecretId="signing")
"""


def environments(pycache: Path, task: Path = ROOT) -> dict[str, dict[str, str]]:
    """Each function's handler module and the environment a deployment gives it, its
    code in ``task``."""
    from infra.config import DeploymentConfig, Resources, function_environment
    from infra.wiring import FUNCTIONS, QUEUES, TOPICS

    account = "arn:aws:{}:ap-northeast-1:123456789012"
    resources = Resources(
        table_name="lead-nurture",
        api_url="https://abcdef1234.execute-api.ap-northeast-1.amazonaws.com/v1/",
        configuration_set="lead-nurture",
        queue_urls={
            q.name: f"https://sqs.ap-northeast-1.amazonaws.com/123456789012/{q.name}"
            for q in QUEUES
        },
        topic_arns={t: f"{account.format('sns')}:{t}" for t in TOPICS},
        signing_secret_arn=f"{account.format('secretsmanager')}:secret:signing-AbCdEf",
    )
    config = DeploymentConfig.from_cdk_json(ROOT / "cdk.json")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "POWERTOOLS_"))
        and k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "SIGNING_SECRET")
    }
    base.update(
        # Byte code is compiled by the warm-up run and read by the measured ones (into a
        # folder of this run: nothing is written into the checkout or the virtualenv).
        PYTHONPYCACHEPREFIX=str(pycache),
        AWS_DEFAULT_REGION="ap-northeast-1",
        AWS_REGION="ap-northeast-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - never sent anywhere
        AWS_SESSION_TOKEN="bench",  # noqa: S106
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    envs = {FLOOR: base}
    for spec in FUNCTIONS:
        module = spec.handler.rpartition(".")[0]
        envs[spec.name] = {
            **base,
            **function_environment(spec, config, resources),
            "BENCH_MODULE": module,
            "BENCH_ROOT": str(task),
        }
    return envs


def child_code(name: str, env: dict[str, str], stack: dict[str, object] | None = None) -> str:
    if name == FLOOR:
        return CHILD.format(body=FLOOR_BODY)
    if stack is not None:
        return CHILD.format(body="import sys\n" + HOOKS + STACK_BODY.format(**stack))
    return CHILD.format(body=HOOKS + FUNCTION_BODY.format(module=env["BENCH_MODULE"]))


def run_child(code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    # cwd first on sys.path (``-c``): the checkout's code (or its copy, --no-bytecode),
    # not an installed copy.
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, *flags, "-c", code],
        cwd=env.get("BENCH_ROOT", ROOT),
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def measure(code: str, env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_child(code, env).stdout.splitlines()[-1])
    return result


def stack_of(result: dict[str, Any]) -> dict[str, object]:
    """A function's third-party stack, from what one of its cold starts loaded."""
    modules = [m for m in result["modules"] if m.split(".")[0] not in PROJECT]
    return {"modules": modules, "services": result["services"], "secret": result["secret"]}


def layer_files() -> dict[Path, Path]:
    """The installed files of the layer's distributions: the runtime dependencies less
    what the Lambda runtime provides, and what they require (extras left out)."""
    from infra.packaging import layer_requirements

    pending = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in layer_requirements()]
    seen: set[str] = set()
    files: dict[Path, Path] = {}  # installed file -> its path in the layer
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement of another Python version
        files |= {Path(str(dist.locate_file(f))): Path(f) for f in dist.files or ()}
        required = [r for r in dist.requires or () if "extra ==" not in r]
        pending += [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in required]
    return files


def without_bytecode(envs: dict[str, dict[str, str]], folder: Path) -> dict[str, dict[str, str]]:
    """The environments of --no-bytecode: the project and the layer's packages copied
    into ``folder`` without byte code, nothing written by the children."""
    task, layer = folder / "task", folder / "layer"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    staged = Path(envs[next(n for n in envs if n != FLOOR)]["BENCH_ROOT"])
    for package in ("functions", "shared"):
        shutil.copytree(staged / package, task / package, ignore=ignore)
    for path, relative in layer_files().items():
        inside = relative.parts and relative.parts[0] != ".."  # not a script in bin/
        if inside and path.suffix != ".pyc" and path.is_file():
            copy = layer / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
    changed = {}
    for name, env in envs.items():
        env = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if name != FLOOR:  # the floor: boto3 of the runtime, no layer
            env.update(PYTHONPATH=str(layer), BENCH_ROOT=str(task))
        changed[name] = env
    return changed


def importtime(name: str, env: dict[str, str], top: int) -> str:
    """Where one cold start's import time goes, per top-level package (self times)."""
    stderr = run_child(child_code(name, env), env, "-X", "importtime").stderr
    per_package: dict[str, int] = defaultdict(int)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, module = (part.strip() for part in line[len("import time:") :].split("|"))
        per_package[module.split(".")[0]] += int(self_us)
    rows = sorted(per_package.items(), key=lambda kv: -kv[1])[:top]
    total = sum(per_package.values())
    lines = [f"{name}: {total / 1000:.1f} ms importing, heaviest packages (self time):"]
    lines += [f"  {package:<28} {us / 1000:8.1f} ms" for package, us in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per function")
    parser.add_argument("--limit", type=float, default=1.5, help="largest ratio --check allows")
    parser.add_argument("--check", action="store_true", help="exit 1 if a ratio is above limit")
    parser.add_argument("--only", nargs="*", default=None, help="these functions only")
    parser.add_argument("--stack", action="store_true", help="also each function's stack alone")
    parser.add_argument("--importtime", metavar="NAME", help="where NAME's import time goes")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--no-bytecode", action="store_true", help="project and layer compiled at every start"
    )
    args = parser.parse_args(argv)

    from infra.packaging import code_asset_dir

    with tempfile.TemporaryDirectory(prefix="coldstart-") as workdir:
        args.workdir = Path(workdir) / "sources"
        task = code_asset_dir(ROOT, Path(workdir) / "build")
        return run(args, environments(Path(workdir) / "pycache", task))


def run(args: argparse.Namespace, envs: dict[str, dict[str, str]]) -> int:
    if args.importtime:
        env = envs[args.importtime]
        measure(child_code(args.importtime, env), env)  # warm-up: compiles byte code
        print(importtime(args.importtime, env, args.top))
        return 0
    names = [n for n in envs if n != FLOOR and (args.only is None or n in args.only)]
    codes = {name: child_code(name, envs[name]) for name in [FLOOR, *names]}
    loaded: dict[str, set[str]] = {}
    for name in list(codes):  # warm-up, not counted: compiles byte code, fills the page cache
        result = measure(codes[name], envs[name])
        loaded[name] = {m for m in WATCHED if m in result["modules"]}
        if args.stack and name != FLOOR:
            codes[name + STACK] = child_code(name, envs[name], stack_of(result))
            envs[name + STACK] = envs[name]
            measure(codes[name + STACK], envs[name])

    if args.no_bytecode:
        envs = without_bytecode(envs, args.workdir)
        for name in codes:  # the copies into the page cache
            measure(codes[name], envs[name])

    times: dict[str, list[float]] = {name: [] for name in codes}
    rng = random.Random(0)
    for _ in range(args.runs):
        order = list(codes)
        rng.shuffle(order)
        for name in order:
            times[name].append(float(measure(codes[name], envs[name])["ms"]))

    median = {name: statistics.median(values) for name, values in times.items()}
    floor = median[FLOOR]
    print(
        f"cold start: import + build in a fresh interpreter, median of {args.runs} "
        f"(Python {sys.version.split()[0]})"
        + (", project and layer without byte code" if args.no_bytecode else "")
    )
    stack_header = f" {'stack ms':>8} {'ratio':>6}" if args.stack else ""
    print(
        f"{'function':<12} {'median ms':>9} {'floor ms':>9} {'ratio':>6}{stack_header}"
        f"  loaded of {', '.join(WATCHED)}"
    )
    failed = []
    for name in [*names, FLOOR]:
        ratio = median[name] / floor
        if ratio > args.limit:
            failed.append(name)
        stack = ""
        if args.stack:
            own = median.get(name + STACK, median[name])
            stack = f" {own:8.1f} {own / floor:6.2f}"
        watched = ", ".join(sorted(loaded[name])) or "-"
        mark = "  > limit" if ratio > args.limit else ""
        print(f"{name:<12} {median[name]:9.1f} {floor:9.1f} {ratio:6.2f}{stack}  {watched}{mark}")
    print('floor: import boto3; boto3.client("dynamodb")')
    if args.stack:
        print("stack: the same third-party imports, clients and secret call, no project code")
    if args.check and failed:
        print(f"above {args.limit}x the floor: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

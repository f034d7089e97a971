"""Lambda code and dependency layer, built without Docker.

The function code (``functions/`` + ``shared/`` with its content files) is staged
into ``build/lambda/code``, each YAML content file with its document parsed into JSON
beside it (``shared/yamlfile.py``: a cold start reads that and never imports PyYAML);
third-party wheels for Linux arm64 / CPython 3.13 are installed by pip into
``build/lambda/layer/python``, exactly as ``requirements/layer.lock`` pins them, each
file checked against its hashes (``make lock`` writes the lock from pyproject.toml, see
``infra/locks.py``). Both steps are skipped when their input has not changed, so
repeated synths stay fast and never race a concurrent synth that is still hashing the
same directory.

Both ship byte code compiled by a CPython of the Lambda runtime's version. Lambda's
file system is read-only: without ``.pyc`` files every cold start compiles every module
it imports from source. The files are hash-based and unchecked (PEP 552): the asset is
zipped with fixed timestamps, so timestamp-based files would not match their sources
and would be ignored, and a deployment never changes its sources, so nothing needs
checking. Paths inside are those of the deployment (``/var/task``, ``/opt/python``),
so the assets are the same from any checkout. Where no such interpreter is found
(``LAMBDA_PYTHON_EXE``, ``python3.13`` on the PATH, or pyenv's), the build warns and
ships sources only.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from shared.yamlfile import write_snapshot

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "lambda"

# What the code asset holds: importable packages, by their top-level folder.
CODE_PACKAGES = ("functions", "shared")
IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")

LAMBDA_PYTHON = "3.13"
# manylinux2014 is what most wheels are tagged with; 2_28 lets pip also take wheels
# built only for newer glibc (the Lambda Python 3.13 runtime, AL2023, has 2.34).
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# The same wheels, as uv names the target when it writes the layer's lock.
LAMBDA_UV_PLATFORM = "aarch64-manylinux_2_28"
# Already in the Lambda Python runtime; shipping our own would only add weight.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore"})
# layer_requirements() pinned for the Lambda runtime, with hashes (infra/locks.py).
LAYER_LOCK = ROOT / "requirements" / "layer.lock"

STAMP = ".stamp"
# Part of the code asset's fingerprint: how its content snapshots are made.
CONTENT_SNAPSHOTS = "content:yaml.json"
# Where Lambda puts the function code and the layer's python/ folder.
TASK_ROOT = "/var/task"
LAYER_PYTHON = "/opt/python"


def code_asset_dir(root: Path = ROOT, build_dir: Path = BUILD_DIR) -> Path:
    """Stage the function code and return the asset directory."""
    target = build_dir / "code"
    sources = [root / name for name in CODE_PACKAGES if (root / name).is_dir()]
    interpreter = lambda_interpreter()
    fingerprint = _hash(
        _tree_fingerprint(sources, root) + CONTENT_SNAPSHOTS + _bytecode_tag(interpreter)
    )
    if _is_current(target, fingerprint):
        return target
    with _build_lock(build_dir):
        if not _is_current(target, fingerprint):
            staging = _fresh_dir(build_dir / "code.staging")
            for source in sources:
                shutil.copytree(
                    source, staging / source.name, ignore=shutil.ignore_patterns(*IGNORED)
                )
            for content in sorted(staging.glob("*/content/**/*.yaml")):
                write_snapshot(content)
            compile_bytecode(interpreter, staging, TASK_ROOT)
            _publish(staging, target, fingerprint)
    return target


def dependency_layer_dir(lock: Path = LAYER_LOCK, build_dir: Path = BUILD_DIR) -> Path:
    """Install the locked runtime dependencies for Lambda arm64 and return the layer root.

    The layer root holds ``python/``, the folder Lambda adds to ``sys.path``.
    """
    target = build_dir / "layer"
    interpreter = lambda_interpreter()
    pinned = lock.read_text()  # versions and hashes: a new lock is a new layer
    fingerprint = _hash(
        json.dumps([pinned, LAMBDA_PYTHON, LAMBDA_PLATFORMS, _bytecode_tag(interpreter)])
    )
    if _is_current(target, fingerprint):
        return target
    with _build_lock(build_dir):
        if not _is_current(target, fingerprint):
            staging = _fresh_dir(build_dir / "layer.staging")
            _pip_install(lock, staging / "python")
            compile_bytecode(interpreter, staging / "python", LAYER_PYTHON)
            _publish(staging, target, fingerprint)
    return target


@functools.cache
def lambda_interpreter() -> str | None:
    """A CPython of ``LAMBDA_PYTHON`` on this machine, to compile byte code with."""
    candidates = [os.environ.get("LAMBDA_PYTHON_EXE"), shutil.which(f"python{LAMBDA_PYTHON}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{LAMBDA_PYTHON}.*/bin/python{LAMBDA_PYTHON}"))
    version = "import sys; print('%d.%d' % sys.version_info[:2])"
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run(  # noqa: S603 - an interpreter asked for its version
                [candidate, "-c", version], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        if found.returncode == 0 and found.stdout.strip() == LAMBDA_PYTHON:
            return candidate
    warnings.warn(
        f"no Python {LAMBDA_PYTHON} found (set LAMBDA_PYTHON_EXE): the Lambda code and layer "
        "ship without byte code, and every cold start compiles what it imports",
        stacklevel=2,
    )
    return None


def compile_bytecode(interpreter: str | None, directory: Path, deployed_at: str) -> None:
    """Unchecked hash-based ``.pyc`` files beside every module in ``directory``, which
    Lambda will hold at ``deployed_at`` (see the module's docstring)."""
    if interpreter is None:
        return
    command = [
        interpreter, "-m", "compileall",
        "-q",
        "-j", "0",
        "--invalidation-mode", "unchecked-hash",
        "-s", str(directory),
        "-p", deployed_at,
        str(directory),
    ]  # fmt: skip
    subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell


def _bytecode_tag(interpreter: str | None) -> str:
    return f"bytecode:{LAMBDA_PYTHON}:unchecked-hash" if interpreter else "sources only"


def layer_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``[project].dependencies`` less what the Lambda runtime already provides: what
    ``requirements/layer.lock`` pins."""
    with pyproject.open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return sorted(dep for dep in dependencies if _project_name(dep) not in PROVIDED_BY_RUNTIME)


def _project_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a project name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()  # PEP 503 normalisation


def _pip_install(lock: Path, target: Path) -> None:
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    command = [
        sys.executable, "-m", "pip", "install",
        *platforms,
        "--python-version", LAMBDA_PYTHON,
        "--implementation", "cp",
        "--only-binary=:all:",
        "--require-hashes",
        # The lock holds every package the layer needs. pip would evaluate the packages'
        # own dependency markers for the Python running the build, not for 3.13.
        "--no-deps",
        # pip would compile with this interpreter; compile_bytecode uses the Lambda one.
        "--no-compile",
        "--disable-pip-version-check",
        "--quiet",
        "--target", str(target),
        "--requirement", str(lock),
    ]  # fmt: skip
    subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell
    # Console scripts are useless in a layer.
    shutil.rmtree(target / "bin", ignore_errors=True)


def _tree_fingerprint(sources: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for source in sources:
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(root)
            ignored = any(fnmatch(part, pattern) for part in relative.parts for pattern in IGNORED)
            if path.is_file() and not ignored:
                digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _is_current(target: Path, fingerprint: str) -> bool:
    stamp = target.parent / f"{target.name}{STAMP}"
    return target.is_dir() and stamp.is_file() and stamp.read_text() == fingerprint


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _publish(staging: Path, target: Path, fingerprint: str) -> None:
    # The stamp sits beside the asset, not in it, so it never changes the asset hash.
    stamp = target.parent / f"{target.name}{STAMP}"
    stamp.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    stamp.write_text(fingerprint)


@contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    """Serialise builds between processes (e.g. pytest-xdist workers)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

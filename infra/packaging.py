"""Lambda code and dependency layer, built without Docker.

The function code (``functions/`` + ``shared/`` with its content files) is staged
into ``build/lambda/code``; third-party wheels for Linux arm64 / CPython 3.13 are
installed by pip into ``build/lambda/layer/python``. Both steps are skipped when
their input has not changed, so repeated synths stay fast and never race a
concurrent synth that is still hashing the same directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "lambda"

# What the code asset holds: importable packages, by their top-level folder.
CODE_PACKAGES = ("functions", "shared")
IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")

LAMBDA_PYTHON = "3.13"
# manylinux2014 is what most wheels are tagged with; 2_28 lets pip also take wheels
# built only for newer glibc (the Lambda Python 3.13 runtime, AL2023, has 2.34).
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Already in the Lambda Python runtime; shipping our own would only add weight.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore"})

STAMP = ".stamp"


def code_asset_dir(root: Path = ROOT, build_dir: Path = BUILD_DIR) -> Path:
    """Stage the function code and return the asset directory."""
    target = build_dir / "code"
    sources = [root / name for name in CODE_PACKAGES if (root / name).is_dir()]
    fingerprint = _tree_fingerprint(sources, root)
    if _is_current(target, fingerprint):
        return target
    with _build_lock(build_dir):
        if not _is_current(target, fingerprint):
            staging = _fresh_dir(build_dir / "code.staging")
            for source in sources:
                shutil.copytree(
                    source, staging / source.name, ignore=shutil.ignore_patterns(*IGNORED)
                )
            _publish(staging, target, fingerprint)
    return target


def dependency_layer_dir(
    pyproject: Path = ROOT / "pyproject.toml", build_dir: Path = BUILD_DIR
) -> Path:
    """Install the runtime dependencies for Lambda arm64 and return the layer root.

    The layer root holds ``python/``, the folder Lambda adds to ``sys.path``.
    """
    target = build_dir / "layer"
    requirements = layer_requirements(pyproject)
    fingerprint = _hash(json.dumps([requirements, LAMBDA_PYTHON, LAMBDA_PLATFORMS], sort_keys=True))
    if _is_current(target, fingerprint):
        return target
    with _build_lock(build_dir):
        if not _is_current(target, fingerprint):
            staging = _fresh_dir(build_dir / "layer.staging")
            _pip_install(requirements, staging / "python")
            _publish(staging, target, fingerprint)
    return target


def layer_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``[project].dependencies`` less what the Lambda runtime already provides."""
    with pyproject.open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return sorted(dep for dep in dependencies if _project_name(dep) not in PROVIDED_BY_RUNTIME)


def _project_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a project name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()  # PEP 503 normalisation


def _pip_install(requirements: Sequence[str], target: Path) -> None:
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    command = [
        sys.executable, "-m", "pip", "install",
        *platforms,
        "--python-version", LAMBDA_PYTHON,
        "--implementation", "cp",
        "--only-binary=:all:",
        # Byte-code compiled here would be for this interpreter, not the Lambda one.
        "--no-compile",
        "--disable-pip-version-check",
        "--quiet",
        "--target", str(target),
        *requirements,
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

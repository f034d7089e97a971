"""The lock files: every package pinned, with its hashes, written from pyproject.toml.

- ``requirements/dev.lock``: what ``pip install -e '.[dev]'`` would install, resolved
  once for every Python the project supports (3.11+) and every platform, the
  differences carried by environment markers. ``make install`` installs it with
  ``--require-hashes``, then the project itself without dependencies.
- ``requirements/layer.lock``: ``[project].dependencies`` less what the Lambda runtime
  provides, resolved for the functions' runtime (CPython 3.13 on Linux arm64, wheels
  only), with the dev lock's versions, so the tests run the versions Lambda runs.
  ``infra/packaging.py`` builds the dependency layer from it.

``make lock`` runs this module (``python -m infra.locks --uv PATH [uv options]``). The
locks are written by uv's ``uv pip compile``: it resolves for a Python and a platform
other than the one running it, and for all of them at once, which pip-compile
(pip-tools) cannot, since it resolves for the interpreter it runs in. uv is a tool for
updating the locks, installed by ``make lock`` at a pinned version, not a dependency of
the project. A lock's pinned versions are kept while they still satisfy pyproject.toml;
``--upgrade`` or ``--upgrade-package NAME`` (passed on to uv) moves them.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from infra import packaging
from infra.packaging import LAMBDA_PYTHON, LAMBDA_UV_PLATFORM, PROVIDED_BY_RUNTIME, ROOT

# Paths in the repository, as the locks' headers and annotations name them.
DEV_LOCK = Path("requirements") / "dev.lock"
LAYER_LOCK = packaging.LAYER_LOCK.relative_to(ROOT)

# Every lock: hashes for pip's --require-hashes, and a header naming the command to
# run again rather than uv's own command line.
COMMON = (
    "--generate-hashes",
    "--custom-compile-command", "make lock",
    "--no-python-downloads",
    "--quiet",  # the lock, not also a copy of it on the terminal
)  # fmt: skip


def dev_lock_command(uv: str, options: Sequence[str] = ()) -> list[str]:
    """The dev environment: the runtime dependencies and the ``dev`` extra, any Python
    3.11+ (``requires-python``), any platform."""
    return [
        uv, "pip", "compile", "pyproject.toml",
        "--extra", "dev",
        "--universal",
        *COMMON,
        "--output-file", str(DEV_LOCK),
        *options,
    ]  # fmt: skip


def layer_lock_command(uv: str, excludes: Path, options: Sequence[str] = ()) -> list[str]:
    """The Lambda layer: the runtime dependencies less ``excludes`` (the packages the
    runtime provides), for the Lambda runtime, at the dev lock's versions."""
    return [
        uv, "pip", "compile", "pyproject.toml",
        "--excludes", str(excludes),
        "--constraints", str(DEV_LOCK),
        "--python-version", LAMBDA_PYTHON,
        "--python-platform", LAMBDA_UV_PLATFORM,
        "--no-build",  # wheels only, as the layer build installs them
        *COMMON,
        "--output-file", str(LAYER_LOCK),
        *options,
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.locks",
        description="Write requirements/dev.lock and requirements/layer.lock from pyproject.toml."
        " Other options go to `uv pip compile` (e.g. --upgrade, --upgrade-package NAME).",
    )
    parser.add_argument("--uv", default="uv", help="the uv executable (default: uv)")
    args, options = parser.parse_known_args(argv)
    (ROOT / DEV_LOCK).parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        excludes = Path(scratch) / "provided-by-runtime.txt"
        excludes.write_text("".join(f"{name}\n" for name in sorted(PROVIDED_BY_RUNTIME)))
        for command in (
            dev_lock_command(args.uv, options),
            layer_lock_command(args.uv, excludes, options),
        ):
            subprocess.run(command, cwd=ROOT, check=True)  # noqa: S603 - fixed argv, no shell
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Lambda code staging and the dependency layer build, without Docker."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from infra import packaging

pytestmark = pytest.mark.infra

PYPROJECT = """
[project]
name = "x"
dependencies = ["boto3>=1.35", "pydantic>=2.7,<3", "Jinja2>=3.1", "aws_lambda_powertools>=3"]
"""


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "functions" / "capture").mkdir(parents=True)
    (root / "functions" / "capture" / "handler.py").write_text("def lambda_handler(e, c): ...\n")
    (root / "shared" / "content" / "programs").mkdir(parents=True)
    (root / "shared" / "__init__.py").write_text("")
    (root / "shared" / "content" / "programs" / "welcome.yaml").write_text("steps: []\n")
    (root / "shared" / "__pycache__").mkdir()
    (root / "shared" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    return root


def staged_files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_code_asset_holds_the_packages_and_their_content_only(
    source_root: Path, tmp_path: Path
) -> None:
    asset = packaging.code_asset_dir(source_root, tmp_path / "build")
    assert staged_files(asset) == {
        "functions/capture/handler.py",
        "shared/__init__.py",
        "shared/content/programs/welcome.yaml",
    }


def test_code_asset_follows_edits_and_deletions(source_root: Path, tmp_path: Path) -> None:
    build = tmp_path / "build"
    packaging.code_asset_dir(source_root, build)
    (source_root / "shared" / "content" / "programs" / "welcome.yaml").unlink()
    (source_root / "shared" / "scoring.py").write_text("RULES = ()\n")
    asset = packaging.code_asset_dir(source_root, build)
    assert staged_files(asset) == {
        "functions/capture/handler.py",
        "shared/__init__.py",
        "shared/scoring.py",
    }


def test_layer_leaves_out_what_the_runtime_provides(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)
    assert packaging.layer_requirements(pyproject) == [
        "Jinja2>=3.1",
        "aws_lambda_powertools>=3",
        "pydantic>=2.7,<3",
    ]


def test_layer_is_built_once_per_dependency_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installs: list[list[str]] = []

    def fake_install(requirements: Sequence[str], target: Path) -> None:
        installs.append(list(requirements))
        target.mkdir(parents=True)
        (target / "marker.py").write_text("")

    monkeypatch.setattr(packaging, "_pip_install", fake_install)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)
    build = tmp_path / "build"

    layer = packaging.dependency_layer_dir(pyproject, build)
    assert (layer / "python" / "marker.py").is_file()
    packaging.dependency_layer_dir(pyproject, build)
    assert len(installs) == 1  # the stamp matched: no second install

    pyproject.write_text(PYPROJECT.replace('"Jinja2>=3.1", ', ""))
    packaging.dependency_layer_dir(pyproject, build)
    assert len(installs) == 2
    assert "Jinja2>=3.1" not in installs[-1]


def test_pip_targets_lambda_arm64_python_313(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))
    packaging._pip_install(["pydantic>=2.7,<3"], tmp_path / "python")
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[4:6] == ["--platform", "manylinux2014_aarch64"]
    for flag, value in [("--python-version", "3.13"), ("--implementation", "cp")]:
        assert command[command.index(flag) + 1] == value
    assert "--only-binary=:all:" in command
    assert command[-1] == "pydantic>=2.7,<3"
    assert command[command.index("--target") + 1] == str(tmp_path / "python")

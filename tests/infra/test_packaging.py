"""Lambda code staging and the dependency layer build, without Docker."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from infra import packaging
from shared.yamlfile import parse_yaml, read_yaml

pytestmark = pytest.mark.infra
ROOT = Path(__file__).resolve().parents[2]

PYPROJECT = """
[project]
name = "x"
dependencies = ["boto3>=1.35", "pydantic>=2.7,<3", "Jinja2>=3.1", "aws_lambda_powertools>=3"]
"""
LOCK = """\
jinja2==3.1.6 \\
    --hash=sha256:85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67
    # via x (pyproject.toml)
markupsafe==3.0.2 \\
    --hash=sha256:ee55d3edf80167e48ea11a923c7386f4669df67d7994554387f84e7d8b0a2bf0
    # via jinja2
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


@pytest.fixture
def this_python(monkeypatch: pytest.MonkeyPatch) -> str:
    """Byte code compiled by this interpreter, as if it were the Lambda runtime's."""
    version = "{}.{}".format(*sys.version_info[:2])
    monkeypatch.setattr(packaging, "LAMBDA_PYTHON", version)
    monkeypatch.setattr(packaging, "lambda_interpreter", lambda: sys.executable)
    return version


def staged_files(directory: Path) -> set[str]:
    """The files of an asset, byte code left out."""
    return {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def bytecode_files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("__pycache__/*")}


def test_code_asset_holds_the_packages_and_their_content_only(
    source_root: Path, tmp_path: Path
) -> None:
    asset = packaging.code_asset_dir(source_root, tmp_path / "build")
    assert staged_files(asset) == {
        "functions/capture/handler.py",
        "shared/__init__.py",
        "shared/content/programs/welcome.yaml",
        "shared/content/programs/welcome.yaml.json",  # its document, parsed at build
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
        "shared/domain/scoring.py",
    }


def test_the_shipped_content_reads_the_same_from_its_build_snapshots(tmp_path: Path) -> None:
    asset = packaging.code_asset_dir(ROOT, tmp_path / "build")

    files = sorted((asset / "shared" / "content").rglob("*.yaml"))
    assert files
    for staged in files:
        source = ROOT / staged.relative_to(asset)
        assert (staged.parent / f"{staged.name}.json").is_file()
        assert read_yaml(staged) == parse_yaml(source)


def test_content_that_json_cannot_hold_fails_the_build(source_root: Path, tmp_path: Path) -> None:
    content = source_root / "shared" / "content" / "programs" / "welcome.yaml"
    content.write_text("starts: 2026-04-01\n")  # a date, not text

    with pytest.raises(ValueError, match=r"welcome\.yaml: content must hold JSON.s types"):
        packaging.code_asset_dir(source_root, tmp_path / "build")


def test_code_asset_ships_byte_code_that_lambda_loads_without_its_sources(
    source_root: Path, tmp_path: Path, this_python: str
) -> None:
    asset = packaging.code_asset_dir(source_root, tmp_path / "build")

    tag = sys.implementation.cache_tag
    assert bytecode_files(asset) == {
        f"functions/capture/__pycache__/handler.{tag}.pyc",
        f"shared/__pycache__/__init__.{tag}.pyc",
    }
    pyc = asset / "functions" / "capture" / "__pycache__" / f"handler.{tag}.pyc"
    header = pyc.read_bytes()[:16]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, not checked
    # Lambda's copy of the source has other timestamps, even other bytes: it is not read.
    handler = asset / "functions" / "capture" / "handler.py"
    handler.write_text("raise RuntimeError('compiled again from source')\n")
    spec = importlib.util.spec_from_file_location("staged_handler", handler)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.lambda_handler)
    # Paths in the code are where Lambda holds it, not this checkout's.
    assert b"/var/task/functions/capture/handler.py" in pyc.read_bytes()
    assert str(tmp_path).encode() not in pyc.read_bytes()


def test_layer_ships_byte_code_for_its_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, this_python: str
) -> None:
    def fake_install(lock: Path, target: Path) -> None:
        (target / "pkg").mkdir(parents=True)
        (target / "pkg" / "__init__.py").write_text("VALUE = 1\n")

    monkeypatch.setattr(packaging, "_pip_install", fake_install)
    lock = tmp_path / "layer.lock"
    lock.write_text(LOCK)

    layer = packaging.dependency_layer_dir(lock, tmp_path / "build")

    pyc = layer / "python" / "pkg" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    assert b"/opt/python/pkg/__init__.py" in pyc.read_bytes()


def test_assets_are_built_again_when_byte_code_can_be_compiled(
    source_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = tmp_path / "build"
    monkeypatch.setattr(packaging, "lambda_interpreter", lambda: None)
    asset = packaging.code_asset_dir(source_root, build)
    assert bytecode_files(asset) == set()  # sources only, as the warning said

    monkeypatch.setattr(packaging, "LAMBDA_PYTHON", "{}.{}".format(*sys.version_info[:2]))
    monkeypatch.setattr(packaging, "lambda_interpreter", lambda: sys.executable)
    asset = packaging.code_asset_dir(source_root, build)
    assert bytecode_files(asset)


def test_byte_code_is_compiled_by_a_python_of_the_lambda_runtime() -> None:
    interpreter = packaging.lambda_interpreter()
    if interpreter is None:
        pytest.skip(f"no Python {packaging.LAMBDA_PYTHON} on this machine")
    version = subprocess.run(  # noqa: S603 - the interpreter the build found
        [interpreter, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.strip() == str(tuple(int(n) for n in packaging.LAMBDA_PYTHON.split(".")))


def test_layer_leaves_out_what_the_runtime_provides(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)
    assert packaging.layer_requirements(pyproject) == [
        "Jinja2>=3.1",
        "aws_lambda_powertools>=3",
        "pydantic>=2.7,<3",
    ]


def test_layer_is_built_once_per_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installs: list[str] = []

    def fake_install(lock: Path, target: Path) -> None:
        installs.append(lock.read_text())
        target.mkdir(parents=True)
        (target / "marker.py").write_text("")

    monkeypatch.setattr(packaging, "_pip_install", fake_install)
    lock = tmp_path / "layer.lock"
    lock.write_text(LOCK)
    build = tmp_path / "build"

    layer = packaging.dependency_layer_dir(lock, build)
    assert (layer / "python" / "marker.py").is_file()
    packaging.dependency_layer_dir(lock, build)
    assert len(installs) == 1  # the stamp matched: no second install

    lock.write_text(LOCK.replace("markupsafe==3.0.2", "markupsafe==3.0.3"))
    packaging.dependency_layer_dir(lock, build)
    assert len(installs) == 2
    assert "markupsafe==3.0.3" in installs[-1]


def test_pip_installs_the_lock_for_lambda_arm64_python_313(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))
    packaging._pip_install(packaging.LAYER_LOCK, tmp_path / "python")
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[4:6] == ["--platform", "manylinux2014_aarch64"]
    for flag, value in [
        ("--python-version", "3.13"),
        ("--implementation", "cp"),
        ("--requirement", str(ROOT / "requirements" / "layer.lock")),
        ("--target", str(tmp_path / "python")),
    ]:
        assert command[command.index(flag) + 1] == value
    # Wheels only, each checked against the lock's hashes, no package the lock leaves out.
    assert {"--only-binary=:all:", "--require-hashes", "--no-deps"} <= set(command)

"""The lock files agree with pyproject.toml (``make lock`` writes them: infra/locks.py).

Read from the files alone, without the network: every dependency pyproject.toml
declares is pinned in the lock that installs it, at a version its specifier allows,
with the hashes pip's ``--require-hashes`` checks. A failure here means: run
``make lock`` and commit the locks.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from infra.locks import DEV_LOCK
from infra.packaging import LAMBDA_PYTHON, LAYER_LOCK, PROVIDED_BY_RUNTIME, ROOT
from infra.packaging import layer_requirements as layer_build_requirements

PYPROJECT = ROOT / "pyproject.toml"
# How uv names pyproject.toml in a lock's "# via" annotations.
DECLARED = "lead-nurture (pyproject.toml)"
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
HASH = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: tuple[str, ...]
    via: frozenset[str]  # what asked for the package, as the lock's annotations say

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        (specifier,) = self.requirement.specifier
        return Version(specifier.version)

    def applies_to(self, environment: dict[str, str]) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(environment)


def read_lock(path: Path) -> dict[str, list[Pin]]:
    """A requirements file as uv writes it: one entry per pinned package (one per
    marker where versions differ), its hashes, then its ``# via`` lines."""
    entries: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            entries.append([line])
        elif entries:
            entries[-1].append(line)
    pins: dict[str, list[Pin]] = {}
    for entry in entries:
        code = " ".join(
            line.strip().removesuffix("\\") for line in entry if not line.lstrip().startswith("#")
        )
        comments = [line.strip().lstrip("#").strip() for line in entry if line.strip()[:1] == "#"]
        pin = Pin(
            requirement=Requirement(code.split(" --hash=")[0]),
            hashes=tuple(re.findall(r"--hash=(\S+)", code)),
            via=frozenset(c.removeprefix("via").strip() for c in comments) - {""},
        )
        pins.setdefault(pin.name, []).append(pin)
    return pins


def linux(python: str, machine: str = "x86_64") -> dict[str, str]:
    """Marker values of CPython ``python`` on Linux."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
    }


def pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def dev_requirements() -> list[Requirement]:
    """What ``pip install -e '.[dev]'`` asks for."""
    project = pyproject()
    return [
        Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    ]


def layer_requirements() -> list[Requirement]:
    """What the layer ships: the runtime dependencies less what Lambda provides."""
    return [Requirement(r) for r in layer_build_requirements(PYPROJECT)]


LOCKS = {"dev": ROOT / DEV_LOCK, "layer": LAYER_LOCK}


@pytest.mark.parametrize("lock", LOCKS.values(), ids=LOCKS.keys())
def test_every_package_in_a_lock_is_pinned_to_one_version_with_hashes(lock: Path) -> None:
    pins = [pin for pins in read_lock(lock).values() for pin in pins]

    assert pins
    for pin in pins:
        (specifier,) = pin.requirement.specifier
        assert specifier.operator == "==", pin.requirement
        assert not specifier.version.endswith(".*"), pin.requirement
        assert pin.hashes, f"{pin.requirement}: no hash"
        assert all(HASH.fullmatch(h) for h in pin.hashes), pin.requirement


@pytest.mark.parametrize(
    ("lock", "declared"),
    [(LOCKS["dev"], dev_requirements), (LOCKS["layer"], layer_requirements)],
    ids=LOCKS.keys(),
)
def test_a_lock_pins_what_pyproject_declares_at_versions_it_allows(
    lock: Path, declared: Callable[[], list[Requirement]]
) -> None:
    pins = read_lock(lock)
    requirements = declared()

    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert pins.get(name), f"{name} is not in {lock.name}: run make lock"
        for pin in pins[name]:
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{lock.name} pins {pin.requirement}, pyproject.toml asks {requirement}:"
                " run make lock"
            )
    # Nothing is left pinned as pyproject's own after pyproject dropped it.
    listed_as_declared = {name for name, entries in pins.items() if DECLARED in entries[0].via}
    declared_names = {canonicalize_name(r.name) for r in requirements}
    assert listed_as_declared == declared_names, f"{lock.name}: run make lock"


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_dev_lock_gives_each_supported_python_one_version_of_each_dependency(
    python: str, machine: str
) -> None:
    assert SpecifierSet(pyproject()["requires-python"]).contains(f"{python}.0")
    pins = read_lock(ROOT / DEV_LOCK)
    environment = linux(python, machine)

    for requirement in dev_requirements():
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        applying = [pin.version for pin in pins.get(name, []) if pin.applies_to(environment)]
        assert len(applying) == 1, f"{name} on Python {python}: {applying}"


def test_the_layer_is_resolved_for_the_lambda_runtime_alone() -> None:
    pins = read_lock(LAYER_LOCK)

    assert not PROVIDED_BY_RUNTIME & pins.keys()  # the runtime's own copy is used
    for name, versions in pins.items():
        assert len(versions) == 1, name
        assert versions[0].requirement.marker is None, versions[0].requirement


def test_the_layer_ships_the_versions_the_tests_run() -> None:
    dev = read_lock(ROOT / DEV_LOCK)
    lambda_runtime = linux(LAMBDA_PYTHON, "aarch64")

    for name, (pin,) in read_lock(LAYER_LOCK).items():
        in_dev = [p.version for p in dev.get(name, []) if p.applies_to(lambda_runtime)]
        assert in_dev == [pin.version], f"{name}: layer {pin.version}, dev {in_dev}"

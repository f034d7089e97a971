"""Parametrizes the fault suite from what each path does today.

Each scenario runs once fault-free at collection (per process; deterministic), which
lists the AWS calls its first attempt makes; every call × position × kind becomes a
case, and the cases the scenario lists as known failures are strict xfails. A scenario
that cannot run at all gets no cases rather than stopping the collection of the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.faults.injector import Call, Fault, faults_for
from tests.faults.runs import control
from tests.faults.scenarios import SCENARIOS, Scenario


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    fault: Fault

    def __str__(self) -> str:
        return f"{self.scenario.name}-{self.fault}"


def cases() -> list[Case]:
    return [
        Case(scenario, fault) for scenario in SCENARIOS for fault in faults_for(_calls(scenario))
    ]


def _calls(scenario: Scenario) -> list[Call]:
    """The calls of the scenario's fault-free run; none if it cannot run at all (then
    test_the_fault_free_run_does_what_the_path_is_for fails and says why)."""
    try:
        return list(control(scenario.name).calls)
    except Exception:
        return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        params = []
        for case in cases():
            known = case.scenario.known_failure(str(case.fault))
            marks = [pytest.mark.xfail(strict=True, reason=known.reason)] if known else []
            params.append(pytest.param(case, id=str(case), marks=marks))
        metafunc.parametrize("case", params)
    if "scenario" in metafunc.fixturenames:
        metafunc.parametrize("scenario", SCENARIOS, ids=str)

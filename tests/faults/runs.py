"""Running a scenario: fault-free (the control, which also lists the path's calls) or with
one fault in the first attempt, followed by the normal retries.

Every run of a scenario starts from the same state: the scenario's ``prepare`` runs once
per process and moto's backends are kept (``MotoState``), with the clock and the trigger.
Ids are drawn from a seeded generator, the same in every run.
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from moto import mock_aws

from tests.faults.injector import Call, Fault
from tests.faults.scenarios import SCENARIOS, Scenario
from tests.faults.snapshot import Snapshot, take
from tests.faults.system import MotoState, provisioned_system, repeatable_ids, restored_system
from tests.faults.triggers import Trigger

# A retry without faults that still fails will fail again: a few are plenty.
RETRIES = 3


@dataclass(frozen=True)
class Start:
    """A scenario's state before the first attempt."""

    state: MotoState
    at: datetime
    trigger: Trigger


@dataclass(frozen=True)
class Run:
    calls: tuple[Call, ...]  # the first attempt's calls, in order
    fired: bool  # the fault's call was made (and failed)
    first_attempt_done: bool  # nothing was left to retry after the first attempt
    retries: int
    converged: bool  # nothing left to retry at the end
    snapshot: Snapshot


@cache
def workdir() -> Path:
    """Files a scenario needs (the CLI's list), for the process's lifetime."""
    path = Path(tempfile.mkdtemp(prefix="lead-nurture-faults-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@cache
def start(name: str) -> Start:
    scenario = scenario_named(name)
    with mock_aws(), repeatable_ids():
        system = provisioned_system()
        folder = workdir() / name
        folder.mkdir(exist_ok=True)
        trigger = scenario.prepare(system, folder)
        return Start(MotoState.save(), system.clock.now(), copy.deepcopy(trigger))


def run(scenario: Scenario, fault: Fault | None = None) -> Run:
    begin = start(scenario.name)
    with mock_aws(), repeatable_ids(seed=1):
        system = restored_system(begin.state, begin.at)
        trigger = copy.deepcopy(begin.trigger)
        with system.injector.armed_with(fault) as calls:
            done = trigger.attempt(system)
        first_done, fired, retries = done, system.injector.fired, 0
        while not done and retries < RETRIES:
            retries += 1
            done = trigger.attempt(system)
        scenario.settle(system)
        return Run(tuple(calls), fired, first_done, retries, done, take(system))


@cache
def control(name: str) -> Run:
    """The scenario without faults, once per process (it is deterministic)."""
    return run(scenario_named(name))


def scenario_named(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)

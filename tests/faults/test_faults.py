"""Fault injection on every write path: each AWS call fails in turn, then the normal retry.

For each path (``scenarios.SCENARIOS``: form posts, a list import, an event's
registration, attendance list and cancellation, the scheduler's tick,
the sender, every SES event type, a qualifying click, the hand-off, sales feedback,
opt-out, erasure) the suite runs the path once without faults, which lists the AWS calls
its first attempt makes. Then, for every call, it fails that call once, either before it
takes effect (throttling, 5xx, no connection) or after it (5xx, read timeout: the service
applied it and the answer was lost; reads before only, with 5xx and no connection). It
retries as AWS or the caller would (SQS redelivers the failed records once their
visibility timeout is over, the stream retries the batch, the browser or the operator
sends the same request again, the scheduler's invocation is retried), lets the system go
on as it would (later ticks, the sender's queue) and compares what is left with the
fault-free run: profiles, timeline items by kind, consent, send and event records, report
counters, the emails SES sent and the messages sales received (``snapshot``). Some
invariants are also checked on their own: one profile per address, at most one email per
lead and step, every email sent recorded (an email_sent activity, a send record 'sent',
in recent_sends), one hand-off per qualification.

Reading a failure: the case id is ``<path>-<service>.<Operation>#<n>-<position>-<kind>``;
``send-sesv2.SendEmail#1-after-5xx`` is the send path's first SendEmail, applied by SES and
answered with a 5xx. The message lists each broken invariant, then each difference from
the fault-free run (``activity:form_submitted: 2, fault-free 1``, ``counter COUNTER#<day>
stage new>lead = 0, fault-free 1``). A faulted run's log (the exception the function
logged) is in the captured output. Cases that fail today are strict xfails listed with
their scenario (``Known``, with the broken invariant): when a fix makes one pass it fails
as XPASS(strict), and its entry should go. When a path's calls change, its cases follow;
a ``Known`` pattern that matches no case any more fails
``test_every_known_failure_names_a_case``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from tests.faults.conftest import Case, cases
from tests.faults.runs import control, run
from tests.faults.scenarios import SCENARIOS, Scenario
from tests.faults.snapshot import differences


def test_a_fault_then_the_retry_leaves_what_the_fault_free_run_leaves(case: Case) -> None:
    # Given the path's state before, when one of its calls fails in the first attempt
    faulted = run(case.scenario, case.fault)
    assert faulted.fired, f"{case.fault.call} was not made: the path's calls changed"

    # then the retries get through
    assert faulted.converged, f"still failing after {faulted.retries} retries"
    # and every invariant holds, with what the fault-free run left
    baseline = control(case.scenario.name).snapshot
    problems = faulted.snapshot.violations + differences(
        baseline, faulted.snapshot, case.scenario.tolerated
    )
    assert not problems, "\n".join(problems)


def test_the_fault_free_run_does_what_the_path_is_for(scenario: Scenario) -> None:
    baseline = control(scenario.name)
    assert baseline.calls
    assert baseline.first_attempt_done
    assert baseline.snapshot.violations == []
    scenario.expect(baseline.snapshot)


def test_every_known_failure_names_a_case() -> None:
    faults: dict[str, list[str]] = {}
    for case in cases():
        faults.setdefault(case.scenario.name, []).append(str(case.fault))
    stale = [
        f"{scenario.name}: {pattern}"
        for scenario in SCENARIOS
        if scenario.name in faults  # else its fault-free run fails, and says why
        for entry in scenario.known
        for pattern in entry.patterns
        if not any(fnmatchcase(fault, pattern) for fault in faults.get(scenario.name, []))
    ]
    assert not stale, f"known failures that name no case (the path's calls changed): {stale}"

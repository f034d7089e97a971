"""The scheduler's tick (shared.services.due_scheduling) on the in-memory due index: the
use case alone, without a table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.domain.clock import FixedClock
from shared.domain.jobs import JobKind, SendJob
from shared.domain.leads import ConsentState, Enrolment, Stage
from shared.ports import Revision
from shared.services.due_scheduling import DueScheduler
from tests.builders import a_lead
from tests.fakes import InMemoryDueIndex, InMemoryLeads

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


class Queue:
    def __init__(self) -> None:
        self.jobs: list[SendJob] = []

    def enqueue(self, jobs: Sequence[SendJob]) -> None:
        self.jobs.extend(jobs)


def test_a_tick_queues_each_due_step_and_review_once_and_leases_them() -> None:
    leads = InMemoryLeads()
    consent = ConsentState(opted_in=True, at=NOW, wording_version="v1")
    step = Enrolment(
        program_id="welcome", enrolled_at=NOW, step_id="case_study", due_at=NOW - timedelta(1)
    )
    sending = a_lead(email="a@example.co.jp", consent=consent, enrolment=step)
    reviewed = a_lead(
        email="b@example.co.jp", stage=Stage.CUSTOMER, review_at=NOW - timedelta(hours=1)
    )
    later = a_lead(
        email="c@example.co.jp",
        consent=consent,
        enrolment=step.model_copy(update={"due_at": NOW + timedelta(hours=1)}),
    )
    for lead in (sending, reviewed, later):
        leads.revise(lead.lead_id, lambda _, lead=lead: Revision(lead))  # type: ignore[misc]
    queue = Queue()
    scheduler = DueScheduler(InMemoryDueIndex(leads), queue, FixedClock(NOW))

    first = scheduler.tick()
    again = scheduler.tick()  # within the lease: nothing is queued twice

    assert (first.due, first.leased, first.queued) == (2, 2, 2)
    assert (again.due, again.queued) == (0, 0)
    kinds = {job.lead_id: job.kind for job in queue.jobs}
    assert kinds == {sending.lead_id: JobKind.SEND, reviewed.lead_id: JobKind.REVIEW}
    (send,) = [job for job in queue.jobs if job.kind is JobKind.SEND]
    assert (send.program_id, send.step_id) == ("welcome", "case_study")

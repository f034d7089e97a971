"""The jobs on the send queue: a step to send, or a lead's review, each its own kind."""

from __future__ import annotations

import json

import pytest

from shared.domain.jobs import REVIEW, DueLead, JobKind, NotASendJob, SendJob

LEAD = "0123456789abcdef0123456789abcdef"


def test_a_due_lead_under_review_becomes_a_review_job_not_a_program_step() -> None:
    review = SendJob.of(DueLead(LEAD, "2026-12-03T00:05:00Z", REVIEW, None))
    assert review == SendJob.review(LEAD)
    assert review.kind is JobKind.REVIEW
    assert json.loads(review.to_json()) == {"kind": "review", "lead_id": LEAD}
    send = SendJob.of(DueLead(LEAD, "2026-12-03T01:00:00Z", "welcome", "case_study"))
    assert (send.kind, send.program_id, send.step_id) == (JobKind.SEND, "welcome", "case_study")
    assert json.loads(send.to_json()) == {
        "lead_id": LEAD,
        "program_id": "welcome",
        "step_id": "case_study",
    }


@pytest.mark.parametrize(
    "job",
    [
        SendJob(LEAD, "welcome", "case_study"),
        SendJob(LEAD, "event", None, event_id="dx-webinar-2027-01"),
        SendJob.review(LEAD),
    ],
)
def test_a_job_reads_back_as_it_was_queued(job: SendJob) -> None:
    assert SendJob.from_json(job.to_json()) == job


def test_a_review_queued_before_reviews_had_a_kind_still_reads_as_one() -> None:
    legacy = json.dumps({"lead_id": LEAD, "program_id": REVIEW, "step_id": None})
    assert SendJob.from_json(legacy) == SendJob.review(LEAD)


@pytest.mark.parametrize(
    "body",
    [
        '{"kind": "review"}',
        '{"kind": "purge", "lead_id": "x", "program_id": "welcome"}',
        '{"lead_id": "x"}',
        "[]",
        "not json",
    ],
)
def test_what_is_not_a_job_is_refused(body: str) -> None:
    with pytest.raises(NotASendJob):
        SendJob.from_json(body)

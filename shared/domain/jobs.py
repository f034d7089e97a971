"""The jobs on the send queue: what the scheduler queues and the sender takes, one per
due lead. A job is of one of two kinds: ``send`` (the lead's next step, to send or
decide) or ``review`` (the lead's review: dormancy, or a customer's rank on the day it
changes; ``shared.services.lifecycle.LeadReview``).

A module of its own, with the due lead the scheduler reads from the due index, so that
the scheduler, which only queues jobs, does not import the sender's use case
(``shared.services.sending``) and everything that renders and sends an email.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.domain.malformed import MalformedRecord

# The due index's program id of a lead due for its review (not a valid program id).
REVIEW = "@review"


class JobKind(StrEnum):
    SEND = "send"
    REVIEW = "review"


@dataclass(frozen=True)
class SendJob:
    lead_id: str
    program_id: str  # "" for a review
    step_id: str | None  # None: the job is to decide a branch (and send if due)
    # An event program's job: the event whose registration holds the enrolment.
    event_id: str | None = None
    kind: JobKind = JobKind.SEND

    @classmethod
    def review(cls, lead_id: str) -> SendJob:
        return cls(lead_id, "", None, kind=JobKind.REVIEW)

    @classmethod
    def of(cls, lead: DueLead) -> SendJob:
        """The job for a lead the due index found due."""
        if lead.program_id == REVIEW:
            return cls.review(lead.lead_id)
        return cls(lead.lead_id, lead.program_id, lead.step_id)

    def to_json(self) -> str:
        if self.kind is JobKind.REVIEW:
            return json.dumps({"kind": self.kind.value, "lead_id": self.lead_id})
        data: dict[str, Any] = {
            "lead_id": self.lead_id,
            "program_id": self.program_id,
            "step_id": self.step_id,
        }
        if self.event_id is not None:
            data["event_id"] = self.event_id  # a nurture job reads as it always has
        return json.dumps(data)

    @classmethod
    def from_json(cls, body: str) -> SendJob:
        try:
            data: Any = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise NotASendJob("body is not JSON") from exc
        if not isinstance(data, dict):
            raise NotASendJob("not a JSON object")
        # A review queued before reviews had a kind of their own names the due index's
        # program id for them.
        if data.get("kind") == JobKind.REVIEW or data.get("program_id") == REVIEW:
            lead_id = data.get("lead_id")
            if not isinstance(lead_id, str) or not lead_id:
                raise NotASendJob("no lead_id")
            return cls.review(lead_id)
        if data.get("kind", JobKind.SEND) != JobKind.SEND:
            raise NotASendJob(f"unknown kind {data.get('kind')!r}")
        lead_id, program_id, step_id = (data.get(k) for k in ("lead_id", "program_id", "step_id"))
        if not all(isinstance(v, str) and v for v in (lead_id, program_id)):
            raise NotASendJob("no lead_id or program_id")
        if step_id is not None and not isinstance(step_id, str):
            raise NotASendJob("step_id is not a string")
        event_id = data.get("event_id")
        if event_id is not None and not isinstance(event_id, str):
            raise NotASendJob("event_id is not a string")
        return cls(str(lead_id), str(program_id), step_id, event_id)


class NotASendJob(MalformedRecord):
    """The message is not a send job (a poison message)."""


@dataclass(frozen=True)
class DueLead:
    lead_id: str
    due_at: str  # as stored in the index, so a lease can be conditional on it
    program_id: str
    step_id: str | None

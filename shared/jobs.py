"""The send job: what the scheduler queues and the sender takes, one per due lead.

A module of its own, with the due lead the scheduler reads from the due index, so that
the scheduler, which only queues jobs, does not import the sender's use case
(``shared.delivery``) and everything that renders and sends an email.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

# The due index's program id for a dormancy review (not a valid program id).
REVIEW = "@review"


@dataclass(frozen=True)
class SendJob:
    lead_id: str
    program_id: str
    step_id: str | None  # None: the job is to decide a branch (and send if due)
    # An event program's job: the event whose registration holds the enrolment.
    event_id: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        if self.event_id is None:
            del data["event_id"]  # a nurture job reads as it always has
        return json.dumps(data)

    @classmethod
    def from_json(cls, body: str) -> SendJob:
        data: dict[str, Any] = json.loads(body)
        return cls(
            str(data["lead_id"]), str(data["program_id"]), data.get("step_id"), data.get("event_id")
        )


@dataclass(frozen=True)
class DueLead:
    lead_id: str
    due_at: str  # as stored in the index, so a lease can be conditional on it
    program_id: str
    step_id: str | None

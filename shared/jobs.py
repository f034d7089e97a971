"""The send job: what the scheduler queues and the sender takes, one per due lead.

A module of its own, with the due lead the scheduler reads from the due index, so that
the scheduler, which only queues jobs, does not import the sender's use case
(``shared.delivery``) and everything that renders and sends an email.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from shared.malformed import MalformedRecord

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
        try:
            data: Any = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise NotASendJob("body is not JSON") from exc
        if not isinstance(data, dict):
            raise NotASendJob("not a JSON object")
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

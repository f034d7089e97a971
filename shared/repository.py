"""The port through which the domain stores leads (DynamoDB in production, moto in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from shared.leads import Activity, Consent, Lead, Outcome, SendRecord

Record = Activity | Consent | SendRecord | Outcome


class EmailTaken(Exception):
    """Another lead already owns this address (a concurrent first post won the race)."""


class VersionConflict(Exception):
    """The lead changed since it was read; read it again and re-apply the change."""


class LeadRepository(Protocol):
    def get(self, lead_id: str) -> Lead | None: ...

    def find_by_email(self, email: str) -> Lead | None: ...

    def create(self, lead: Lead, records: Sequence[Record]) -> None:
        """Store a new lead, its email claim and its records atomically, or raise EmailTaken."""
        ...

    def replace(self, lead: Lead, expected_version: int, records: Sequence[Record]) -> None:
        """Store a changed lead and new records atomically, or raise VersionConflict."""
        ...

    def append(self, records: Sequence[Record]) -> None:
        """Store records on their own (each keyed, so writing one again is harmless)."""
        ...

    def erase(self, lead_id: str) -> bool:
        """Delete the lead's personal data, keeping only a hashed suppression of its
        address; False if there was no such lead."""
        ...

    def is_erased(self, email: str) -> bool:
        """Whether this address belonged to an erased lead (never to be mailed again)."""
        ...

    def timeline(self, lead_id: str, limit: int = 100) -> list[Activity]:
        """Newest first."""
        ...

    def history(self, lead_id: str) -> list[Activity]:
        """The whole timeline, oldest first (every page of it)."""
        ...

    def consents(self, lead_id: str) -> list[Consent]:
        """Newest first."""
        ...


class OutcomeList(Protocol):
    def outcomes(self, start: date, end: date) -> list[Outcome]:
        """Outcomes recorded from ``start`` to ``end`` (UTC days, both included), oldest
        first: one Query per month."""
        ...


class SendLedger(Protocol):
    """One record per (lead, enrolment, step): the guard that makes sends exactly-once."""

    def claim(self, lead_id: str, key: str, at: datetime) -> bool:
        """True if this caller may send; False if the step was sent or is being sent.

        The record is completed by storing a ``SendRecord`` with the lead's next write.
        """
        ...

    def release(self, lead_id: str, key: str) -> None:
        """Undo a claim whose send certainly did not happen (e.g. SES throttled it)."""
        ...


# The due index's program id for a dormancy review (not a valid program id).
REVIEW = "@review"


@dataclass(frozen=True)
class DueLead:
    lead_id: str
    due_at: str  # as stored in the index, so a lease can be conditional on it
    program_id: str
    step_id: str | None


class DueIndex(Protocol):
    shards: int

    def due(self, shard: int, now: datetime, limit: int) -> list[DueLead]:
        """Leads in ``shard`` whose step is due at or before ``now``, oldest first."""
        ...

    def lease(self, lead: DueLead, until: datetime) -> bool:
        """Move the lead's due time to ``until`` unless someone else already did."""
        ...

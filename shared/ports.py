"""The port through which the domain stores leads (DynamoDB in production, moto in tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.funnel import ReportCount
from shared.domain.guard import GuardState
from shared.domain.jobs import DueLead
from shared.domain.leads import Activity, Consent, Lead, Outcome, Seats, SendRecord, Stage
from shared.domain.machine_engagement import MailRecord

if TYPE_CHECKING:  # the hand-off's message type only: the scheduler imports these ports
    from shared.services.handoff import SalesMessage

Record = Activity | Consent | SendRecord | Outcome
# How often one change is tried again from a fresh read when another writer got there
# first (the one retry limit of every path that changes a lead).
MAX_REVISIONS = 12
# A form post's budget: a burst of posts for one address (double submits, a campaign's
# link shared in one office) must all merge, and each round commits one of them, so 50
# simultaneous posts fit with room to spare (the jittered pauses cap at 0.2 s a round).
POST_REVISIONS = 64


class UnknownLead(LookupError):
    """No lead has this id (never had, or it was erased)."""


class EmailTaken(Exception):
    """Another lead already owns this address (a concurrent first post won the race)."""


class VersionConflict(Exception):
    """The lead changed since it was read; read it again and re-apply the change."""


@dataclass(frozen=True)
class Snapshot:
    """What a change of a lead reads: the lead (None before it exists) and, for an
    email's event, that email's record of opens and clicks; for a registration of an
    event with a capacity, its seats (empty before the first)."""

    lead: Lead | None
    mail: MailRecord | None = None
    seats: Seats | None = None


@dataclass(frozen=True)
class Marker:
    """A request's dedupe key, written with the change it made (``EVENT#<key>``), so a
    retried or redelivered request finds its own earlier commit and changes nothing.

    ``window`` None: the key is seen once for good (an SES event's id, until its time to
    live); otherwise a request with the same key after ``window`` is a new one (the same
    form filled in again next week). A ``lasting`` key never expires: a purchase
    imported again a year later is still the same purchase.
    """

    key: str
    at: datetime
    window: timedelta | None = None
    lasting: bool = False  # kept for good (a purchase's order), not for days


@dataclass(frozen=True)
class Revision:
    """Everything one change of a lead records, written in one transaction: the lead (its
    version is checked and bumped by the repository), new records, the report counts the
    change causes, the email's record, an event's seats, and a note kept on the marker
    for a repeat."""

    lead: Lead
    records: Sequence[Record] = ()
    counts: Sequence[ReportCount | None] = ()
    mail: MailRecord | None = None
    seats: Seats | None = None
    note: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Revised:
    """What ``revise`` did: the lead before and after (``after`` None: nothing changed)
    and the revision's note; or ``duplicate``, with the note the earlier commit left."""

    before: Lead | None
    after: Lead | None = None
    revision: Revision | None = None
    duplicate: bool = False
    note: Mapping[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.after is not None

    @property
    def qualified(self) -> bool:
        """This change made the lead an MQL."""
        return (
            self.after is not None
            and self.after.stage is Stage.MQL
            and (self.before is None or self.before.stage is not Stage.MQL)
        )

    @property
    def opted_out(self) -> bool:
        """This change unsubscribed the lead from marketing email."""
        return (
            self.before is not None
            and self.after is not None
            and self.after.unsubscribed
            and not self.before.unsubscribed
        )


Change = Callable[[Snapshot], Revision | None]


class LeadRepository(Protocol):
    def get(self, lead_id: str) -> Lead | None: ...

    def revise(
        self,
        lead_id: str,
        change: Change,
        *,
        marker: Marker | None = None,
        mail: str | None = None,
        seats: str | None = None,
        known: Snapshot | None = None,
        error_retries: int = 0,
        max_revisions: int = MAX_REVISIONS,
    ) -> Revised:
        """The one way to change a lead: read it (with the email's record ``mail``, the
        ``seats`` of an event and the ``marker``, in one call), apply the pure ``change``,
        and write the revision with a condition on the version (and the seats' version);
        on a conflict read again and re-apply, up to ``max_revisions`` times, then raise
        ``VersionConflict``.

        The stage transition and the list-health change the revision makes to the lead
        are counted in the same write (``shared.domain.funnel.lead_counts``). A change that
        returns None writes nothing. A fresh marker found on the read makes
        the call a duplicate that writes nothing. ``known`` is a snapshot the caller read
        just before (used for the first attempt only, to save a read); a snapshot without
        a lead creates one, claiming its address (``EmailTaken`` if another lead has it).
        ``error_retries``: how often to read again and retry after the table failed to
        answer a write (which may have committed: the change must find it done), for a
        caller that holds what cannot be had again (SES's message id).
        """
        ...

    def lead_of(self, email: str) -> tuple[str | None, bool]:
        """The id of the lead that owns this address, and whether the address belonged to
        an erased lead (one read)."""
        ...

    def seats(self, event_id: str) -> Seats:
        """An event's seats as they stand (empty before its first registration)."""
        ...

    def save_seats(self, seats: Seats) -> None:
        """Write the seats alone, conditional on their version (``VersionConflict``)."""
        ...

    def find_by_email(self, email: str) -> Lead | None: ...

    def erase(self, lead_id: str) -> bool:
        """Delete the lead's personal data, keeping only a hashed suppression of its
        address; False if there was no such lead."""
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


class SalesPublisher(Protocol):
    """The sales topic (SNS): one publish per hand-off; its message id."""

    def publish(self, message: SalesMessage) -> str: ...


class HandoffLedger(Protocol):
    """The hand-off's mark (``HANDOFF#<id>`` under the lead), written after the publish."""

    def published(self, lead_id: str, handoff_id: str) -> bool: ...

    def mark_published(self, lead_id: str, handoff_id: str, message_id: str) -> None: ...


class OutcomeList(Protocol):
    def outcomes(self, start: date, end: date) -> list[Outcome]:
        """Outcomes recorded from ``start`` to ``end`` (UTC days, both included), oldest
        first: one Query per month."""
        ...


class SendLedger(Protocol):
    """One record per (lead, enrolment, step): the guard that makes sends exactly-once."""

    def claim(self, lead_id: str, key: str, at: datetime) -> SendRecord | None:
        """None if this caller may send; otherwise the step's record as found (sent,
        rejected, uncertain, or still ``sending``), read by the failed claim itself.

        The record is completed by storing a ``SendRecord`` with the lead's next write.
        """
        ...

    def release(self, lead_id: str, key: str) -> None:
        """Undo a claim whose send certainly did not happen (e.g. SES throttled it)."""
        ...


class DueIndex(Protocol):
    shards: int

    def due(self, shard: int, now: datetime, limit: int) -> list[DueLead]:
        """Leads in ``shard`` whose step is due at or before ``now``, oldest first."""
        ...

    def lease(self, lead: DueLead, until: datetime) -> bool:
        """Move the lead's due time to ``until`` unless someone else already did."""
        ...


class VariantResults(Protocol):
    """The report counters of one step's emails, by variant label, summed over the
    Japanese days from ``since`` to today (what an experiment's allocation reads)."""

    def of(self, program_id: str, step_id: str, since: date) -> Mapping[str, Mapping[str, int]]: ...


class SendingSwitch(Protocol):
    """The sending guard's state (one item), and the sends queued per Japanese day (the
    warm-up cap)."""

    def state(self) -> GuardState: ...

    def pause(self, reason: str, at: datetime, by: str) -> bool:
        """Pause, unless paused already; True if this call paused it."""
        ...

    def resume(self, at: datetime, by: str, baseline: Mapping[str, Mapping[str, int]]) -> None: ...

    def counts(self, days: Sequence[date]) -> dict[date, dict[str, int]]:
        """Each day's email counters added up over every email (``shared.domain.funnel``)."""
        ...

    def queued(self, day: date) -> int: ...

    def add_queued(self, day: date, jobs: int) -> None: ...

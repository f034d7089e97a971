"""In-memory fakes of the ports, for fast unit tests of the use cases.

Each keeps the contract of its DynamoDB adapter, and one contract suite runs against
both (``tests/integration/test_repository_contract.py``), so a use case tested on a
fake behaves the same on the table.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.adapters.codecs import lead_item
from shared.adapters.items import DUE_SHARDS
from shared.domain.clock import to_iso
from shared.domain.funnel import ReportCount, lead_counts, merged
from shared.domain.jobs import DueLead
from shared.domain.leads import Activity, Consent, Lead, Seats, SendRecord
from shared.domain.machine_engagement import MailRecord
from shared.domain.normalize import email_key
from shared.ports import (
    MAX_REVISIONS,
    Change,
    EmailTaken,
    Marker,
    Record,
    Revised,
    Snapshot,
    VersionConflict,
)

# How long a marker is kept when its request says nothing (the adapter's
# EVENT_MARKER_DAYS: SES and SQS redeliver within days).
MARKER_DAYS = 30


@dataclass
class _Marked:
    at: datetime
    note: Mapping[str, Any]
    expires: datetime | None


@dataclass
class InMemoryLeads:
    """``LeadRepository`` in a dict, with the adapter's semantics: the version checked and
    bumped, a fresh marker making a request a duplicate, the email claimed by the first
    lead, counts written with the change (``counts``: (day, counter, metric) -> total)."""

    leads: dict[str, Lead] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)  # email key -> lead id
    erased: set[str] = field(default_factory=set)  # email keys
    records: dict[str, list[Record]] = field(default_factory=dict)
    markers: dict[tuple[str, str], _Marked] = field(default_factory=dict)
    mail: dict[tuple[str, str], MailRecord] = field(default_factory=dict)
    held: dict[str, Seats] = field(default_factory=dict)
    counts: Counter[tuple[date | None, str, str]] = field(default_factory=Counter)
    sends: dict[tuple[str, str], SendRecord] = field(default_factory=dict)  # the send ledger
    leased: dict[str, datetime] = field(default_factory=dict)  # the due index's leases
    # Run before each commit (a test's concurrent writer).
    before_commit: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def get(self, lead_id: str) -> Lead | None:
        return self.leads.get(lead_id)

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
        for attempt in range(max_revisions + error_retries):
            snapshot = known if known is not None and attempt == 0 else None
            seen = None
            if snapshot is None:
                snapshot, seen = self._read(lead_id, marker, mail, seats)
            if marker is not None and seen is not None and self._fresh(seen, marker):
                return Revised(snapshot.lead, duplicate=True, note=seen.note)
            revision = change(snapshot)
            if revision is None:
                return Revised(snapshot.lead)
            before = snapshot.lead
            version = before.version + 1 if before is not None else revision.lead.version
            after = revision.lead.model_copy(update={"version": version})
            while self.before_commit:
                self.before_commit.pop(0)()
            with self._lock:
                if not self._current(lead_id, before, marker, revision.mail, revision.seats):
                    continue
                if before is None:
                    owner = self.claims.get(email_key(after.email))
                    if owner is not None:
                        raise EmailTaken(lead_id)
                    self.claims[email_key(after.email)] = lead_id
                if before is None or _content(before) != _content(after):
                    self.leads[lead_id] = after
                if marker is not None:
                    keep = marker.window or timedelta(days=MARKER_DAYS)
                    expires = None if marker.lasting else marker.at + keep
                    self.markers[lead_id, marker.key] = _Marked(marker.at, revision.note, expires)
                if revision.mail is not None:
                    self.mail[lead_id, revision.mail.message_id] = revision.mail
                if revision.seats is not None:
                    self.held[revision.seats.event_id] = revision.seats.model_copy(
                        update={"version": revision.seats.version + 1}
                    )
                self.records.setdefault(lead_id, []).extend(revision.records)
                for record in revision.records:
                    if isinstance(record, SendRecord):  # a send's record completes its claim
                        self.sends[lead_id, record.key] = record
                if before is not None and _due(before) != _due(after):
                    self.leased.pop(lead_id, None)  # the lead moved on: its entry is new
                for count in merged([*revision.counts, *lead_counts(before, after)]):
                    self._add(count)
            return Revised(before, after, revision, note=revision.note)
        raise VersionConflict(lead_id)

    def _read(
        self, lead_id: str, marker: Marker | None, mail: str | None, seats: str | None
    ) -> tuple[Snapshot, _Marked | None]:
        with self._lock:
            record = self.mail.get((lead_id, mail)) if mail is not None else None
            held = self.seats(seats) if seats is not None else None
            seen = self.markers.get((lead_id, marker.key)) if marker is not None else None
            return Snapshot(self.leads.get(lead_id), record, held), seen

    @staticmethod
    def _fresh(seen: _Marked, marker: Marker) -> bool:
        if seen.expires is not None and seen.expires < marker.at:
            return False  # expired, as DynamoDB's time to live deletes it
        return marker.window is None or seen.at >= marker.at - marker.window

    def _current(
        self,
        lead_id: str,
        before: Lead | None,
        marker: Marker | None,
        mail: MailRecord | None,
        seats: Seats | None,
    ) -> bool:
        """Whether what the change read still stands (the adapter's conditions)."""
        stored = self.leads.get(lead_id)
        if (stored.version if stored else None) != (before.version if before else None):
            return False
        if marker is not None:
            seen = self.markers.get((lead_id, marker.key))
            if seen is not None and self._fresh(seen, marker):
                return False  # another request with this key committed: read again
        if mail is not None:
            kept = self.mail.get((lead_id, mail.message_id))
            if (kept.version if kept else 0) != mail.version - 1:
                return False
        return seats is None or self.seats(seats.event_id).version == seats.version

    def _add(self, count: ReportCount) -> None:
        for metric, by in count.metrics.items():
            self.counts[count.day, count.key, metric] += by

    def bump(self, lead_id: str) -> None:
        """Another writer's change of the lead (its version only), as a lease makes one."""
        lead = self.leads[lead_id]
        self.leads[lead_id] = lead.model_copy(update={"version": lead.version + 1})

    def lead_of(self, email: str) -> tuple[str | None, bool]:
        key = email_key(email)
        return self.claims.get(key), key in self.erased

    def seats(self, event_id: str) -> Seats:
        return self.held.get(event_id) or Seats(event_id=event_id)

    def save_seats(self, seats: Seats) -> None:
        with self._lock:
            if self.seats(seats.event_id).version != seats.version:
                raise VersionConflict(seats.event_id)
            self.held[seats.event_id] = seats.model_copy(update={"version": seats.version + 1})

    def find_by_email(self, email: str) -> Lead | None:
        lead_id, _ = self.lead_of(email)
        return self.get(lead_id) if lead_id else None

    def erase(self, lead_id: str) -> bool:
        with self._lock:
            lead = self.leads.pop(lead_id, None)
            if lead is None:
                return False
            self.erased.add(email_key(lead.email))
            self.claims.pop(email_key(lead.email), None)
            self.records.pop(lead_id, None)
            for key in [k for k in self.markers if k[0] == lead_id]:
                del self.markers[key]
            for key in [k for k in self.mail if k[0] == lead_id]:
                del self.mail[key]
            if lead.rank is not None:
                self.counts[None, "customers", lead.rank.segment] -= 1
            return True

    def timeline(self, lead_id: str, limit: int = 100) -> list[Activity]:
        return list(reversed(self.history(lead_id)))[:limit]

    def history(self, lead_id: str) -> list[Activity]:
        found = [r for r in self.records.get(lead_id, []) if isinstance(r, Activity)]
        return sorted(found, key=lambda a: (a.at, a.activity_id))

    def consents(self, lead_id: str) -> list[Consent]:
        found = [r for r in self.records.get(lead_id, []) if isinstance(r, Consent)]
        return sorted(found, key=lambda c: (c.at, c.consent_id), reverse=True)

    def counted(self, key: str, *, running: bool = False) -> Counter[str]:
        """One counter summed over every day (or its running total), zeros dropped."""
        found: Counter[str] = Counter()
        for (day, counter, metric), total in self.counts.items():
            if counter == key and (day is None) == running:
                found[metric] += total
        return +found


def _content(lead: Lead) -> dict[str, Any]:
    return lead.model_dump(exclude={"version"})


def _due(lead: Lead) -> tuple[Any, ...]:
    """The lead's entry in the due index, as the adapter writes it on the profile."""
    item = lead_item(lead)
    return tuple(item.get(k) for k in ("program_id", "step_id", "due_shard", "due_at"))


@dataclass
class InMemorySendLedger:
    """``SendLedger`` on the fake's leads: a claim is a ``sending`` record, completed by
    the ``SendRecord`` the lead's next write stores."""

    leads: InMemoryLeads

    def claim(self, lead_id: str, key: str, at: datetime) -> SendRecord | None:
        with self.leads._lock:
            found = self.leads.sends.get((lead_id, key))
            if found is not None:
                return found
            record = SendRecord(lead_id=lead_id, key=key, status="sending", at=at)
            self.leads.sends[lead_id, key] = record
            return None

    def release(self, lead_id: str, key: str) -> None:
        with self.leads._lock:
            found = self.leads.sends.get((lead_id, key))
            if found is None or found.status != "sending":
                raise VersionConflict(lead_id)  # the adapter's condition fails likewise
            del self.leads.sends[lead_id, key]


@dataclass
class InMemoryDueIndex:
    """``DueIndex`` on the fake's leads: each lead's entry as the adapter derives it from
    the profile, a lease moving its due time (and the lead's version) on."""

    leads: InMemoryLeads
    shards: int = DUE_SHARDS

    def due(self, shard: int, now: datetime, limit: int) -> list[DueLead]:
        found = []
        for lead_id, lead in list(self.leads.leads.items()):
            program_id, step_id, lead_shard, due_at = _due(lead)
            if due_at is None or lead_shard != shard:
                continue
            at = self.leads.leased.get(lead_id)
            due = to_iso(at) if at is not None else str(due_at)
            if due <= to_iso(now):
                found.append(DueLead(lead_id, due, str(program_id), step_id))
        return sorted(found, key=lambda d: d.due_at)[:limit]

    def lease(self, lead: DueLead, until: datetime) -> bool:
        with self.leads._lock:
            stored = self.leads.leads.get(lead.lead_id)
            if stored is None:
                return False
            at = self.leads.leased.get(lead.lead_id)
            current = to_iso(at) if at is not None else _due(stored)[3]
            if current != lead.due_at:
                return False
            self.leads.leased[lead.lead_id] = until
            self.leads.bump(lead.lead_id)
            return True

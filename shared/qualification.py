"""Scoring events and qualifying leads: the one place a lead becomes an MQL.

Capture (form posts) and engagement (SES events) award points here; when the decayed
score and the fit grade meet the qualification rule, or on a high-intent form, the
lead's stage moves from ``lead`` to ``mql`` with a version check, so it happens once
per qualification. The table's stream carries that change to the hand-off function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shared.clock import Clock
from shared.funnel import Counters, count_transition
from shared.leads import Activity, ActivityType, Stage, new_id
from shared.machine_engagement import MailRecord
from shared.nurture import leave
from shared.repository import LeadRepository, VersionConflict
from shared.scoring import ScoringRules, Signal

TOKYO = ZoneInfo("Asia/Tokyo")
MAX_ATTEMPTS = 8
# The stages a lead can become an MQL from.
QUALIFYING_STAGES = frozenset({Stage.LEAD, Stage.DORMANT, Stage.LOST})


class ScoreStore(Counters, Protocol):
    def commit_event(self, commit: EventCommit) -> str:
        """Write the event's marker, score, cap use, counters and mail record in one
        transaction.

        Returns "committed", "duplicate" (the marker exists), "cap:<rule>" when that
        rule's daily cap has no room left, or "conflict" when the mail record changed
        since it was read (nothing was written in the last three cases).
        """
        ...

    def mail_record(self, lead_id: str, message_id: str) -> MailRecord | None:
        """One email's delivery, opens and clicks as recorded (``shared.machine_engagement``)."""
        ...

    def recorded_award(self, lead_id: str, key: str) -> dict[str, Any] | None:
        """The award details stored with an event's marker (for a redelivery)."""
        ...


@dataclass(frozen=True)
class EventCommit:
    lead_id: str
    key: str  # the event's dedupe key
    at: datetime
    units: Decimal
    engaged_at: datetime | None
    allowances: tuple[tuple[str, date, int, int], ...]  # rule, day, points, cap
    counter: ReportCount | None
    award: dict[str, Any]
    # The email's record as this event leaves it; written only if its stored version is
    # still ``mail.version - 1`` (absent for version 1).
    mail: MailRecord | None = None
    # Website page groups the event adds to the lead's (a page view's).
    page_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportCount:
    """What an event adds to one report counter item: metric -> amount (may be negative)."""

    day: date
    key: str
    metrics: Mapping[str, int]


@dataclass(frozen=True)
class Award:
    """The points an event earned, rule by rule: stored on its activity (explainable)."""

    rules: tuple[tuple[str, int], ...]

    @classmethod
    def stored(cls, details: Mapping[str, Any] | None) -> Award:
        """The award as ``as_details`` stored it (on an event's marker)."""
        rules = (details or {}).get("rules", [])
        return cls(tuple((r["rule"], int(r["points"])) for r in rules))

    @property
    def points(self) -> int:
        return sum(points for _, points in self.rules)

    def as_details(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "rules": [{"rule": rule, "points": points} for rule, points in self.rules],
        }


def business_day(at: datetime) -> date:
    """Caps and report counters count Japanese days."""
    return at.astimezone(TOKYO).date()


class ScoreKeeper:
    def __init__(
        self,
        leads: LeadRepository,
        store: ScoreStore,
        rules: ScoringRules,
        clock: Clock,
    ) -> None:
        self._leads = leads
        self._store = store
        self._rules = rules
        self._clock = clock

    @property
    def rules(self) -> ScoringRules:
        return self._rules

    def award(self, lead_id: str, signal: Signal, at: datetime, key: str | None = None) -> Award:
        """Score a form post or an opt-out once: the same path as engagement events,
        keyed by the activity that records it."""
        award, _ = self.record_event(lead_id, key or new_id(), signal, at)
        return award

    def award_activity(self, activity: Activity, signal: Signal) -> Award:
        """``award`` keyed by the activity that records it, whose details then say the
        points and the rules (written again under the same id)."""
        award = self.award(activity.lead_id, signal, activity.at, key=activity.activity_id)
        if award.rules:
            details = {**activity.details, **award.as_details()}
            self._leads.append([activity.model_copy(update={"details": details})])
        return award

    def record_event(
        self,
        lead_id: str,
        key: str,
        signal: Signal | None,
        at: datetime,
        link_tags: Iterable[str] = (),
        counter: ReportCount | None = None,
        *,
        engaged: bool | None = None,
        mail: Callable[[Award, Decimal], MailRecord] | None = None,
        taken_back: Decimal = Decimal(0),
        page_groups: tuple[str, ...] = (),
    ) -> tuple[Award, bool]:
        """Score an engagement event exactly once; (award, whether it was a duplicate).

        ``engaged`` says whether the event is engagement for dormancy (by default: it
        earned points). ``mail`` builds the email's record from the award and its units,
        to be written in the same transaction; ``taken_back`` units are subtracted there
        too (earlier clicks that turned out a machine's). A changed mail record raises
        ``VersionConflict``: read it again and redo the event. ``page_groups`` are added to
        the lead's in the same transaction (a page view's group).
        """
        rules = [
            (name, rule)
            for name, rule in (self._rules.points_for(signal, link_tags) if signal else [])
            if rule.points != 0
        ]
        day = business_day(at)
        while True:
            award = Award(tuple((name, rule.points) for name, rule in rules))
            units = sum((self._rules.units(p, at) for _, p in award.rules), Decimal(0))
            is_engaged = award.points > 0 if engaged is None else engaged
            commit = EventCommit(
                lead_id=lead_id,
                key=key,
                at=at,
                units=units - taken_back,
                engaged_at=at if is_engaged else None,
                allowances=tuple(
                    (name, day, rule.points, rule.daily_cap)
                    for name, rule in rules
                    if rule.daily_cap is not None and rule.points > 0
                ),
                counter=counter if counter is not None and counter.metrics else None,
                award=award.as_details(),
                mail=mail(award, units) if mail is not None else None,
                page_groups=page_groups,
            )
            result = self._store.commit_event(commit)
            if result == "committed":
                return award, False
            if result == "duplicate":
                return self.recorded(lead_id, key), True
            if result == "conflict":
                raise VersionConflict(lead_id)
            full = result.removeprefix("cap:")
            rules = [(name, rule) for name, rule in rules if name != full]

    def recorded(self, lead_id: str, key: str) -> Award:
        """What an event already recorded earned."""
        return Award.stored(self._store.recorded_award(lead_id, key))

    def mail_record(self, lead_id: str, message_id: str) -> MailRecord | None:
        return self._store.mail_record(lead_id, message_id)

    def count_transition(self, at: datetime, source: str, target: str) -> None:
        """The funnel's counters: one per day and stage transition (``new>lead`` too)."""
        count_transition(self._store, business_day(at), source, target)

    def qualify(self, lead_id: str, reason: str, *, high_intent: bool = False) -> bool:
        """Make the lead an MQL if it qualifies now; True if this call did it.

        Dormant leads qualify too (re-engagement lifting the score past the rule), and
        lost ones on a high-intent form only: a lost deal's score can still be above the
        rule, and any click would hand it straight back to sales.
        """
        for _ in range(MAX_ATTEMPTS):
            lead = self._leads.get(lead_id)
            if lead is None or lead.stage not in QUALIFYING_STAGES:
                return False
            if lead.stage is Stage.LOST and not high_intent:
                return False
            now = self._clock.now()
            if lead.requalify_after is not None and lead.requalify_after > now:
                return False
            result = self._rules.evaluate(lead, now)
            if not high_intent and not self._rules.qualifies(result.score, result.grade):
                return False
            enrolment = lead.enrolment
            enrolment = leave(enrolment, now, "exited:stage:mql")
            qualification = {
                "reason": reason,
                "score": result.score,
                "grade": result.grade.value,
                "fit": [{"rule": r, "points": p} for r, p in result.fit],
            }
            updated = lead.model_copy(
                update={
                    "stage": Stage.MQL,
                    "stage_changed_at": now,
                    "qualified_at": now,
                    "qualification": qualification,
                    "enrolment": enrolment,
                    "updated_at": now,
                    "version": lead.version + 1,
                }
            )
            activity = Activity(
                lead_id=lead_id,
                type=ActivityType.QUALIFIED,
                at=now,
                details={"from": lead.stage.value, "to": Stage.MQL.value, **qualification},
            )
            try:
                self._leads.replace(updated, lead.version, [activity])
            except VersionConflict:
                continue
            self.count_transition(now, lead.stage.value, Stage.MQL.value)
            return True
        raise VersionConflict(lead_id)

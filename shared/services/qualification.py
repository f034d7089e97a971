"""Scoring events and qualifying leads: the one place a lead becomes an MQL (pure).

Every path that scores (form posts, SES events, page views, opt-outs) applies
``ScoreKeeper.take`` inside its change of the lead: the points within each rule's daily
cap (kept on the lead), the decayed score, and, when the score and the fit grade meet
the qualification rule or the form is high-intent, the move from ``lead`` to ``mql``.
All of it is written in the one version-checked write of that change
(``LeadRepository.revise``), with its activity and its report counts, so it happens
exactly once. The table's stream carries the stage change to the hand-off function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.domain.funnel import business_day
from shared.domain.leads import Activity, ActivityType, Lead, Stage
from shared.domain.scoring import ScoringRules, Signal
from shared.domain.transitions import staged

# The stages a lead can become an MQL from.
QUALIFYING_STAGES = frozenset({Stage.LEAD, Stage.DORMANT, Stage.LOST})
# Days of capped points kept on the lead: today's, and yesterday's for late events.
CAP_DAYS = 2


@dataclass(frozen=True)
class Award:
    """The points an event earned, rule by rule: stored on its activity (explainable)."""

    rules: tuple[tuple[str, int], ...]

    @property
    def points(self) -> int:
        return sum(points for _, points in self.rules)

    def as_details(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "rules": [{"rule": rule, "points": points} for rule, points in self.rules],
        }


@dataclass(frozen=True)
class Taken:
    """A lead after one event's points (and qualification, if they made it an MQL)."""

    lead: Lead
    award: Award
    units: Decimal  # what the award added to the score units
    records: tuple[Activity, ...] = ()  # the qualification's activity

    @property
    def qualified(self) -> bool:
        return bool(self.records)


class ScoreKeeper:
    """The scoring rules applied to a lead: points, caps, decay and qualification."""

    def __init__(self, rules: ScoringRules) -> None:
        self._rules = rules

    @property
    def rules(self) -> ScoringRules:
        return self._rules

    def take(
        self,
        lead: Lead,
        signal: Signal | None,
        at: datetime,
        now: datetime,
        *,
        link_tags: Iterable[str] = (),
        engaged: bool | None = None,
        taken_back: Decimal = Decimal(0),
        page_groups: Iterable[str] = (),
        reason: str | None = None,
        high_intent: bool = False,
        always: bool = False,
    ) -> Taken:
        """Score an event of ``at`` on the lead, then, given a ``reason``, qualify it at
        ``now`` if the event earned points (or ``always``: a form post; ``high_intent``
        qualifies whatever the score).

        ``engaged`` says whether the event is engagement for dormancy (by default: it
        earned points); ``taken_back`` units are subtracted (earlier clicks that turned
        out a machine's); ``page_groups`` are added to the lead's (a page view's group).
        """
        day = business_day(at)
        used = _recent(lead.daily_points, day)
        earned: list[tuple[str, int]] = []
        for name, rule in self._rules.points_for(signal, link_tags) if signal else []:
            if rule.points == 0:
                continue
            if rule.daily_cap is not None and rule.points > 0:
                key = f"{day.isoformat()}#{name}"
                if used.get(key, 0) + rule.points > rule.daily_cap:
                    continue  # the rule's cap for the day is reached
                used[key] = used.get(key, 0) + rule.points
            earned.append((name, rule.points))
        award = Award(tuple(earned))
        units = sum((self._rules.units(p, at) for _, p in earned), Decimal(0))
        changes: dict[str, Any] = {"score_units": lead.score_units + units - taken_back}
        if used != lead.daily_points and earned:
            changes["daily_points"] = used  # only a scoring write updates (and prunes) it
        if award.points > 0 if engaged is None else engaged:
            last = lead.last_engaged_at
            changes["last_engaged_at"] = at if last is None or at > last else last
        groups = set(page_groups) - set(lead.page_groups)
        if groups:
            changes["page_groups"] = tuple(sorted({*lead.page_groups, *groups}))
        scored = lead.model_copy(update=changes)
        if reason is None or (award.points <= 0 and not (always or high_intent)):
            return Taken(scored, award, units)
        qualified = self.qualify(scored, now, reason, high_intent=high_intent)
        if qualified is None:
            return Taken(scored, award, units)
        moved, activity = qualified
        return Taken(moved, award, units, (activity,))

    def qualify(
        self, lead: Lead, now: datetime, reason: str, *, high_intent: bool = False
    ) -> tuple[Lead, Activity] | None:
        """The lead as an MQL and its activity, if it qualifies now (the stage change is
        counted by the write, ``shared.domain.funnel.lead_counts``).

        Dormant leads qualify too (re-engagement lifting the score past the rule), and
        lost ones on a high-intent form only: a lost deal's score can still be above the
        rule, and any click would hand it straight back to sales.
        """
        if lead.stage not in QUALIFYING_STAGES:
            return None
        if lead.stage is Stage.LOST and not high_intent:
            return None
        if lead.requalify_after is not None and lead.requalify_after > now:
            return None
        result = self._rules.evaluate(lead, now)
        if not high_intent and not self._rules.qualifies(result.score, result.grade):
            return None
        qualification = {
            "reason": reason,
            "score": result.score,
            "grade": result.grade.value,
            "fit": [{"rule": r, "points": p} for r, p in result.fit],
        }
        moved = staged(lead, Stage.MQL, now).model_copy(
            update={"qualified_at": now, "qualification": qualification}
        )
        activity = Activity(
            lead_id=lead.lead_id,
            type=ActivityType.QUALIFIED,
            at=now,
            details={"from": lead.stage.value, "to": Stage.MQL.value, **qualification},
        )
        return moved, activity


def _recent(points: Mapping[str, int], day: date) -> dict[str, int]:
    """The capped points of the last ``CAP_DAYS`` days up to ``day`` (older ones dropped)."""
    oldest = (day - timedelta(days=CAP_DAYS - 1)).isoformat()
    return {key: used for key, used in points.items() if key[:10] >= oldest}

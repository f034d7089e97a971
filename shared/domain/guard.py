"""The sending guard: nurture email pauses by itself before the bounce or complaint rate
reaches the rate at which SES reviews the account, and only an operator resumes it; and
a new sending domain's daily cap, rising over its first weeks (pure: no I/O, no AWS).

The rates are over the sends of the current and the previous Japanese day (the report
counters), counting only what happened since the last resume: the counts of those days
at the moment of the resume are kept with it and taken off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction

# The counter attributes the guard reads (``shared.domain.funnel``): sends, and what hurts the
# sender's reputation. SES's bounce rate counts hard bounces only.
GUARDED = ("sent", "uncertain", "hard_bounces", "complaints")


@dataclass(frozen=True)
class GuardLimits:
    bounce_rate: Fraction = Fraction(4, 100)
    complaint_rate: Fraction = Fraction(8, 10_000)
    min_sends: int = 500  # fewer sends say nothing about the list


@dataclass(frozen=True)
class GuardState:
    """Paused or not, why, and the counts taken off since the last resume (by day)."""

    paused: bool = False
    reason: str | None = None
    changed_at: datetime | None = None
    by: str | None = None
    baseline: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # day -> counts


@dataclass(frozen=True)
class Reputation:
    sent: int
    hard_bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> Fraction | None:
        return Fraction(self.hard_bounces, self.sent) if self.sent else None

    @property
    def complaint_rate(self) -> Fraction | None:
        return Fraction(self.complaints, self.sent) if self.sent else None


def reputation(days: Mapping[date, Mapping[str, int]], state: GuardState) -> Reputation:
    """The sends, hard bounces and complaints of the given days since the last resume."""
    totals = dict.fromkeys(GUARDED, 0)
    for day, counts in days.items():
        before = state.baseline.get(day.isoformat(), {})
        for name in GUARDED:
            totals[name] += max(int(counts.get(name, 0)) - int(before.get(name, 0)), 0)
    sent = totals["sent"] + totals["uncertain"]  # an uncertain send may have gone out
    return Reputation(sent, totals["hard_bounces"], totals["complaints"])


def breach(found: Reputation, limits: GuardLimits) -> str | None:
    """Why sending must pause, or None. Checked at the limit itself (set below SES's
    review rates), so the pause comes before SES's rate is crossed."""
    if found.sent < limits.min_sends:
        return None
    if found.bounce_rate is not None and found.bounce_rate >= limits.bounce_rate:
        return f"bounce rate {float(found.bounce_rate):.2%} of {found.sent} sends"
    if found.complaint_rate is not None and found.complaint_rate >= limits.complaint_rate:
        return f"complaint rate {float(found.complaint_rate):.3%} of {found.sent} sends"
    return None


def baseline(days: Mapping[date, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """What a resume takes off from now on: the guarded counts of the days read."""
    return {
        day.isoformat(): {name: int(counts.get(name, 0)) for name in GUARDED}
        for day, counts in days.items()
    }


@dataclass(frozen=True)
class Warmup:
    """A new domain's daily sending cap: ``daily[i]`` emails a day in week ``i`` from
    ``start``; no cap once the list is over (or with no list)."""

    start: date | None = None
    daily: Sequence[int] = ()

    def cap(self, day: date) -> int | None:
        if self.start is None or not self.daily:
            return None
        week = max((day - self.start).days, 0) // 7
        return self.daily[week] if week < len(self.daily) else None

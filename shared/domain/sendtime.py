"""Send-time optimisation: each lead's own good hours and weekdays, learned from the
opens and clicks people made (a small histogram on the lead, kept on write), move its
next email to its best slot inside the program's send window (pure: no I/O, no AWS).

A hold-out share of leads keeps the program's default times; the report compares the
two groups (``shared.domain.funnel.SENDTIME_PREFIX`` counters) to show the lift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from shared.domain.programs import SendSlot, SendTiming
from shared.domain.send_windows import WEEKDAYS, SendWindow

# What the lead's own timezone is, until leads carry one: the company's (Japan).
LEAD_ZONE = ZoneInfo("Asia/Tokyo")


class SendTimeGroup(StrEnum):
    OPTIMISED = "optimised"  # sent at the lead's best slot
    DEFAULT = "default"  # too little data yet: the program's time
    HOLDOUT = "holdout"  # kept on the program's time, to measure the lift


def engaged(
    hours: Mapping[str, int], weekdays: Mapping[str, int], at: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """The histograms with one more engagement of a person at ``at`` (local time)."""
    local = at.astimezone(LEAD_ZONE)
    hour, weekday = str(local.hour), WEEKDAYS[local.weekday()]
    return {**hours, hour: hours.get(hour, 0) + 1}, {
        **weekdays,
        weekday: weekdays.get(weekday, 0) + 1,
    }


def group_of(lead_id: str, hours: Mapping[str, int], timing: SendTiming) -> SendTimeGroup:
    if not timing.optimise:
        return SendTimeGroup.DEFAULT
    digest = hashlib.sha256(f"sendtime:{lead_id}".encode()).digest()
    if int.from_bytes(digest[:2], "big") / 65536 < timing.holdout:
        return SendTimeGroup.HOLDOUT
    if sum(hours.values()) < timing.min_engagements:
        return SendTimeGroup.DEFAULT
    return SendTimeGroup.OPTIMISED


def best_slot(
    default: datetime,
    hours: Mapping[str, int],
    weekdays: Mapping[str, int],
    window: SendWindow,
    max_delay: timedelta,
) -> datetime:
    """The start of the hour, from ``default`` up to ``max_delay`` later and inside the
    window, whose hour and weekday the lead engaged in most (hour first, weekday to break
    ties); the earliest such hour. ``default`` itself when no hour there was engaged in."""
    start = default.astimezone(LEAD_ZONE).replace(minute=0, second=0, microsecond=0)
    best, best_score = default, (0, 0)
    slot = start
    while slot <= default + max_delay:
        candidate = max(slot, default)
        if window.contains(candidate):
            score = (
                hours.get(str(slot.hour), 0),
                weekdays.get(WEEKDAYS[slot.weekday()], 0),
            )
            if score[0] > 0 and score > best_score:
                best, best_score = candidate, score
        slot += timedelta(hours=1)
    return best.astimezone(default.tzinfo)


def next_slot(default: datetime, slot: SendSlot, window: SendWindow) -> datetime:
    """The first start of ``slot.hour`` on one of ``slot.weekdays``, from ``default`` on
    and inside the window, within a week; ``default`` when there is none."""
    local = default.astimezone(window.zone)
    day = local.replace(hour=slot.hour, minute=0, second=0, microsecond=0)
    for _ in range(8):
        if day >= local and WEEKDAYS[day.weekday()] in slot.weekdays and window.contains(day):
            return day.astimezone(default.tzinfo)
        day += timedelta(days=1)
    return default

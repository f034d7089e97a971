"""Send-time optimisation's arithmetic (``shared.domain.sendtime``): the histograms, the
groups, and the best slot inside the send window."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.domain.programs import SendSlot, SendTiming
from shared.domain.send_windows import SendWindow
from shared.domain.sendtime import SendTimeGroup, best_slot, engaged, group_of, next_slot

JST = ZoneInfo("Asia/Tokyo")
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=JST)
WINDOW = SendWindow()  # Mon-Fri 09:00-18:00 JST, holidays skipped
TIMING = SendTiming(optimise=True, holdout=0.2, min_engagements=3)


def test_an_engagement_counts_in_the_leads_local_hour_and_weekday() -> None:
    at = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)  # Thursday 14:30 in Tokyo

    hours, weekdays = engaged({"14": 2}, {}, at)

    assert (hours, weekdays) == ({"14": 3}, {"thu": 1})


def test_leads_are_held_out_by_share_and_optimised_only_with_enough_data() -> None:
    ids = [f"{n:032x}" for n in range(2000)]
    groups = Counter(group_of(i, {"14": 3}, TIMING) for i in ids)

    assert 300 <= groups[SendTimeGroup.HOLDOUT] <= 500  # about 20%
    assert groups[SendTimeGroup.OPTIMISED] == 2000 - groups[SendTimeGroup.HOLDOUT]
    assert {group_of(i, {"14": 2}, TIMING) for i in ids} == {
        SendTimeGroup.HOLDOUT,
        SendTimeGroup.DEFAULT,
    }
    off = SendTiming(optimise=False)
    assert {group_of(i, {"14": 9}, off) for i in ids[:50]} == {SendTimeGroup.DEFAULT}


def test_the_best_slot_is_the_leads_hour_inside_the_window() -> None:
    hours = {"14": 3, "9": 1, "21": 5}  # 21:00 is outside the window: never chosen

    slot = best_slot(THURSDAY_10, hours, {}, WINDOW, timedelta(days=3))

    assert slot == datetime(2026, 11, 26, 14, 0, tzinfo=JST)


def test_a_weekday_the_lead_prefers_breaks_the_tie_within_the_delay_allowed() -> None:
    hours, weekdays = {"11": 2}, {"mon": 4}

    later = best_slot(THURSDAY_10, hours, weekdays, WINDOW, timedelta(days=5))
    sooner = best_slot(THURSDAY_10, hours, weekdays, WINDOW, timedelta(days=2))

    assert later == datetime(2026, 11, 30, 11, 0, tzinfo=JST)  # the next Monday
    assert sooner == datetime(2026, 11, 26, 11, 0, tzinfo=JST)  # the same day


def test_without_an_engaged_hour_in_the_window_the_default_stays() -> None:
    assert best_slot(THURSDAY_10, {"22": 5}, {}, WINDOW, timedelta(days=3)) == THURSDAY_10
    assert best_slot(THURSDAY_10, {}, {}, WINDOW, timedelta(days=3)) == THURSDAY_10


def test_the_current_hour_is_kept_from_its_default_minute() -> None:
    default = datetime(2026, 11, 26, 14, 20, tzinfo=JST)

    assert best_slot(default, {"14": 1}, {}, WINDOW, timedelta(days=1)) == default


def test_a_variants_send_time_is_its_next_weekday_and_hour_inside_the_window() -> None:
    friday_16 = SendSlot(weekdays=("fri",), hour=16)

    assert next_slot(THURSDAY_10, friday_16, WINDOW) == datetime(2026, 11, 27, 16, tzinfo=JST)
    # the same day when the hour is still ahead
    assert next_slot(THURSDAY_10, SendSlot(hour=11), WINDOW) == THURSDAY_10.replace(hour=11)
    # an hour the window never opens at: the default stays
    assert next_slot(THURSDAY_10, SendSlot(hour=20), WINDOW) == THURSDAY_10

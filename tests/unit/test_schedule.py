"""Send windows: business days and hours in the window's timezone, Japanese holidays skipped."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from shared.domain.send_windows import SendWindow

JST = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
BUSINESS = SendWindow()  # Mon-Fri 09:00-18:00 Asia/Tokyo, holidays and 年末年始 skipped


def jst(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=JST)


# -- contains ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        pytest.param(jst(2026, 11, 24, 10), True, id="Tuesday 10:00"),
        pytest.param(jst(2026, 11, 24, 9), True, id="opening instant 09:00"),
        pytest.param(jst(2026, 11, 24, 8, 59, 59), False, id="08:59:59 before hours"),
        pytest.param(jst(2026, 11, 24, 17, 59, 59), True, id="17:59:59 last second"),
        pytest.param(jst(2026, 11, 24, 18), False, id="closing instant 18:00"),
        pytest.param(jst(2026, 11, 24, 20), False, id="20:00 after hours"),
        pytest.param(jst(2026, 11, 28, 10), False, id="Saturday"),
        pytest.param(jst(2026, 11, 29, 10), False, id="Sunday"),
        pytest.param(jst(2026, 11, 23, 10), False, id="勤労感謝の日 (Monday)"),
        pytest.param(jst(2026, 5, 6, 10), False, id="振替休日 2026-05-06 (Wednesday)"),
        pytest.param(jst(2026, 5, 7, 10), True, id="day after Golden Week"),
        pytest.param(jst(2026, 9, 22, 10), False, id="国民の休日 2026-09-22 (Tuesday)"),
        pytest.param(jst(2026, 12, 28, 10), True, id="12-28 last business day"),
        pytest.param(jst(2026, 12, 29, 10), False, id="12-29 年末 (Tuesday)"),
        pytest.param(jst(2026, 12, 31, 10), False, id="12-31 (Thursday)"),
        pytest.param(jst(2027, 1, 1, 10), False, id="元日"),
        pytest.param(jst(2027, 1, 3, 10), False, id="01-03"),
        pytest.param(jst(2027, 1, 4, 10), True, id="01-04 first business day"),
    ],
)
def test_contains_follows_japanese_business_days_and_hours(moment: datetime, open_: bool) -> None:
    assert BUSINESS.contains(moment) is open_
    # the same instant given in UTC gets the same answer
    assert BUSINESS.contains(moment.astimezone(UTC)) is open_


def test_an_instant_is_judged_in_the_window_timezone_not_in_utc() -> None:
    # Tuesday 2026-11-24 00:30 UTC is 09:30 JST: open, although it is "midnight" in UTC
    assert BUSINESS.contains(datetime(2026, 11, 24, 0, 30, tzinfo=UTC))
    # Monday 2026-11-23 23:30 UTC is Tuesday 08:30 JST: before hours on a business day
    assert not BUSINESS.contains(datetime(2026, 11, 23, 23, 30, tzinfo=UTC))
    # Friday 2026-11-27 09:30 UTC is Friday 18:30 JST: closed
    assert not BUSINESS.contains(datetime(2026, 11, 27, 9, 30, tzinfo=UTC))


def test_holiday_skipping_can_be_turned_off() -> None:
    window = SendWindow(skip_public_holidays=False, skip_new_year_holidays=False)
    assert window.contains(jst(2026, 11, 23, 10))  # 勤労感謝の日
    assert window.contains(jst(2026, 12, 29, 10))  # 年末
    assert not window.contains(jst(2026, 11, 28, 10))  # still a Saturday


def test_closed_dates_are_closed_all_day() -> None:
    window = SendWindow(closed_dates=(date(2026, 8, 13), date(2026, 8, 14)))
    assert not window.contains(jst(2026, 8, 13, 10))
    assert not window.contains(jst(2026, 8, 14, 17))
    assert window.contains(jst(2026, 8, 12, 10))
    assert window.contains(jst(2026, 8, 17, 10))


# -- next_open --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(jst(2026, 11, 24, 8), jst(2026, 11, 24, 9), id="before hours: same day"),
        pytest.param(jst(2026, 11, 24, 0, 0), jst(2026, 11, 24, 9), id="midnight: same day"),
        pytest.param(jst(2026, 11, 24, 18), jst(2026, 11, 25, 9), id="at closing: next day"),
        pytest.param(jst(2026, 11, 24, 20), jst(2026, 11, 25, 9), id="20:00: next day"),
        pytest.param(jst(2026, 11, 27, 18, 30), jst(2026, 11, 30, 9), id="Friday evening"),
        pytest.param(jst(2026, 11, 28, 10), jst(2026, 11, 30, 9), id="Saturday"),
        pytest.param(jst(2026, 11, 29, 23, 59), jst(2026, 11, 30, 9), id="Sunday night"),
        pytest.param(jst(2026, 11, 23, 9, 30), jst(2026, 11, 24, 9), id="holiday Monday"),
        pytest.param(jst(2026, 11, 22, 12), jst(2026, 11, 24, 9), id="Sunday before holiday"),
        pytest.param(jst(2026, 5, 1, 19), jst(2026, 5, 7, 9), id="Golden Week incl. 振替休日"),
        pytest.param(jst(2026, 9, 18, 18), jst(2026, 9, 24, 9), id="Silver Week 国民の休日"),
        pytest.param(jst(2026, 12, 28, 18), jst(2027, 1, 4, 9), id="年末年始"),
        pytest.param(jst(2027, 1, 8, 18), jst(2027, 1, 12, 9), id="成人の日 Monday"),
    ],
)
def test_next_open_is_the_next_opening_instant(moment: datetime, expected: datetime) -> None:
    assert BUSINESS.next_open(moment) == expected
    assert BUSINESS.contains(BUSINESS.next_open(moment))
    # nothing in between is open: the window was closed from moment up to the opening
    probe = moment
    while probe < expected:
        assert not BUSINESS.contains(probe), probe
        probe += timedelta(minutes=30)


def test_next_open_of_an_open_instant_is_that_instant() -> None:
    moment = jst(2026, 11, 24, 10, 17, 42)
    assert BUSINESS.next_open(moment) == moment
    assert BUSINESS.next_open(moment.astimezone(UTC)) == moment


def test_next_open_is_timezone_aware_in_the_callers_timezone() -> None:
    moment = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # holiday Monday 09:30 JST
    opening = BUSINESS.next_open(moment)
    assert opening.tzinfo is not None
    assert opening.utcoffset() == timedelta(0)
    assert opening == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # Tuesday 09:00 JST


def test_next_open_skips_closed_dates() -> None:
    window = SendWindow(closed_dates=(date(2026, 11, 25),))
    assert window.next_open(jst(2026, 11, 24, 20)) == jst(2026, 11, 26, 9)


def test_next_open_with_custom_days_and_hours() -> None:
    # re_engagement's window: Tuesday to Thursday, 10:00-17:00
    window = SendWindow(weekdays=("tue", "wed", "thu"), start=time(10), end=time(17))
    assert window.next_open(jst(2026, 11, 26, 17)) == jst(2026, 12, 1, 10)  # Thu -> Tue
    assert window.next_open(jst(2026, 11, 24, 9, 59)) == jst(2026, 11, 24, 10)
    assert not window.contains(jst(2026, 11, 27, 12))  # Friday


def test_another_timezone_uses_its_own_clock_and_daylight_saving() -> None:
    window = SendWindow(
        timezone="America/New_York",
        start=time(9),
        end=time(17),
        skip_public_holidays=False,
        skip_new_year_holidays=False,
    )
    # Monday 2026-11-23 23:00 UTC is 18:00 EST: closed; opens Tuesday 09:00 EST = 14:00 UTC
    monday_evening = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert not window.contains(monday_evening)
    assert window.next_open(monday_evening) == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    # Tuesday 10:00 JST is Monday 20:00 EST: closed in New York whatever Tokyo says
    assert not window.contains(jst(2026, 11, 24, 10))
    # after the switch to daylight saving (2026-03-08), 09:00 EDT is 13:00 UTC
    sunday = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert window.next_open(sunday) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert window.next_open(sunday).astimezone(NEW_YORK).time() == time(9)


def test_a_window_that_never_opens_is_reported() -> None:
    window = SendWindow(
        weekdays=("sat",),
        closed_dates=tuple(date(2026, 11, 28) + timedelta(weeks=w) for w in range(60)),
    )
    with pytest.raises(ValueError, match="never opens"):
        window.next_open(jst(2026, 11, 24, 10))


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"start": "18:00", "end": "09:00"}, id="start after end"),
        pytest.param({"start": "09:00", "end": "09:00"}, id="start equals end"),
        pytest.param({"weekdays": ["monday"]}, id="unknown weekday"),
        pytest.param({"weekdays": ["mon", "Fri"]}, id="weekday in capitals"),
        pytest.param({"weekdays": []}, id="no weekdays"),
        pytest.param({"timezone": ""}, id="empty timezone"),
        pytest.param({"start": "25:00"}, id="impossible hour"),
        pytest.param({"end": 1080}, id="unquoted YAML 18:00 (base 60)"),
        pytest.param({"skip_holidays": True}, id="unknown field"),
    ],
)
def test_invalid_windows_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SendWindow.model_validate(fields)


@pytest.mark.parametrize("zone", ["Asia/Tokio", "JST", "asia/tokyo", "../etc/passwd"])
def test_an_unknown_timezone_is_a_validation_error(zone: str) -> None:
    # ZoneInfo raises ZoneInfoNotFoundError, a KeyError, which pydantic would let through
    with pytest.raises(ValidationError, match="timezone"):
        SendWindow(timezone=zone)


def test_hours_in_yaml_style_strings_are_times() -> None:
    window = SendWindow.model_validate({"start": "10:00", "end": "17:30"})
    assert (window.start, window.end) == (time(10), time(17, 30))

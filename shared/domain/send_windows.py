"""When a nurture email may be sent: send windows in the lead's timezone.

B2B mail lands best on business days in business hours. A window names the weekdays
and hours, and by default skips Japanese public holidays (祝日, including substitute
holidays) and the New Year holidays (年末年始, 29 Dec to 3 Jan), when offices are shut.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jpholiday
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_new_year_holiday(day: date) -> bool:
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)


def is_japanese_holiday(day: date) -> bool:
    return bool(jpholiday.is_holiday(day))


class SendWindow(BaseModel):
    """Weekdays and hours (local time) in which a program may send."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Tokyo"
    weekdays: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(9, 0)
    end: time = time(18, 0)
    skip_public_holidays: bool = True
    skip_new_year_holidays: bool = True
    # Extra closed days (company holidays, 夏季休暇), as dates.
    closed_dates: tuple[date, ...] = Field(default=())

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_hours(cls, value: object) -> object:
        # Unquoted 09:00 is a number to YAML (base 60); refuse it rather than misread it.
        if isinstance(value, int | float):
            raise ValueError('write hours in quotes, e.g. "09:00"')
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} (use an IANA name: Asia/Tokyo)") from exc
        return value

    @field_validator("weekdays")
    @classmethod
    def _known_weekdays(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in value if d not in WEEKDAYS]
        if unknown or not value:
            raise ValueError(f"weekdays must be some of {WEEKDAYS}, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _hours_in_order(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError("send window start must be before its end")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open_day(self, day: date) -> bool:
        if WEEKDAYS[day.weekday()] not in self.weekdays:
            return False
        if self.skip_public_holidays and is_japanese_holiday(day):
            return False
        if self.skip_new_year_holidays and is_new_year_holiday(day):
            return False
        return day not in self.closed_dates

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return self.is_open_day(local.date()) and self.start <= local.time() < self.end

    def next_open(self, moment: datetime) -> datetime:
        """``moment`` itself if the window is open then, else the next opening."""
        if self.contains(moment):
            return moment
        local = moment.astimezone(self.zone)
        day = local.date()
        if local.time() >= self.start:
            day += timedelta(days=1)
        # A year of closed days is impossible for a valid window; bound the search anyway.
        for _ in range(400):
            if self.is_open_day(day):
                opening = datetime.combine(day, self.start, tzinfo=self.zone)
                return opening.astimezone(moment.tzinfo)
            day += timedelta(days=1)
        raise ValueError("send window never opens")

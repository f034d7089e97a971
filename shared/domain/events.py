"""Seminars and webinars as content: ``shared/content/events.yaml``.

An event has an id (what a registration form sends as ``asset`` or ``event``), a title
in Japanese and English, a start and an end (with their offset, or read in the event's
``timezone``), a venue or a URL to join, an optional capacity, and the program whose
emails its registrants get (``shared/content/programs``, ``kind: event``): a
confirmation with the event as an ``.ics`` file, reminders at times relative to the
start, and after the end a follow-up that depends on whether the lead attended.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.yamlfile import read_yaml

EVENTS_FILE = Path(__file__).parents[1] / "content" / "events.yaml"
DEFAULT_TIMEZONE = "Asia/Tokyo"
EVENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
# An invitation to the ``next`` event names one that starts at least this long after the
# email: time to read it and register.
INVITE_AHEAD = timedelta(days=2)
NEXT = "next"
# Seats are kept as a string set of lead ids on one item (about 35 bytes each): well
# inside DynamoDB's 400 KB item, however the waiting list grows beside it.
MAX_CAPACITY = 5000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Templates append the tracking parameters to site links: no query or fragment here.
_PAGE_URL = re.compile(r"(/(?!/)|https://[^/\s?#]+/?)[^\s?#]*")
_JOIN_URL = re.compile(r"https://[^/\s]+\S*")
_WEEKDAYS_JA = "月火水木金土日"


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_line(text: str) -> str:
    if _CONTROL.search(text) or text != text.strip():
        raise ValueError("one line without surrounding spaces")
    return text


class Localized(_Content):
    """A text in both languages (a title, a venue)."""

    ja: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)

    @field_validator("ja", "en")
    @classmethod
    def _line(cls, value: str) -> str:
        return _one_line(value)

    def text(self, locale: str) -> str:
        return self.en if locale == "en" else self.ja


class Event(_Content):
    id: str
    title: Localized
    # Where the event's local time is (the emails' times, a step's ``at`` hour); before
    # start and end, which are read in it when they carry no offset.
    timezone: str = DEFAULT_TIMEZONE
    start: datetime
    end: datetime
    venue: Localized | None = None  # a place: the address as the emails show it
    url: str | None = None  # online: where to join (https)
    capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)
    # The event's page: a site path (/seminars/...) or an https URL, no query.
    page: str
    materials_url: str = ""  # sent to those who attended
    recording_url: str = ""  # sent to those who registered and did not come
    # The programs whose emails registrants get, and those on the waiting list.
    program: str = "event"
    waitlist_program: str = "event_waitlist"
    # The email that confirms a cancellation (and takes the entry off the calendar).
    cancellation_program: str = "event_cancelled"

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not EVENT_ID.match(value):
            raise ValueError(f"not an event id (a-z, 0-9 and -, up to 60): {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} (use an IANA name: Asia/Tokyo)") from exc
        return value

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: datetime, info: ValidationInfo) -> datetime:
        if value.tzinfo is not None:
            return value
        return value.replace(tzinfo=ZoneInfo(info.data.get("timezone", DEFAULT_TIMEZONE)))

    @field_validator("url")
    @classmethod
    def _join_url(cls, value: str | None) -> str | None:
        if value is not None and not _JOIN_URL.fullmatch(value):
            raise ValueError(f"url must be an https URL: {value!r}")
        return value

    @field_validator("page", "materials_url", "recording_url")
    @classmethod
    def _trackable(cls, value: str) -> str:
        if value and not _PAGE_URL.fullmatch(value):
            raise ValueError(
                f"must be a site path (/...) or an https URL without ? or #: {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        if self.start >= self.end:
            raise ValueError(f"event {self.id}: start must be before end")
        if self.venue is None and self.url is None:
            raise ValueError(f"event {self.id}: give a venue or a url to join")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def online(self) -> bool:
        return self.url is not None

    def where(self, locale: str) -> str:
        """The venue, else the words for an online event."""
        if self.venue is not None:
            return self.venue.text(locale)
        return "Online" if locale == "en" else "オンライン"

    def when(self, locale: str) -> str:
        """2026年12月10日（木）14:00〜15:30 / Thursday, 10 December 2026, 14:00–15:30 (JST)."""
        start, end = self.start.astimezone(self.zone), self.end.astimezone(self.zone)
        zone = start.tzname() or self.timezone
        same_day = start.date() == end.date()
        if locale == "en":
            day = f"{start:%A}, {start.day} {start:%B %Y}"
            until = f"{end:%H:%M}" if same_day else f"{end.day} {end:%B %Y}, {end:%H:%M}"
            return f"{day}, {start:%H:%M}–{until} ({zone})"
        day = _day_ja(start)
        until = f"{end:%H:%M}" if same_day else f"{_day_ja(end)}{end:%H:%M}"
        local = "" if self.timezone == DEFAULT_TIMEZONE else f"（{zone}）"
        return f"{day}{start:%H:%M}〜{until}{local}"


def _day_ja(moment: datetime) -> str:
    return f"{moment.year}年{moment.month}月{moment.day}日（{_WEEKDAYS_JA[moment.weekday()]}）"


class EventCatalog:
    def __init__(self, events: Iterable[Event] = ()) -> None:
        self.events = tuple(sorted(events, key=lambda e: (e.start, e.id)))
        self._by_id = {e.id: e for e in self.events}

    def get(self, event_id: str | None) -> Event | None:
        return self._by_id.get(event_id) if event_id else None

    def invitation(self, invite: str, now: datetime) -> Event | None:
        """The event a nurture step invites to at ``now``: ``next`` (the first one starting
        ``INVITE_AHEAD`` or more later), or one by id while it is that far ahead."""
        ahead = now + INVITE_AHEAD
        if invite == NEXT:
            return next((e for e in self.events if e.start >= ahead), None)
        event = self.get(invite)
        return event if event is not None and event.start >= ahead else None

    def programs(self) -> set[str]:
        """The programs the events name (each must be an event program)."""
        return {p for e in self.events for p in (e.program, e.waitlist_program)}


_DOCUMENT = TypeAdapter(dict[str, dict[str, Any]])


def load_events(path: Path = EVENTS_FILE) -> EventCatalog:
    """The events, by the id forms send (the file's keys); no file, no events."""
    if not path.exists():
        return EventCatalog()
    try:
        document = _DOCUMENT.validate_python(read_yaml(path) or {})
        for event_id, fields in document.items():
            # YAML reads an unquoted time as a timestamp: the build's JSON snapshot cannot
            # hold it, and one without an offset would be taken for UTC.
            if any(isinstance(fields.get(k), date) for k in ("start", "end")):
                raise ValueError(f'{event_id}: write times in quotes, e.g. "2027-01-21T14:00"')
        return EventCatalog(
            Event.model_validate({**fields, "id": event_id})
            for event_id, fields in document.items()
        )
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


def event_view(event: Event, locale: str, site_url: str) -> dict[str, Any]:
    """What templates see of an event: every key defined, blanks as empty strings."""

    def absolute(url: str) -> str:
        return site_url + url if url.startswith("/") else url

    return {
        "id": event.id,
        "title": event.title.text(locale),
        "when": event.when(locale),
        "where": event.where(locale),
        "online": event.online,
        "join_url": event.url or "",
        "page_url": absolute(event.page),
        "materials_url": absolute(event.materials_url),
        "recording_url": absolute(event.recording_url),
    }

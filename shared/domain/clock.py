"""One source of time for every handler, so tests and the local stack can move it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, the local stack's time travel)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        self._now += by
        return self._now

    def set(self, to: datetime) -> None:
        self._now = to


class OffsetClock:
    """The system's time plus an offset that only grows (the local stack's time travel).

    Unlike ``FixedClock`` it keeps running, so waits of seconds behave as on AWS while
    days can be skipped. Safe to share between the threads that run the handlers.
    """

    def __init__(self, offset: timedelta = timedelta(0), source: Clock | None = None) -> None:
        if offset < timedelta(0):
            raise ValueError("OffsetClock cannot start in the past")
        self._source = source or SystemClock()
        self._offset = offset
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset
        return self._source.now() + offset

    def advance(self, by: timedelta) -> datetime:
        """Move forward by ``by``; time never goes back (leases and sends would repeat)."""
        if by < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += by
            offset = self._offset
        return self._source.now() + offset


def to_iso(moment: datetime) -> str:
    """UTC with fixed width, so stored timestamps sort as strings (sort keys, due index)."""
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

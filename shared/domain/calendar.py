"""An event as an iCalendar file (RFC 5545), attached to a registrant's confirmation.

Written by hand with the standard library: one VEVENT in a VCALENDAR with METHOD:PUBLISH
(an entry to add, not a meeting request awaiting a reply), or METHOD:CANCEL with a higher
SEQUENCE when the registration is cancelled (the entry is taken off the calendar). Times
are UTC (``...Z``), so no VTIMEZONE is needed and every client shows them in its own
zone. Text values are escaped (RFC 5545 3.3.11), lines end in CRLF and are folded at 75
octets without splitting a UTF-8 character (3.1). The UID is stable per event and lead, so a second
confirmation (a place freed for a waiting lead) updates the same calendar entry.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from shared.domain.events import Event

PRODUCT_ID = "-//lead-nurture//events//EN"
CONTENT_TYPE = 'text/calendar; charset="utf-8"; method=PUBLISH'
CANCEL_CONTENT_TYPE = 'text/calendar; charset="utf-8"; method=CANCEL'
_LINE_OCTETS = 75


def escape(text: str) -> str:
    """A TEXT value: backslash, semicolon and comma escaped, line breaks as ``\\n``."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def fold(line: str) -> str:
    """A content line folded into lines of at most 75 octets (continuations start with a
    space, which counts), never inside a UTF-8 character."""
    data = line.encode("utf-8")
    parts: list[bytes] = []
    start, room = 0, _LINE_OCTETS
    while len(data) - start > room:
        cut = start + room
        while data[cut] & 0xC0 == 0x80:  # a continuation byte: cut before its character
            cut -= 1
        parts.append(data[start:cut])
        start, room = cut, _LINE_OCTETS - 1
    parts.append(data[start:])
    return "\r\n ".join(p.decode("utf-8") for p in parts)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def uid(event_id: str, lead_id: str, domain: str) -> str:
    digest = hashlib.sha256(f"{event_id}:{lead_id}".encode()).hexdigest()[:32]
    return f"{digest}@{domain}"


def event_ics(
    event: Event,
    lead_id: str,
    locale: str,
    now: datetime,
    domain: str,
    page_url: str,
    organizer: str | None = None,
    cancelled: bool = False,
) -> bytes:
    """The ``.ics`` file of ``event`` for one registrant, stamped ``now`` (``cancelled``:
    the update that removes it)."""
    description = [event.title.text(locale), event.when(locale)]
    if event.url:
        description.append(("Join: " if locale == "en" else "参加URL：") + event.url)
    description.append(page_url)
    # Online: the room is the join URL, which calendar apps make a link of.
    location = event.url if event.url and event.venue is None else event.where(locale)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODUCT_ID}",
        "CALSCALE:GREGORIAN",
        f"METHOD:{'CANCEL' if cancelled else 'PUBLISH'}",
        "BEGIN:VEVENT",
        f"UID:{uid(event.id, lead_id, domain)}",
        f"DTSTAMP:{stamp(now)}",
        f"DTSTART:{stamp(event.start)}",
        f"DTEND:{stamp(event.end)}",
        f"SUMMARY:{escape(event.title.text(locale))}",
        f"LOCATION:{escape(location)}",
        f"DESCRIPTION:{escape(chr(10).join(description))}",
        f"URL:{event.url or page_url}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        "TRANSP:OPAQUE",
        f"SEQUENCE:{1 if cancelled else 0}",
    ]
    if organizer:
        lines.append(f"ORGANIZER:mailto:{organizer}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode("utf-8")

"""What the tracking snippet posts to ``POST /visits``, and nothing else.

Two kinds of beacon, both a small JSON object (sent as ``text/plain`` by
``navigator.sendBeacon`` so no CORS preflight is needed):

- ``{"kind": "view", "visitor_id", "view_id", "url", "title", "referrer", "seconds"}``
  when the page is hidden (``visibilitychange``); repeats of one page view share
  ``view_id``.
- ``{"kind": "identify", "visitor_id", "ref"}`` once, when the visitor arrived through a
  nurture email's link carrying a signed lead reference (``lnr``).

Any other field, a value of the wrong type or size, or a page outside the site's own
origins is refused with field-level errors (422).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.web.forms import MalformedBody, UnsupportedMediaType, media_type
from shared.web.pages import origin_of

ACCEPTED_TYPES = frozenset({"text/plain", "application/json"})
_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_URL = 2048
MAX_TITLE = 300
MAX_SECONDS = 24 * 60 * 60

FIELDS = {
    "view": frozenset({"kind", "visitor_id", "view_id", "url", "title", "referrer", "seconds"}),
    "identify": frozenset({"kind", "visitor_id", "ref"}),
}

MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("必須項目です。", "This field is required."),
    "unknown_field": ("この項目は受け付けていません。", "This field is not accepted."),
    "invalid_kind": ("view か identify を指定してください。", "Use view or identify."),
    "invalid_id": ("32桁の16進数で指定してください。", "Use 32 lowercase hex digits."),
    "invalid_url": ("URL が正しくありません。", "This is not a valid http(s) URL."),
    "origin_not_allowed": (
        "このサイトのページではありません。",
        "This page is not on a site allowed to report visits.",
    ),
    "invalid_title": ("タイトルが正しくありません。", "The title is too long or not text."),
    "invalid_seconds": (
        "0〜86400 の秒数で指定してください。",
        "Use a number of seconds from 0 to 86400.",
    ),
    "invalid_reference": (
        "リンクの参照情報が正しくありません。",
        "The link reference is not valid.",
    ),
    "not_an_object": ("JSON オブジェクトを送ってください。", "Send one JSON object."),
}


@dataclass(frozen=True)
class BeaconError:
    field: str
    code: str

    def as_dict(self) -> dict[str, str]:
        ja, en = MESSAGES[self.code]
        return {"field": self.field, "code": self.code, "message": ja, "message_en": en}


class InvalidBeacon(Exception):
    def __init__(self, errors: Iterable[BeaconError]) -> None:
        self.errors = tuple(errors)
        super().__init__(", ".join(f"{e.field}: {e.code}" for e in self.errors))


@dataclass(frozen=True)
class ViewBeacon:
    visitor_id: str
    view_id: str
    url: str  # scheme, host and path only: no query string (it may carry the lead ref)
    path: str
    title: str
    seconds: int
    referrer: str | None


@dataclass(frozen=True)
class IdentifyBeacon:
    visitor_id: str
    ref: str


Beacon = ViewBeacon | IdentifyBeacon


def decode_beacon(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The JSON object of a beacon body; MalformedBody or UnsupportedMediaType if not."""
    if media_type(content_type) not in ACCEPTED_TYPES:
        raise UnsupportedMediaType(media_type(content_type))
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedBody("invalid_json") from exc
    if not isinstance(document, dict):
        raise InvalidBeacon([BeaconError("body", "not_an_object")])
    return document


def _page_url(value: Any) -> tuple[str, str] | None:
    """(url without query and fragment, path) of an http(s) URL, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        return None
    if not value.isprintable() or any(ch in value for ch in " \\"):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    path = parts.path or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), path


def parse_beacon(document: Mapping[str, Any], site_origins: Iterable[str]) -> Beacon:
    """The beacon, or InvalidBeacon with every problem found."""
    kind = document.get("kind")
    if kind not in FIELDS:
        raise InvalidBeacon([BeaconError("kind", "invalid_kind" if kind else "required")])
    errors = [BeaconError(name, "unknown_field") for name in document if name not in FIELDS[kind]]

    def ident(name: str) -> str:
        value = document.get(name)
        if value is None:
            errors.append(BeaconError(name, "required"))
        elif not isinstance(value, str) or not _ID.match(value):
            errors.append(BeaconError(name, "invalid_id"))
        return str(value)

    visitor_id = ident("visitor_id")
    if kind == "identify":
        ref = document.get("ref")
        if not isinstance(ref, str) or not ref or len(ref) > 100:
            errors.append(BeaconError("ref", "invalid_reference" if ref else "required"))
        if errors:
            raise InvalidBeacon(errors)
        return IdentifyBeacon(visitor_id=visitor_id, ref=str(ref))

    view_id = ident("view_id")
    allowed = {o.rstrip("/").lower() for o in site_origins}
    page = _page_url(document.get("url"))
    if page is None:
        errors.append(BeaconError("url", "required" if not document.get("url") else "invalid_url"))
    elif (origin_of(page[0]) or "").lower() not in allowed:
        errors.append(BeaconError("url", "origin_not_allowed"))
    title = document.get("title", "")
    if not isinstance(title, str) or len(title) > MAX_TITLE or not title.isprintable():
        errors.append(BeaconError("title", "invalid_title"))
    referrer_value = document.get("referrer") or None
    referrer = _page_url(referrer_value) if referrer_value is not None else None
    if referrer_value is not None and referrer is None:
        errors.append(BeaconError("referrer", "invalid_url"))
    seconds = document.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_SECONDS
    ):
        errors.append(BeaconError("seconds", "required" if seconds is None else "invalid_seconds"))
    if errors or page is None:
        raise InvalidBeacon(errors)
    return ViewBeacon(
        visitor_id=visitor_id,
        view_id=view_id,
        url=page[0],
        path=page[1],
        title=" ".join(str(title).split()),
        seconds=int(seconds),  # type: ignore[arg-type]
        referrer=referrer[0] if referrer else None,
    )

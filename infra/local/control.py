"""The local stack's own endpoints, outside the API stage: its clock and its schedules.

- ``GET  /_local``               what runs where (API, moto, queues, topics, sales inbox)
- ``GET  /_local/outbox?from=N``  the emails SES accepted, from the N-th on (500 a page)
- ``GET  /_local/clock``         the stack's time
- ``POST /_local/clock/advance`` ``{"by": "P1D"}`` (ISO-8601 duration) moves it forward
- ``POST /_local/tick``          every scheduled function once, now
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from shared.domain.clock import OffsetClock, to_iso
from shared.domain.programs import parse_duration

if TYPE_CHECKING:
    from infra.local.console.mail import SendInfo, SentMail

PREFIX = "/_local"
OUTBOX_PAGE = 500
Answer = tuple[int, list[tuple[str, str]], bytes]


def _json(status: int, body: Mapping[str, Any]) -> Answer:
    payload = json.dumps(body, ensure_ascii=False, default=str).encode()
    return status, [("Content-Type", "application/json; charset=utf-8")], payload


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def own_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values the local stack answers to: loopback names and ``host``."""
    return frozenset(f"{name}:{port}" for name in {*LOOPBACK_NAMES, host})


def refuse_foreign_host(headers: Mapping[str, str], hosts: Collection[str]) -> Answer | None:
    """A 403 for a request under a host name that is not the stack's own: a web page
    whose name was re-pointed at loopback (DNS rebinding) would otherwise be served as
    if it were local. ``headers`` has lower-case names."""
    host = headers.get("host", "").lower()
    if host not in hosts:
        return _json(403, {"message": f"unknown host {host!r}: use http://127.0.0.1 or localhost"})
    return None


def refuse_browsers(headers: Mapping[str, str], hosts: Collection[str]) -> Answer | None:
    """For endpoints only programs call (moto): a request a web page made is refused.

    Browsers mark every request with ``Sec-Fetch-Site`` (``none`` when typed in the
    address bar) and cross-origin ones with ``Origin``; SDKs and curl send neither.
    """
    site = headers.get("sec-fetch-site")
    if "origin" in headers or site not in (None, "none"):
        return _json(403, {"message": "requests from web pages are refused"})
    return refuse_foreign_host(headers, hosts)


def refuse_foreign(
    method: str, headers: Mapping[str, str], hosts: Collection[str]
) -> Answer | None:
    """A 403 for requests to the local endpoints that another web page could have made.

    The console and ``/_local`` move the clock, publish SES events and show leads with
    no login, so only the stack's own pages may change anything: a POST from another
    origin (CSRF) and any request under a foreign host name (DNS rebinding onto
    loopback) are refused. ``headers`` has lower-case names. Tools such as curl and
    the CLI send no Origin and pass.
    """
    refused = refuse_foreign_host(headers, hosts)
    if refused is not None:
        return refused
    host = headers["host"].lower()
    if method in SAFE_METHODS:
        # Another site may link here, but not embed or fetch: opening an email or a link
        # in the outbox publishes SES events, which an <img> or <iframe> must not do.
        embedded = headers.get("sec-fetch-dest", "document") != "document"
        if headers.get("sec-fetch-site") == "cross-site" and embedded:
            return _json(403, {"message": f"cross-site {method} from a page element refused"})
        return None
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host}":
        return _json(403, {"message": f"cross-origin {method} from {origin!r} refused"})
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return _json(403, {"message": f"cross-site {method} refused"})
    return None


class LocalControl:
    def __init__(
        self,
        clock: OffsetClock,
        tick: Callable[[], Mapping[str, Any]],
        about: Mapping[str, Any],
        outbox: Callable[[], Sequence[SentMail]] = list,
        send_info: Callable[[SentMail], SendInfo] | None = None,
    ) -> None:
        self._clock = clock
        self._tick = tick
        self._about = about
        self._outbox = outbox
        self._send_info = send_info

    def clock_state(self) -> dict[str, Any]:
        return {"now": to_iso(self._clock.now()), "offset_s": self._clock.offset.total_seconds()}

    def __call__(self, method: str, target: str, body: bytes) -> Answer | None:
        path = urlsplit(target).path.rstrip("/")
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        route = (method, path[len(PREFIX) :])
        if route == ("GET", "/outbox"):
            return self.outbox(target)
        if route == ("GET", ""):
            return _json(200, {**self._about, "clock": self.clock_state()})
        if route == ("GET", "/clock"):
            return _json(200, self.clock_state())
        if route == ("POST", "/clock/advance"):
            try:
                by = parse_duration(json.loads(body or b"{}")["by"])
                self._clock.advance(by)
            except (ValueError, KeyError, TypeError) as error:
                message = f'expected {{"by": "<ISO-8601 duration, e.g. P1D>"}}: {error}'
                return _json(400, {"message": message})
            return _json(200, self.clock_state())
        if route == ("POST", "/tick"):
            try:
                results = self._tick()
            except Exception as error:  # a failing function answers, not the server
                return _json(500, {"message": f"{type(error).__name__}: {error}"})
            return _json(200, {**self.clock_state(), "results": results})
        return _json(404, {"message": f"no {method} {path}"})

    def outbox(self, target: str) -> Answer:
        """The emails SES accepted from the ``from``-th on (oldest first), with the tags and
        send time the sender recorded (empty until its write is seen): a script follows
        the outbox without reading it whole each time."""
        query = parse_qs(urlsplit(target).query)
        start = query.get("from", ["0"])[-1]
        limit = query.get("limit", [str(OUTBOX_PAGE)])[-1]
        if not (start.isascii() and start.isdigit()):
            return _json(400, {"message": "from: expected a count of emails already read"})
        if not (limit.isascii() and limit.isdigit()) or not 0 < int(limit) <= OUTBOX_PAGE:
            return _json(400, {"message": f"limit: expected 1 to {OUTBOX_PAGE}"})
        sent = self._outbox()
        mails = []
        for mail in sent[int(start) : int(start) + int(limit)]:
            info = self._send_info(mail) if self._send_info else None
            sent_at = info.sent_at if info else None
            mails.append(
                {
                    "id": mail.id,
                    "source": mail.source,
                    "to": list(mail.destinations),
                    "subject": mail.subject,
                    "sent_at": to_iso(sent_at) if sent_at else None,
                    "tags": dict(info.tags) if info else {},
                }
            )
        return _json(200, {"count": len(sent), "mails": mails})

"""The outbox of the local console: emails moto's SES accepted, and the SES events the
console publishes for them (local stack only).

moto keeps each raw message (id, source, destinations, MIME text) but neither its
tags nor its send time, so the console finds them where the sender wrote them: the
lead's ``email_sent`` activity carries the SES message id, program, step and variant.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_string, policy
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from functools import cached_property
from html import escape, unescape
from typing import Any
from urllib.parse import urlencode

from infra.local.functions import ACCOUNT, REGION
from shared.domain.ses_events import DETAIL_KEYS, EmailEventType

# <a ...> opening tags, and one attribute in them (name="value" or a bare name).
_ANCHOR = re.compile(r"<a\b([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


@dataclass(frozen=True)
class SentMail:
    """One raw message as moto's SES kept it: whole, or (``body_kept`` false) only its
    header block, as the local stack keeps older emails.

    Only the subject and the To line are kept once read (the outbox lists and searches
    them); the rest is parsed from the raw text when a page shows it, so an outbox of
    thousands of emails holds no parsed message.
    """

    id: str
    source: str
    destinations: tuple[str, ...]
    raw: str
    body_kept: bool = True

    @property
    def message(self) -> EmailMessage:
        return message_from_string(self.raw, _class=EmailMessage, policy=policy.default)

    @property
    def _headers(self) -> Message:
        return HeaderParser(_class=EmailMessage, policy=policy.default).parsestr(self.raw)

    @cached_property
    def to(self) -> str:
        return str(self._headers.get("To") or ", ".join(self.destinations))

    @cached_property
    def subject(self) -> str:
        return str(self._headers.get("Subject") or "")

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(name, str(value)) for name, value in self._headers.items()]

    @property
    def list_unsubscribe(self) -> str | None:
        """The https URL of ``List-Unsubscribe`` (RFC 8058 posts to it)."""
        header = str(self._headers.get("List-Unsubscribe") or "")
        found = re.search(r"<(https?://[^>]+)>", header)
        return found.group(1) if found else None

    def _part(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content = part.get_content()
        return content if isinstance(content, str) else None

    @property
    def html(self) -> str | None:
        return self._part("html")

    @property
    def text(self) -> str | None:
        return self._part("plain")


def sent_mails(moto_endpoint: str) -> list[SentMail]:
    """Every raw message moto's SES (v1 and v2 share it) accepted, oldest first."""
    url = f"{moto_endpoint}/moto-api/data.json"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback moto
        data = json.loads(response.read())
    return [
        SentMail(
            id=str(m.get("id")),
            source=str(m.get("source") or ""),
            # moto lists a To address once per place it found it: keep each once.
            destinations=tuple(dict.fromkeys(str(d) for d in m.get("destinations") or ())),
            raw=str(m.get("raw_data") or ""),
            body_kept=m.get("body_kept", True) is not False,
        )
        for m in data.get("ses", {}).get("RawMessage", [])
    ]


class InProcessOutbox:
    """Every raw message moto's SES accepted, read in this process (the local stack's
    moto runs in it) rather than through ``data.json``, which lists all of moto's state;
    each message's subject and To line are read once (again when its body is dropped)."""

    def __init__(self, region: str = REGION) -> None:
        self._region = region
        self._seen: dict[str, SentMail] = {}

    def __call__(self) -> list[SentMail]:
        from infra.local.state import moto_sent_mail  # moto's internals, local stack only

        found: list[SentMail] = []
        for m in moto_sent_mail(self._region):
            mail = self._seen.get(m["id"])
            # A mail whose body was dropped is read again: this one must not keep it.
            if mail is None or mail.body_kept != m["body_kept"]:
                mail = self._seen[m["id"]] = SentMail(
                    id=m["id"],
                    source=str(m["source"] or ""),
                    destinations=tuple(dict.fromkeys(str(d) for d in m["destinations"])),
                    raw=str(m["raw_data"] or ""),
                    body_kept=bool(m["body_kept"]),
                )
            found.append(mail)
        return found

    def info(self, mail_id: str) -> SendInfo | None:
        """How the email was sent (its tags, and when on the stack's clock), when this
        process sent it; None for an email restored from a saved state."""
        from infra.local.moto_fixes import SENT_EMAILS

        sent = SENT_EMAILS.get(mail_id)
        if sent is None or "lead_id" not in sent.tags:
            return None
        return SendInfo(sent.tags["lead_id"], sent.at, dict(sent.tags))


def parse_link_tags(text: str) -> dict[str, list[str]]:
    """``ses:tags="link:pricing;area:header;"`` as SES reports it: ``{"link": ["pricing"]}``."""
    tags: dict[str, list[str]] = {}
    for pair in text.split(";"):
        name, _, value = pair.partition(":")
        if name.strip() and value.strip():
            tags.setdefault(name.strip(), []).append(value.strip())
    return tags


def rewrite_links(html: str, click_url: str) -> str:
    """Tracked links go through ``click_url?url=...&tag=...``, as SES's click tracking
    does; every link opens in the top window (the email is shown in a sandboxed frame).
    Links marked ``ses:no-track`` and non-web links keep their target."""

    def anchor(match: re.Match[str]) -> str:
        attributes = [(m.group(1), m.group(2)) for m in _ATTRIBUTE.finditer(match.group(1))]
        names = {name.lower() for name, _ in attributes}
        values = {name.lower(): _unquote(value) for name, value in attributes if value}
        href = values.get("href", "")
        kept = [(n, v) for n, v in attributes if n.lower() not in ("href", "target")]
        if href and "ses:no-track" not in names and href.lower().startswith(("http:", "https:")):
            query = urlencode({"url": href, "tag": values.get("ses:tags", "")})
            href = f"{click_url}?{query}"
        parts = [f'href="{escape(href)}"'] if href else []
        parts += [f"{n}={v}" if v else n for n, v in kept]
        parts.append('target="_top"')
        return "<a " + " ".join(parts) + ">"

    return _ANCHOR.sub(anchor, html)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return unescape(value)


def ses_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class SendInfo:
    """What the sender recorded about a message: its lead, tags and send time."""

    lead_id: str | None = None
    sent_at: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)


def ses_event(
    kind: str,
    mail: SentMail,
    info: SendInfo,
    at: datetime,
    *,
    configuration_set: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """An SES event publishing record (``eventType`` ``kind``) for ``mail`` at ``at``."""
    tags: dict[str, list[str]] = {
        "ses:configuration-set": [configuration_set],
        "ses:source-ip": ["127.0.0.1"],
        "ses:from-domain": [mail.source.rpartition("@")[2]],
        "ses:caller-identity": ["local-console"],
    }
    tags.update({name: [value] for name, value in info.tags.items()})
    tag_header = ", ".join(f"{k}={v}" for k, v in info.tags.items())
    headers = [
        {"name": "X-SES-CONFIGURATION-SET", "value": configuration_set},
        {"name": "X-SES-MESSAGE-TAGS", "value": tag_header},
        *({"name": n, "value": v} for n, v in mail.headers),
    ]
    return {
        "eventType": kind,
        "mail": {
            "timestamp": ses_time(info.sent_at or at),
            "source": mail.source,
            "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{mail.source}",
            "sendingAccountId": ACCOUNT,
            "messageId": mail.id,
            "destination": list(mail.destinations),
            "headersTruncated": False,
            "headers": headers,
            "commonHeaders": {
                "from": [mail.source],
                "to": list(mail.destinations),
                "messageId": mail.id,
                "subject": mail.subject,
            },
            "tags": tags,
        },
        DETAIL_KEYS[EmailEventType(kind)]: {"timestamp": ses_time(at), **detail},
    }


USER_AGENT = "Mozilla/5.0 (local console)"
# A security gateway's fetches: a browser's user agent, from Exchange Online's addresses.
SCANNER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SCANNER_IP = "40.107.74.21"


def scanner_detail(url: str | None = None, link_tags: str = "") -> dict[str, Any]:
    """An Open (no ``url``) or a Click as a mail scanner's fetch is reported."""
    detail: dict[str, Any] = {"ipAddress": SCANNER_IP, "userAgent": SCANNER_USER_AGENT}
    if url is not None:
        detail.update(link=url, linkTags=parse_link_tags(link_tags))
    return detail


def open_detail() -> dict[str, Any]:
    return {"ipAddress": "127.0.0.1", "userAgent": USER_AGENT}


def click_detail(url: str, link_tags: str) -> dict[str, Any]:
    return {
        "ipAddress": "127.0.0.1",
        "userAgent": USER_AGENT,
        "link": url,
        "linkTags": parse_link_tags(link_tags),
    }


def bounce_detail(mail: SentMail) -> dict[str, Any]:
    return {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": address,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown (local console)",
            }
            for address in mail.destinations
        ],
        "feedbackId": f"local-{mail.id}-bounce",
        "reportingMTA": "dsn; localhost",
    }


def complaint_detail(mail: SentMail) -> dict[str, Any]:
    return {
        "complainedRecipients": [{"emailAddress": a} for a in mail.destinations],
        "feedbackId": f"local-{mail.id}-complaint",
        "userAgent": USER_AGENT,
        "complaintFeedbackType": "abuse",
    }

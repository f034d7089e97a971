"""Nurture email: render a step's template for a lead and build the MIME message.

Templates are content (``shared/content/email``): ``<template>.<locale>.html`` and
``.txt`` extend the locale's layout, which carries the legal footer. HTML is
autoescaped; every variable a template may use is always defined (empty when the lead
left a field blank), and an unknown variable is an error that the tests catch.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict

from shared.leads import Lead
from shared.programs import Program, Step

EMAIL_DIR = Path(__file__).parent / "content" / "email"
LOCALES = ("ja", "en")


class SenderProfile(BaseModel):
    """Who sends, as the Act on Specified Electronic Mail requires it to be shown.

    Configured per deployment: 送信者の氏名又は名称, 住所, 苦情・問合せ先, and the opt-out.
    """

    model_config = ConfigDict(frozen=True)

    company_name: str
    from_address: str  # e.g. "株式会社サンプル <news@example.co.jp>"
    postal_address: str
    contact_email: str
    site_url: str
    privacy_url: str = ""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    locale: str


@dataclass(frozen=True)
class OutgoingEmail:
    """A rendered email addressed to a lead, with its headers and SES tags."""

    from_address: str
    to_address: str
    rendered: RenderedEmail
    unsubscribe_url: str
    tags: dict[str, str]


_VIEW_FIELDS = (
    "email",
    "name",
    "family_name",
    "given_name",
    "company",
    "department",
    "job_title",
    "industry",
    "company_size",
    "prefecture",
)


def lead_view(lead: Lead) -> dict[str, str]:
    """What templates see of a lead: every field defined, blanks as empty strings."""
    return {f: str(getattr(lead, f) or "") for f in _VIEW_FIELDS}


def salutation(lead: Lead, locale: str) -> str:
    """宛名 with a fallback for blank fields: 株式会社サンプル 山田 太郎 様 / ご担当者 様."""
    if locale == "en":
        name = " ".join(p for p in (lead.given_name, lead.family_name) if p) or lead.name
        return f"Dear {name}," if name else "Dear Sir or Madam,"
    person = lead.name or " ".join(p for p in (lead.family_name, lead.given_name) if p)
    parts = [lead.company or "", f"{person} 様" if person else "ご担当者 様"]
    return " ".join(p for p in parts if p)


def locale_of(lead: Lead) -> str:
    return lead.locale if lead.locale in LOCALES else "ja"


class EmailRenderer:
    def __init__(self, sender: SenderProfile, directory: Path = EMAIL_DIR) -> None:
        self._sender = sender
        loader = FileSystemLoader(directory)
        self._html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined)
        self._text = Environment(loader=loader, autoescape=False, undefined=StrictUndefined)  # noqa: S701 - plain-text part and subject, never HTML

    def context(
        self, lead: Lead, locale: str, program: Program, step: Step, unsubscribe_url: str
    ) -> dict[str, Any]:
        return {
            "lead": lead_view(lead),
            "salutation": salutation(lead, locale),
            "sender": self._sender.model_dump(),
            "site_url": self._sender.site_url.rstrip("/"),
            "unsubscribe_url": unsubscribe_url,
            "program": {"id": program.id, "name": program.name},
            "step": {"id": step.id, "content_type": step.content_type.value},
            "locale": locale,
        }

    def render(
        self,
        lead: Lead,
        program: Program,
        step: Step,
        variant: int,
        unsubscribe_url: str,
    ) -> RenderedEmail:
        locale = locale_of(lead)
        subjects = step.subject.get(locale) or step.subject["ja"]  # type: ignore[call-overload]
        context = self.context(lead, locale, program, step, unsubscribe_url)
        subject = self._text.from_string(subjects[variant]).render(context)
        # A header must stay one line whatever the lead typed into its profile.
        subject = " ".join(subject.split())
        context["subject"] = subject
        name = f"{step.template}.{locale}"
        return RenderedEmail(
            subject=subject,
            html=self._html.get_template(f"{name}.html").render(context),
            text=self._text.get_template(f"{name}.txt").render(context),
            locale=locale,
        )

    def template_names(self, step: Step) -> list[str]:
        return [f"{step.template}.{loc}.{ext}" for loc in LOCALES for ext in ("html", "txt")]


def build_mime(email: OutgoingEmail) -> bytes:
    """The raw message SES sends: multipart/alternative, UTF-8, RFC 8058 headers."""
    url = email.unsubscribe_url
    if not url.isascii() or not url.isprintable() or len(url) > 900:
        raise ValueError("the unsubscribe URL must be printable ASCII")
    message = EmailMessage(policy=SMTP)
    display, address = parseaddr(email.from_address)
    domain = address.rpartition("@")[2] or "localhost"
    message["From"] = formataddr((display, address)) if display else address
    message["To"] = Address(addr_spec=email.to_address)
    message["Subject"] = email.rendered.subject
    message["Message-ID"] = make_msgid(domain=domain)
    # base64 keeps Japanese text intact through any relay, 7-bit clean.
    message.set_content(email.rendered.text, subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative(email.rendered.html, subtype="html", charset="utf-8", cte="base64")
    message["Content-Language"] = email.rendered.locale
    # Written verbatim: the email package would fold a long URL into RFC 2047
    # encoded-words, which mail providers do not decode in List-Unsubscribe.
    one_click = (
        f"List-Unsubscribe: <{url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    ).encode("ascii")
    return one_click + message.as_bytes()


class SendThrottled(Exception):
    """SES is over its send rate or paused: nothing was sent, try again later."""


class SendRejected(Exception):
    """SES refused this message for good (bad address, rejected content)."""


class SendFailed(Exception):
    """SES answered with an error: the message was certainly not sent; retry the job."""


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Hand the email to the mail service; return its message id."""
        ...

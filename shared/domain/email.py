"""Nurture email: render a step's template for a lead and build the MIME message.

Templates are content (``shared/content/email``): ``<template>.<locale>.html`` and
``.txt`` extend the locale's layout, which carries the legal footer. HTML is
autoescaped; every variable a template may use is always defined (empty when the lead
left a field blank), and an unknown variable is an error that the tests catch.
``EmailRenderer.context`` lists the variables. The titles of the assets forms name
(whitepapers, seminars) are content too: ``shared/content/assets.yaml``.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from shared.domain.events import Event, EventCatalog, event_view
from shared.domain.leads import FormType, Lead, Registration, Touch
from shared.domain.programs import Program, Step
from shared.domain.tokens import SITE_REF_PARAMETER
from shared.yamlfile import read_yaml

if TYPE_CHECKING:
    from jinja2 import Template

EMAIL_DIR = Path(__file__).parents[1] / "content" / "email"
ASSETS_FILE = Path(__file__).parents[1] / "content" / "assets.yaml"
LOCALES = ("ja", "en")
DEFAULT_PRODUCT_NAME = "Flowlane"


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
    # What the emails are about; templates and subjects write {{ brand.product_name }}.
    product_name: str = DEFAULT_PRODUCT_NAME


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Templates append the tracking parameters, so the URL must not carry a query itself.
_ASSET_URL = re.compile(r"(/(?!/)|https://[^/\s?#]+/?)[^\s?#]*")


class Asset(BaseModel):
    """Something a form names by id (its ``asset`` field), e.g. a whitepaper or a seminar,
    with the title emails show for it in each locale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ja: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)
    # A path on the site ("/resources/guide/") or an absolute https URL.
    url: str = ""

    @field_validator("ja", "en")
    @classmethod
    def _one_line(cls, title: str) -> str:
        if _CONTROL.search(title) or title != title.strip():
            raise ValueError("a title is one line without surrounding spaces")
        return title

    @field_validator("url")
    @classmethod
    def _trackable(cls, url: str) -> str:
        if url and not _ASSET_URL.fullmatch(url):
            raise ValueError(
                f"url must be a site path (/...) or an https URL without ? or #: {url!r}"
            )
        return url

    def title(self, locale: str) -> str:
        return self.en if locale == "en" else self.ja


_ASSETS = TypeAdapter(dict[str, Asset])


def event_assets(events: EventCatalog) -> dict[str, Asset]:
    """Events as assets: a registration form's touch reads as the event's title."""
    return {e.id: Asset(ja=e.title.ja, en=e.title.en, url=e.page) for e in events.events}


def load_assets(path: Path = ASSETS_FILE) -> dict[str, Asset]:
    """The asset titles, by the id forms send."""
    try:
        return _ASSETS.validate_python(read_yaml(path) or {})
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    locale: str


@dataclass(frozen=True)
class Attachment:
    filename: str  # ASCII: written into the headers as it is
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingEmail:
    """A rendered email addressed to a lead, with its headers and SES tags."""

    from_address: str
    to_address: str
    rendered: RenderedEmail
    unsubscribe_url: str
    tags: dict[str, str]
    attachments: tuple[Attachment, ...] = ()


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


# The form type in words, for a template that names it (lead.last_touch.form_label).
FORM_LABELS: dict[FormType, dict[str, str]] = {
    FormType.INQUIRY: {"ja": "お問い合わせ", "en": "Inquiry"},
    FormType.DOWNLOAD: {"ja": "資料ダウンロード", "en": "Download"},
    FormType.SEMINAR_REGISTRATION: {"ja": "セミナー申込", "en": "Seminar registration"},
    FormType.SEMINAR_ATTENDANCE: {"ja": "セミナー参加", "en": "Seminar attendance"},
    FormType.TRIAL: {"ja": "無料トライアル", "en": "Free trial"},
    FormType.NEWSLETTER: {"ja": "メールマガジン登録", "en": "Newsletter sign-up"},
    FormType.CONTACT: {"ja": "お問い合わせ", "en": "Contact"},
}


def touch_view(
    touch: Touch, locale: str, assets: Mapping[str, Asset], site_url: str
) -> dict[str, str]:
    """What templates see of one form post: every key defined, blanks as empty strings.

    ``asset_id`` is what the form sent, for conditions; templates show ``asset_title``,
    which is empty for an asset ``assets.yaml`` does not know, never the raw id.
    """
    asset = assets.get(touch.asset) if touch.asset else None
    url = asset.url if asset else ""
    return {
        "form_type": touch.form_type.value,
        "form_label": FORM_LABELS[touch.form_type][locale],
        "asset_id": touch.asset or "",
        "asset_title": asset.title(locale) if asset else "",
        "asset_url": site_url + url if url.startswith("/") else url,
        "source": touch.source or "",
    }


def lead_view(
    lead: Lead, locale: str, assets: Mapping[str, Asset], site_url: str
) -> dict[str, Any]:
    """What templates see of a lead: every field defined, blanks as empty strings."""
    view: dict[str, Any] = {f: str(getattr(lead, f) or "") for f in _VIEW_FIELDS}
    view["first_touch"] = touch_view(lead.first_touch, locale, assets, site_url)
    view["last_touch"] = touch_view(lead.last_touch, locale, assets, site_url)
    # The post that started this enrolment, for thanking it; blank when something else
    # did (a lead sales sent back to nurturing must not be thanked again a month on).
    enrolled_by_it = lead.enrolment is not None and lead.enrolment.enrolled_at == lead.last_touch.at
    view["came_from"] = (
        view["last_touch"] if enrolled_by_it else dict.fromkeys(view["last_touch"], "")
    )
    return view


def salutation(lead: Lead, locale: str) -> str:
    """宛名 with a fallback for blank fields: 株式会社サンプル 山田 太郎 様 / ご担当者 様."""
    if locale == "en":
        name = " ".join(p for p in (lead.given_name, lead.family_name) if p) or lead.name
        return f"Dear {name}," if name else "Dear Sir or Madam,"
    person = lead.name or " ".join(p for p in (lead.family_name, lead.given_name) if p)
    parts = [lead.company or "", f"{person} 様" if person else "ご担当者 様"]
    return " ".join(p for p in parts if p)


# The hidden trap link's tag as the layout writes it (``trap_link`` of
# shared/content/engagement.yaml; the tests keep the three in step).
TRAP_TAGS = 'ses:tags="link:trap;"'


def with_site_ref(body: str, site_url: str, ref: str, *, html: bool) -> str:
    """Add ``lnr=<ref>`` to every link into the site (``site_url/...``): the tracking
    snippet exchanges it once for the lead, so the visit is attributed without a form.
    The footer's bare site address and links elsewhere are left alone."""
    stop = '"' if html else r"\s<>\"'"
    pattern = re.compile(re.escape(site_url) + r"/[^" + stop + r"]*")

    def tagged(match: re.Match[str]) -> str:
        url = match.group(0)
        path, hash_, fragment = url.partition("#")
        # A bare & as the templates write their query strings (read alike by mail clients).
        joiner = "&" if "?" in path else "?"
        return f"{path}{joiner}{SITE_REF_PARAMETER}={ref}{hash_}{fragment}"

    if html:

        def anchor(match: re.Match[str]) -> str:
            tag = match.group(0)
            if TRAP_TAGS in tag:
                return tag  # the hidden link is for scanners: no reference to exchange
            return re.sub(
                r'href="(' + re.escape(site_url) + r'/[^"]*)"',
                lambda m: 'href="' + pattern.sub(tagged, m.group(1)) + '"',
                tag,
            )

        return re.sub(r"<a\s[^>]*>", anchor, body)
    return pattern.sub(tagged, body)


def locale_of(lead: Lead) -> str:
    return lead.locale if lead.locale in LOCALES else "ja"


_SUBJECT_CACHE_SIZE = 512


class EmailRenderer:
    def __init__(
        self,
        sender: SenderProfile,
        directory: Path = EMAIL_DIR,
        assets: Mapping[str, Asset] | None = None,
        events: EventCatalog | None = None,
    ) -> None:
        self._sender = sender
        assets = load_assets() if assets is None else assets
        # The assets file wins for an id both name: it is the older, explicit title.
        self._assets = {**event_assets(events), **assets} if events else assets
        # Here rather than at the top: the functions that import this module for its
        # models and MIME building (the scheduler's send jobs, ...) do not load Jinja2.
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        loader = FileSystemLoader(directory)
        self._html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined)
        self._text = Environment(loader=loader, autoescape=False, undefined=StrictUndefined)  # noqa: S701 - plain-text part and subject, never HTML
        self._subjects: dict[str, Template] = {}

    def context(
        self,
        lead: Lead,
        locale: str,
        program: Program,
        step: Step,
        unsubscribe_url: str,
        event: Event | None = None,
        registration: Registration | None = None,
        cancel_url: str | None = None,
    ) -> dict[str, Any]:
        """The variables of a template and of a subject line.

        - ``lead``: the profile fields (``email``, ``name``, ``family_name``,
          ``given_name``, ``company``, ``department``, ``job_title``, ``industry``,
          ``company_size``, ``prefecture``) and ``first_touch`` (the form the lead first
          came through) and ``last_touch`` (its latest form), each with ``form_type``
          (``download``, ``seminar_registration``, ...), ``form_label`` (資料ダウンロード /
          Download), ``asset_id``, ``asset_title``, ``asset_url`` and ``source``.
        - ``salutation``: 宛名 or "Dear ...", with a fallback for a blank name.
        - ``brand``: ``product_name``.
        - ``sender``: ``company_name``, ``from_address``, ``postal_address``,
          ``contact_email``, ``site_url``, ``privacy_url`` (the legal footer).
        - ``site_url`` (no trailing slash), ``unsubscribe_url``, ``program`` (``id``,
          ``name``), ``step`` (``id``, ``content_type``), ``locale``; and in the body
          ``subject``, the rendered subject line.
        - ``event``: in a step that ``invite``s, the event it names, else None.
        - In an event program only: ``event`` (``id``, ``title``, ``when``, ``where``,
          ``online``, ``join_url``, ``page_url``, ``materials_url``, ``recording_url``)
          and ``registration`` (``status``; ``waited``: its place came off the waiting
          list; ``cancel_url``: the link that cancels it, or None).
        """
        site_url = self._sender.site_url.rstrip("/")
        context: dict[str, Any] = {
            "lead": lead_view(lead, locale, self._assets, site_url),
            "salutation": salutation(lead, locale),
            "brand": {"product_name": self._sender.product_name},
            # One spelling for the product in templates: brand.product_name.
            "sender": self._sender.model_dump(exclude={"product_name"}),
            "site_url": site_url,
            "unsubscribe_url": unsubscribe_url,
            "program": {"id": program.id, "name": program.name},
            "step": {"id": step.id, "content_type": step.content_type.value},
            "locale": locale,
        }
        # An invitation's event, or None (none ahead, or the step invites to none): a
        # template may say more when it has one.
        invited = event if step.invite is not None else None
        context["event"] = event_view(invited, locale, site_url) if invited else None
        if program.kind == "event":
            if event is None:
                raise ValueError(f"{program.id}/{step.id} is an event program's: name the event")
            context["event"] = event_view(event, locale, site_url)
            context["registration"] = {
                "status": registration.status.value if registration else "registered",
                "waited": bool(registration and registration.waitlisted_at),
                "cancel_url": cancel_url,
            }
        return context

    def render(
        self,
        lead: Lead,
        program: Program,
        step: Step,
        variant: int,
        unsubscribe_url: str,
        site_ref: str | None = None,
        event: Event | None = None,
        registration: Registration | None = None,
        cancel_url: str | None = None,
    ) -> RenderedEmail:
        """The email; with ``site_ref``, every link into the site carries it as ``lnr``.
        An event program's step is rendered for its ``event`` and the lead's
        ``registration`` for it (and the link that cancels it)."""
        locale = locale_of(lead)
        subjects = step.subject.get(locale) or step.subject["ja"]  # type: ignore[call-overload]
        context = self.context(
            lead, locale, program, step, unsubscribe_url, event, registration, cancel_url
        )
        subject = self._subject_template(subjects[variant]).render(context)
        # A header must stay one line whatever the lead typed into its profile.
        subject = " ".join(subject.split())
        context["subject"] = subject
        name = f"{step.template_for(variant)}.{locale}"
        html = self._html.get_template(f"{name}.html").render(context)
        text = self._text.get_template(f"{name}.txt").render(context)
        if site_ref:
            html = with_site_ref(html, context["site_url"], site_ref, html=True)
            text = with_site_ref(text, context["site_url"], site_ref, html=False)
        return RenderedEmail(subject=subject, html=html, text=text, locale=locale)

    def _subject_template(self, source: str) -> Template:
        """A subject line compiled once per source text and reused for every send.

        Jinja caches the file templates, not ``from_string``; compiling a subject costs
        more than rendering the whole email. Subjects are program content (one per step,
        variant and locale), so the cache is small; it is bounded all the same.
        """
        template = self._subjects.get(source)
        if template is None:
            if len(self._subjects) >= _SUBJECT_CACHE_SIZE:
                self._subjects.clear()
            template = self._subjects[source] = self._text.from_string(source)
        return template

    def event_page(self, event: Event) -> str:
        """The event's page as its emails link to it."""
        page = event.page
        return self._sender.site_url.rstrip("/") + page if page.startswith("/") else page

    def template_names(self, step: Step) -> list[str]:
        names = dict.fromkeys(step.template_for(v) for v in range(step.variants))
        return [
            f"{name}.{loc}.{ext}" for name in names for loc in LOCALES for ext in ("html", "txt")
        ]


# The raw message is written by hand, not with email.message.EmailMessage: its policy
# machinery (header registry, parse-tree folding, content manager, generator) took
# milliseconds per message, most of a send's client-side time, for a message whose
# shape never changes. What is written is the standards' own: RFC 2047 B encoded-words
# in UTF-8 for non-ASCII header text, header lines of at most 78 characters (RFC 5322
# 2.1.1), text parts in canonical CRLF lines and base64 in 76-character lines (RFC 2045
# 6.8). The tests parse it back with the standard library's parser. (SES v2 can build
# the message itself from Simple content with custom Headers, but moto keeps neither
# those headers nor the text part of Simple content, and the local outbox and the tests
# read the raw message SES was given.)
_LINE = 78
# An encoded-word is at most 75 characters (RFC 2047 2): "=?utf-8?b?" + 60 + "?=" = 72.
_WORD_BYTES = 45
_ENCODED_WORD_OVERHEAD = len("=?utf-8?b??=")
_ADDRESS = re.compile(r"[^\s\"(),:;<>@\[\\\]]+@[^\s\"(),:;<>@\[\\\]]+")
_NOT_IN_URL = frozenset(" <>")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


def _encoded_words(text: str, room: int) -> list[str]:
    """``text`` as UTF-8 B encoded-words, the first at most ``room`` characters long.

    Each word holds whole characters (RFC 2047 5): a cut never falls on a UTF-8
    continuation byte. Readers join adjacent encoded-words without the space between.
    """
    data = text.encode("utf-8")
    words: list[str] = []
    start, limit = 0, max(4, min(_WORD_BYTES, (room - _ENCODED_WORD_OVERHEAD) // 4 * 3))
    while start < len(data):
        cut = min(start + limit, len(data))
        while cut < len(data) and data[cut] & 0xC0 == 0x80:
            cut -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:cut]).decode('ascii')}?=")
        start, limit = cut, _WORD_BYTES
    return words


def _fold(name: str, tokens: list[str]) -> str:
    """The header field ``name: token token ...``, folded before a token rather than run
    past 78 characters (each token fits a line by itself; see the callers)."""
    lines: list[str] = []
    line = f"{name}:"
    for token in tokens:
        if len(line) + 1 + len(token) > _LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += f" {token}"
    lines.append(line)
    return "\r\n".join(lines)


def _plain(text: str) -> bool:
    """Whether ``text`` may go on the wire as itself: printable ASCII, no text a reader
    would decode as an encoded-word, single spaces between words (folding points)."""
    return (
        text.isascii()
        and text.isprintable()
        and "=?" not in text
        and all(0 < len(word) < _LINE - 20 for word in text.split(" "))
    )


def _unstructured(name: str, text: str) -> str:
    """A header of free text (Subject): as is when plain ASCII, else encoded-words."""
    if "\r" in text or "\n" in text:
        raise ValueError(f"a {name} header is one line")
    if not text:
        return f"{name}:"
    if _plain(text):
        return _fold(name, text.split(" "))
    return _fold(name, _encoded_words(text, _LINE - len(name) - 2))


def _addr_spec(address: str) -> str:
    if not (address.isascii() and address.isprintable() and _ADDRESS.fullmatch(address)):
        raise ValueError(f"not a plain ASCII email address: {address!r}")
    return address


def _mailbox(name: str, mailbox: str) -> tuple[str, str]:
    """``From: Display Name <address>``, the name encoded unless plain ASCII; and the
    address."""
    display, address = parseaddr(mailbox)
    _addr_spec(address)
    if not display:
        return f"{name}: {address}", address
    if _plain(display):
        field = f"{name}: {formataddr((display, address))}"
        if len(field) <= _LINE:
            return field, address
    words = _encoded_words(display, _LINE - len(name) - 2)
    return _fold(name, [*words, f"<{address}>"]), address


def _text_part(subtype: str, text: str) -> bytes:
    # Canonical CRLF line ends (RFC 2046 4.1.1) under base64: 7-bit clean through any
    # relay, Japanese intact. encodebytes writes the 76-character lines of RFC 2045.
    data = b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n"
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
    head += "Content-Transfer-Encoding: base64\r\n\r\n"
    return head.encode("ascii") + base64.encodebytes(data).replace(b"\n", b"\r\n")


_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


def _attachment(attachment: Attachment) -> bytes:
    if not _FILENAME.fullmatch(attachment.filename):
        raise ValueError(f"not a plain file name: {attachment.filename!r}")
    if "\r" in attachment.content_type or "\n" in attachment.content_type:
        raise ValueError("a content type is one line")
    head = (
        f'Content-Type: {attachment.content_type};\r\n name="{attachment.filename}"\r\n'
        f'Content-Disposition: attachment;\r\n filename="{attachment.filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode("ascii") + base64.encodebytes(attachment.data).replace(b"\n", b"\r\n")


def build_mime(email: OutgoingEmail) -> bytes:
    """The raw message SES sends: multipart/alternative, UTF-8, RFC 8058 headers; with
    attachments (an event's .ics file), that inside a multipart/mixed."""
    url = email.unsubscribe_url
    if not url.isascii() or not url.isprintable() or len(url) > 900 or _NOT_IN_URL & set(url):
        raise ValueError("the unsubscribe URL must be printable ASCII, no space or <>")
    locale = email.rendered.locale
    if not _LANGUAGE.fullmatch(locale):
        raise ValueError(f"not a language tag: {locale!r}")
    sender, address = _mailbox("From", email.from_address)
    # A base64 line never starts with "-": no line of a part can be the delimiter.
    boundary = f"=_{secrets.token_hex(16)}"
    delimiter = f"--{boundary}\r\n".encode("ascii")
    alternative = b"".join(
        (
            delimiter,
            _text_part("plain", email.rendered.text),
            b"\r\n",
            delimiter,
            # the preferred (richest) alternative comes last (RFC 2046 5.1.4)
            _text_part("html", email.rendered.html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )
    kind = f'multipart/alternative;\r\n boundary="{boundary}"'
    if email.attachments:
        outer = f"=_{secrets.token_hex(16)}"
        parts = [f"Content-Type: {kind}\r\n\r\n".encode("ascii") + alternative]
        parts += [_attachment(a) for a in email.attachments]
        separator = f"\r\n--{outer}\r\n".encode("ascii")
        body = f"--{outer}\r\n".encode("ascii") + separator.join(parts)
        body += f"\r\n--{outer}--\r\n".encode("ascii")
        kind = f'multipart/mixed;\r\n boundary="{outer}"'
    else:
        body = alternative
    head = "\r\n".join(
        (
            sender,
            f"To: {_addr_spec(email.to_address)}",
            _unstructured("Subject", email.rendered.subject),
            f"Message-ID: {make_msgid(domain=address.rpartition('@')[2])}",
            "MIME-Version: 1.0",
            f"Content-Type: {kind}",
            f"Content-Language: {locale}",
            # Written verbatim, never folded or encoded: mail providers read the URL
            # between the angle brackets as it is (RFC 2369, RFC 8058).
            f"List-Unsubscribe: <{url}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        )
    )
    return f"{head}\r\n\r\n".encode("ascii") + body


class SendThrottled(Exception):
    """SES is over its send rate or paused: nothing was sent, try again later."""


class SendRejected(Exception):
    """SES refused this message for good (bad address, rejected content)."""


class SendFailed(Exception):
    """SES answered with an error: the message was certainly not sent; retry the job."""


class SendUncertain(Exception):
    """SES's answer was lost or was a server error (5xx, a timeout, a dropped
    connection): the message may have gone out. Never sent again."""


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Hand the email to the mail service; return its message id."""
        ...

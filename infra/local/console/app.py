"""Routes and pages of the local console (see the package docstring)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError
from jinja2 import Environment, FileSystemLoader

from infra.cli.reports import FunnelReport, collect_days, combined, funnel_tables, weekly
from infra.local.console import mail as mails
from infra.local.console.timeline import rows as timeline_rows
from shared.adapters.counters import DynamoCounterReader
from shared.adapters.guard import DynamoSendingSwitch
from shared.adapters.items import deserialize, serialize
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import OffsetClock, from_iso
from shared.domain.customers import load_customers
from shared.domain.guard import GuardState
from shared.domain.leads import ActivityType, Lead
from shared.domain.machine_engagement import links_in, load_engagement_rules, tracked_links
from shared.domain.programs import ProgramCatalog, load_programs, parse_duration
from shared.domain.scoring import ScoringRules, load_scoring
from shared.services.handoff import (
    PROFILE_LABELS,
    build_sales_message,
    qualified_score,
    top_reasons,
)
from shared.web.submission import LABELS

if TYPE_CHECKING:
    import boto3

PREFIX = "/console"
TOKYO = ZoneInfo("Asia/Tokyo")
FUNNEL_DAYS = 90
# The report tables the funnel page shows below its chart, by name, with their Japanese
# titles (the English ones are the CLI report's).
REPORT_TABLES = {
    "weekly": "週次の推移",
    "by_source": "流入元別のファネル",
    "by_form": "フォーム種別ごとのファネル",
    "by_program": "プログラム別のファネル",
    "cycle": "購買サイクル（中央値・日数）",
    "deals": "受注",
    "emails": "メールの成果",
    "send_time": "配信時刻の最適化",
}
HEADERS_JA = {
    "week": "週",
    "leads": "リード",
    "customers": "顧客",
    "emails sent": "送信数",
    "source": "流入元",
    "form type": "フォーム種別",
    "program": "プログラム",
    "revenue": "売上",
    "move": "移行",
    "median days": "中央値（日）",
    "period before": "前の期間",
    "trend": "傾向",
    "value": "値",
    "step": "ステップ",
    "variant": "パターン",
    "sent": "送信",
    "uncertain": "送信不明",
    "delivered": "配信",
    "open": "開封率",
    "click": "クリック率",
    "unsubscribe": "配信停止率",
    "MQL rate": "MQL 率",
    "machine open": "機械の開封",
    "machine click": "機械のクリック",
    "bounce": "バウンス率",
    "complaint": "苦情率",
    "group": "グループ",
    "open lift": "開封率の改善",
    "click lift": "クリック率の改善",
}


def header(english: str) -> dict[str, str]:
    """A column header, Japanese first where there is a Japanese name."""
    return {"ja": HEADERS_JA.get(english, english), "en": english}


# Funnel stages, each counted by the transitions into it (COUNTER#<day>, sk "stage").
FUNNEL = (
    ("lead", "リード", "Leads"),
    ("mql", "MQL", "Marketing qualified"),
    ("sql", "SQL", "Sales accepted"),
    ("customer", "顧客", "Customers"),
)
# Leads no longer mailed, by why (COUNTER#<day>, sk "list"; names in shared.domain.funnel).
LIST_HEALTH = (
    ("unsubscribed", "配信停止（本人の申し出）", "Unsubscribed"),
    ("bounce", "配信除外（バウンス）", "Suppressed: bounce"),
    ("complaint", "配信除外（苦情）", "Suppressed: complaint"),
    ("rejected", "配信除外（SES が拒否）", "Suppressed: rejected by SES"),
    ("sunset", "配信終了（掘り起こしに無反応）", "Sunset: re-engagement unanswered"),
)
SALES_INBOX_MAX = 500
Answer = tuple[int, list[tuple[str, str]], bytes]
HTML = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    # Never inside another site's frame (clickjacking the clock, bounce or complaint buttons).
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
]
TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger(__name__)
# The sample site's pages beside its forms: what a reader looks at before (and after)
# becoming a lead.
SITE_PAGES: dict[str, dict[str, Any]] = {
    "product": {
        "title": "製品紹介 | Flowlane",
        "body": [
            "Flowlane は申請・承認・契約の流れを一つの画面にまとめるワークフロー基盤です。",
            "Flowlane puts requests, approvals and contracts in one workflow.",
        ],
    },
    "pricing": {
        "title": "料金プラン | Flowlane",
        "body": [
            "スタンダード：1ユーザー月額 1,200円／エンタープライズ：お見積り",
            "Standard: JPY 1,200 per user a month; Enterprise: on quotation.",
        ],
    },
    "case-studies/toyo-seiki": {
        "title": "導入事例：東洋精機株式会社 | Flowlane",
        "body": [
            "紙の稟議をなくし、承認までの日数を 5 日から 1 日に短縮しました。",
            "Paper approvals gone: five days to approval became one.",
        ],
    },
}
# How soon after an email was sent, or after the last click on it, the console's reader
# opens or clicks: slower than the machine-engagement rules' delivery window and burst
# (shared/content/engagement.yaml), as a person is.
READING_TIME = timedelta(seconds=30)
# A mail scanner's fetches start this soon after the send (the "scanned" button).
SCAN_DELAY = timedelta(seconds=1)
# The console path being answered, so every page's clock form can come back to it.
_HERE: ContextVar[str] = ContextVar("console_here", default=PREFIX + "/")
# The clock form's ``by`` value that means "until some program may send".
NEXT_SENDING = "next-sending"


@dataclass(frozen=True)
class ConsoleConfig:
    origin: str  # the local stack's own origin, e.g. http://127.0.0.1:3000
    api: str  # the API stage, e.g. http://127.0.0.1:3000/v1
    moto: str  # moto server endpoint
    table_name: str
    email_events_topic_arn: str
    sales_inbox_url: str
    configuration_set: str


def _jst(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "-"
    at = from_iso(value) if isinstance(value, str) else value
    return at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")


def _redirect(location: str) -> Answer:
    return 303, [("Location", location)], b""


PAGE_SIZE = 50


@dataclass(frozen=True)
class Paging:
    """One page of a list: ``page`` (from 1) of ``pages``, and what the search was."""

    page: int
    pages: int
    total: int
    q: str

    @classmethod
    def of(cls, query: Mapping[str, str], total: int) -> Paging:
        pages = max(1, -(-total // PAGE_SIZE))
        asked = query.get("page", "1")
        page = int(asked) if asked.isascii() and asked.isdigit() else 1
        return cls(min(max(page, 1), pages), pages, total, query.get("q", "").strip())

    @property
    def start(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    @property
    def stop(self) -> int:
        return self.start + PAGE_SIZE


def _matches(q: str, *texts: str | None) -> bool:
    wanted = q.strip().casefold()
    return not wanted or any(wanted in (text or "").casefold() for text in texts)


class LocalConsole:
    """Answers ``/console/...`` (None for any other path), like ``LocalControl``."""

    def __init__(
        self,
        config: ConsoleConfig,
        clock: OffsetClock,
        session: boto3.session.Session,
        tick: Callable[[], Mapping[str, Any]],
        programs: ProgramCatalog | None = None,
        outbox: Callable[[], Sequence[mails.SentMail]] | None = None,
        sent_info: Callable[[str], mails.SendInfo | None] | None = None,
        profiles: Callable[[], list[Lead]] | None = None,
    ):
        self.config = config
        # What SES sent: read in process by the local stack, over data.json otherwise.
        self._outbox = outbox or partial(mails.sent_mails, config.moto)
        # How it was sent, as SES recorded it, where known; else from the lead's timeline.
        self._sent_info = sent_info
        # Every lead profile: read in process by the local stack, by a Scan otherwise.
        self._profiles = profiles or self.scanned_leads
        self._clock = clock
        self._read: dict[str, datetime] = {}  # mail id -> the reader's last open or click
        self._tick = tick
        self._programs = programs or load_programs()
        self._dynamodb = session.client("dynamodb")
        self._switch = DynamoSendingSwitch(self._dynamodb, config.table_name)
        self._sns = session.client("sns")
        self._sqs = session.client("sqs")
        self._leads = DynamoLeadRepository(self._dynamodb, config.table_name)
        self._rules: ScoringRules = load_scoring()
        self._customers = load_customers()
        self._machines = load_engagement_rules()
        self._sends: dict[str, mails.SendInfo] = {}  # by SES message id, once found
        self._env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
        self._env.filters["jst"] = _jst
        self._env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False, default=str)
        self._env.globals.update(console=PREFIX, api=config.api, origin=config.origin)

    # -- routing -------------------------------------------------------------------------

    def __call__(self, method: str, target: str, body: bytes) -> Answer | None:
        parts = urlsplit(target)
        if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
            return None
        path = parts.path[len(PREFIX) :].rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if method == "POST":  # the console's own forms are urlencoded
            form = parse_qs(body.decode("utf-8", "replace"))
            query.update({k: v[-1] for k, v in form.items()})
        _HERE.set(target if method == "GET" else PREFIX + "/")
        routes: list[tuple[str, str, Callable[..., Answer]]] = [
            ("GET", r"", self.index),
            ("GET", r"/site", self.site),
            ("GET", r"/site/thanks", self.thanks),
            ("GET", r"/site/(?P<slug>pricing|product|case-studies/[a-z0-9-]+)", self.site_page),
            ("GET", r"/site/error", self.form_error),
            ("GET", r"/outbox", self.outbox),
            ("GET", r"/outbox/(?P<mail_id>[^/]+)", self.outbox_mail),
            ("GET", r"/outbox/(?P<mail_id>[^/]+)/click", self.click),
            ("POST", r"/outbox/(?P<mail_id>[^/]+)/(?P<kind>bounce|complaint|scan)", self.simulate),
            ("GET", r"/leads", self.leads),
            ("GET", r"/leads/(?P<lead_id>[^/]+)", self.lead),
            ("GET", r"/sales", self.sales),
            ("GET", r"/funnel", self.funnel),
            ("POST", r"/clock", self.move_clock),
        ]
        for route_method, pattern, page in routes:
            found = re.fullmatch(pattern, path)
            if found and method == route_method:
                try:
                    return page(query, **{k: unquote(v) for k, v in found.groupdict().items()})
                except Exception as error:  # a broken page answers, not the server
                    log.exception("console page %s failed", path)
                    return self._page("error.html", 500, message=f"{type(error).__name__}: {error}")
        return self._page("error.html", 404, message=f"{method} {parts.path} はありません")

    def _page(self, template: str, status: int = 200, **context: Any) -> Answer:
        context.setdefault("now", self._clock.now())
        context.setdefault("here", _HERE.get())
        # Every page says so when the sending guard has paused nurture email.
        context.setdefault("guard", self._guard())
        html = self._env.get_template(template).render(**context)
        return status, HTML, html.encode()

    def _guard(self) -> GuardState | None:
        try:
            return self._switch.state()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None  # no table yet (the stack is starting): nothing paused
            raise

    # -- pages ---------------------------------------------------------------------------

    def index(self, query: dict[str, str]) -> Answer:
        return self._page("index.html")

    def site(self, query: dict[str, str]) -> Answer:
        return self._page(
            "site.html", site_url=f"{self.config.origin}{PREFIX}/site", pages=SITE_PAGES
        )

    def site_page(self, query: dict[str, str], slug: str) -> Answer:
        """A page of the sample site, with the tracking snippet (scoring.yaml's page groups
        match its path: ``*/pricing``, ``*/product``, ``*/case-studies/*``)."""
        page = SITE_PAGES.get(slug)
        if page is None:
            return self._page("error.html", 404, message="ページがありません / No such page")
        return self._page("site_page.html", page=page, pages=SITE_PAGES)

    def thanks(self, query: dict[str, str]) -> Answer:
        return self._page("thanks.html")

    def form_error(self, query: dict[str, str]) -> Answer:
        codes = [c for c in query.get("errors", "").split(",") if c]
        fields = [(c, *LABELS.get(c, (c, c))) for c in codes]
        return self._page("form_error.html", 422, fields=fields)

    # -- clock -----------------------------------------------------------------------------

    def move_clock(self, query: dict[str, str]) -> Answer:
        """Move the clock forward (``by``: an ISO-8601 duration, or NEXT_SENDING), run the
        schedules once at the new time, and go back to the page the form was on."""
        by = query.get("by", "")
        now = self._clock.now()
        try:
            step = (
                self._programs.next_sending_time(now) - now
                if by == NEXT_SENDING
                else parse_duration(by)
            )
        except ValueError as error:
            return self._page("error.html", 400, message=f"時間の指定が不正です / {error}")
        self._clock.advance(step)
        self._tick()
        back = query.get("back", "")
        # Only back into the console: the field comes from the request.
        if not back.startswith(PREFIX + "/") or not (back.isascii() and back.isprintable()):
            back = PREFIX + "/"
        return _redirect(back)

    # -- outbox ----------------------------------------------------------------------------

    def _mail(self, mail_id: str) -> mails.SentMail | None:
        return next((m for m in self._outbox() if m.id == mail_id), None)

    def send_info(self, mail: mails.SentMail) -> mails.SendInfo:
        """The lead, tags and send time the sender recorded in its ``email_sent`` activity."""
        if mail.id in self._sends:
            return self._sends[mail.id]
        known = self._sent_info(mail.id) if self._sent_info else None
        if known is not None:
            self._sends[mail.id] = known
            return known
        for address in mail.destinations:
            lead = self._leads.find_by_email(address)
            if lead is None:
                continue
            for activity in self._leads.timeline(lead.lead_id, limit=500):
                details = activity.details
                if (
                    activity.type is ActivityType.EMAIL_SENT
                    and details.get("message_id") == mail.id
                ):
                    tags = {
                        "lead_id": lead.lead_id,
                        "program": str(details.get("program_id") or ""),
                        "step": str(details.get("step_id") or ""),
                        "variant": str(details.get("variant") or ""),
                    }
                    if mail.html:
                        tags["links"] = str(tracked_links(mail.html))
                    info = mails.SendInfo(lead.lead_id, activity.at, tags)
                    self._sends[mail.id] = info
                    return info
            return mails.SendInfo(lead_id=lead.lead_id)  # not written yet: look again later
        return mails.SendInfo()

    def outbox(self, query: dict[str, str]) -> Answer:
        """The emails, newest first, a page at a time; ``q`` finds an address or subject."""
        found = [
            mail
            for mail in reversed(self._outbox())
            if _matches(query.get("q", ""), *mail.destinations, mail.subject)
        ]
        shown = Paging.of(query, len(found))
        rows = [(m, self.send_info(m)) for m in found[shown.start : shown.stop]]
        return self._page("outbox.html", rows=rows, paging=shown)

    def publish(
        self,
        kind: str,
        mail: mails.SentMail,
        detail: dict[str, Any],
        at: datetime | None = None,
    ) -> str:
        """Publish an SES event for ``mail`` to the email-events topic, as SES would.

        The outbox is read by a person, at a person's pace: an open or click sooner than
        ``READING_TIME`` after the send, or ``READING_TIME`` after the last one on the
        same email, first moves the clock on to then; otherwise the engagement function
        would rightly take the console's quick clicks for a mail scanner's. An explicit
        ``at`` (a mail scanner's own time) is published as it is.
        """
        if kind in ("Open", "Click") and at is None:
            sent_at = self.send_info(mail).sent_at
            earliest = [t + READING_TIME for t in (sent_at, self._read.get(mail.id)) if t]
            ready = max(earliest, default=self._clock.now())
            if self._clock.now() < ready:
                self._clock.advance(ready - self._clock.now())
            self._read[mail.id] = self._clock.now()
        event = mails.ses_event(
            kind,
            mail,
            self.send_info(mail),
            at or self._clock.now(),
            configuration_set=self.config.configuration_set,
            detail=detail,
        )
        response = self._sns.publish(
            TopicArn=self.config.email_events_topic_arn, Message=json.dumps(event)
        )
        return response["MessageId"]

    def outbox_mail(self, query: dict[str, str], mail_id: str) -> Answer:
        mail = self._mail(mail_id)
        if mail is None:
            return self._page("error.html", 404, message=f"メール {mail_id} はありません")
        published = query.get("published")
        if not published and query.get("track") != "0":
            self.publish("Open", mail, mails.open_detail())
            published = "Open"
        click_url = f"{self.config.origin}{PREFIX}/outbox/{quote(mail.id, safe='')}/click"
        html = mail.html
        return self._page(
            "mail.html",
            mail=mail,
            info=self.send_info(mail),
            html=mails.rewrite_links(html, click_url) if html else None,
            published=published,
        )

    def click(self, query: dict[str, str], mail_id: str) -> Answer:
        mail = self._mail(mail_id)
        url = query.get("url", "")
        if mail is None or not url.startswith(("http://", "https://")):
            return self._page("error.html", 404, message="リンクが見つかりません / Unknown link")
        self.publish("Click", mail, mails.click_detail(url, query.get("tag", "")))
        if url.startswith(self.config.origin + "/"):
            return _redirect(url)
        return self._page(
            "click.html", mail=mail, url=url, tags=mails.parse_link_tags(query.get("tag", ""))
        )

    def simulate(self, query: dict[str, str], mail_id: str, kind: str) -> Answer:
        mail = self._mail(mail_id)
        if mail is None:
            return self._page("error.html", 404, message=f"メール {mail_id} はありません")
        if kind == "scan":
            self.scanned_by_gateway(mail)
            event = "Open, Click (scanner)"
        elif kind == "bounce":
            self.publish("Bounce", mail, mails.bounce_detail(mail))
            event = "Bounce"
        else:
            self.publish("Complaint", mail, mails.complaint_detail(mail))
            event = "Complaint"
        return _redirect(f"{PREFIX}/outbox/{quote(mail.id, safe='')}?published={quote(event)}")

    def scanned_by_gateway(self, mail: mails.SentMail) -> None:
        """What a mail security gateway does on delivery: fetch the images and follow every
        link, the hidden one too, within two seconds of the send. The engagement function
        labels each of these a machine's; none scores."""
        sent_at = self.send_info(mail).sent_at or self._clock.now()
        self.publish("Open", mail, mails.scanner_detail(), at=sent_at + SCAN_DELAY)
        links = links_in(mail.html or "")
        for index, (url, tags) in enumerate(links):
            at = sent_at + SCAN_DELAY + index * SCAN_DELAY / max(len(links), 1)
            self.publish("Click", mail, mails.scanner_detail(url, tags), at=at)

    # -- leads -----------------------------------------------------------------------------

    def scanned_leads(self) -> list[Lead]:
        """Every lead profile. LOCAL ONLY: a Scan of the moto table, because the table has
        no list-all index by design; nothing in shared/ or functions/ scans it."""
        leads: list[Lead] = []
        pages = self._dynamodb.get_paginator("scan").paginate(
            TableName=self.config.table_name,
            FilterExpression="sk = :profile",
            ExpressionAttributeValues=serialize({":profile": "PROFILE"}),
        )
        for page in pages:
            leads.extend(Lead.model_validate(deserialize(item)) for item in page["Items"])
        return leads

    def _score(self, lead: Lead) -> dict[str, Any]:
        score = self._rules.evaluate(lead, self._clock.now())
        return {
            "score": score.score,
            "grade": score.grade.value,
            "temperature": self._rules.temperature(score.score, score.grade).value,
            "fit": score.fit,
        }

    def leads(self, query: dict[str, str]) -> Answer:
        """The leads, last updated first, a page at a time; ``q`` finds an address,
        company or name (a part of it, any case)."""
        found = [
            lead
            for lead in self._profiles()
            if _matches(query.get("q", ""), lead.email, lead.company, lead.name)
        ]
        found.sort(key=lambda lead: lead.updated_at, reverse=True)
        shown = Paging.of(query, len(found))
        rows = [(lead, self._score(lead)) for lead in found[shown.start : shown.stop]]
        return self._page("leads.html", rows=rows, paging=shown)

    def lead(self, query: dict[str, str], lead_id: str) -> Answer:
        lead = self._leads.get(lead_id)
        if lead is None:
            return self._page("error.html", 404, message=f"リード {lead_id} はありません")
        timeline = self._leads.timeline(lead_id, limit=500)
        profile = [(label, getattr(lead, key)) for key, label in PROFILE_LABELS]
        return self._page(
            "lead.html",
            lead=lead,
            profile=profile,
            score=self._score(lead),
            reasons=top_reasons(timeline),
            timeline=timeline_rows(timeline, self._machines),
            customer=self._customer(lead),
        )

    def _customer(self, lead: Lead) -> dict[str, Any] | None:
        """A customer's rank in words (customers.yaml's names), None without purchases."""
        rank = lead.rank
        if lead.purchases is None or rank is None:
            return None
        segment = self._customers.segment(rank.segment)
        label = self._customers.label(rank.cpm) if rank.cpm else None
        return {
            "purchases": lead.purchases,
            "rank": rank,
            "segment": f"{segment.name.ja} / {segment.name.en}" if segment else rank.segment,
            "cpm": f"{label.name.ja} / {label.name.en}" if label else "-",
        }

    # -- sales inbox -----------------------------------------------------------------------

    def inbox_messages(self) -> list[dict[str, Any]]:
        """Every message waiting in the sales inbox, left there: each batch is hidden while
        the next is read, then all are made visible again."""
        url = self.config.sales_inbox_url
        seen: dict[str, dict[str, Any]] = {}
        handles: list[str] = []
        while len(seen) < SALES_INBOX_MAX:
            batch = self._sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                seen.setdefault(message["MessageId"], dict(message))
                handles.append(message["ReceiptHandle"])
        for start in range(0, len(handles), 10):
            self._sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start : start + 10])
                ],
            )
        return list(seen.values())

    def _sales_text(self, document: dict[str, Any]) -> str | None:
        """The plain-text body email subscribers got, rebuilt with shared.services.handoff from the
        lead as it was at qualification (the SQS subscriber receives the JSON)."""
        lead = self._leads.get(str(document.get("lead_id")))
        if lead is None:
            return None
        at = from_iso(str(document.get("qualified_at"))) + timedelta(seconds=1)
        timeline = [a for a in self._leads.timeline(lead.lead_id, limit=500) if a.at <= at]
        score = qualified_score(lead, self._rules, at)
        message = build_sales_message(
            lead, score, self._rules.temperature(score.score, score.grade), timeline
        )
        return str(json.loads(message.message)["email"])

    def sales(self, query: dict[str, str]) -> Answer:
        items = []
        for message in self.inbox_messages():
            envelope = json.loads(message["Body"])
            try:
                document = json.loads(envelope.get("Message", ""))
            except ValueError:
                document = {"message": envelope.get("Message")}
            attributes = {
                name: value.get("Value")
                for name, value in envelope.get("MessageAttributes", {}).items()
            }
            # The stack's clock, as on every other page (SNS stamps the wall clock).
            qualified = document.get("qualified_at") if isinstance(document, dict) else None
            items.append(
                {
                    "subject": envelope.get("Subject"),
                    "at": qualified or envelope.get("Timestamp"),
                    "attributes": attributes,
                    "document": document,
                    "text": self._sales_text(document) if isinstance(document, dict) else None,
                }
            )
        items.sort(key=lambda item: str(item["at"]), reverse=True)
        return self._page("sales.html", items=items)

    # -- funnel ----------------------------------------------------------------------------

    def funnel_report(self) -> FunnelReport:
        """Every counter of the last FUNNEL_DAYS Japanese days (one Query a day, shards
        added up), and of as many days before them (the buying cycle's trend)."""
        end = self._clock.now().astimezone(TOKYO).date()
        start = end - timedelta(days=FUNNEL_DAYS - 1)
        previous = start - timedelta(days=FUNNEL_DAYS)
        reader = DynamoCounterReader(self._dynamodb, self.config.table_name)
        days = collect_days(reader, previous, end)
        shown = {d: t for d, t in days.items() if d >= start}
        return FunnelReport(
            start,
            end,
            combined(shown.values()),
            weekly(shown),
            combined(t for d, t in days.items() if d < start),
        )

    def funnel(self, query: dict[str, str]) -> Answer:
        report = self.funnel_report()
        totals = report.totals
        first = datetime(report.start.year, report.start.month, report.start.day, tzinfo=TOKYO)
        period = [first, self._clock.now()]
        # Leads are new ones only (``new>lead``; ``mql>lead`` is a lead sent back).
        counts = totals.stages
        stages: list[dict[str, Any]] = []
        previous: int | None = None
        for key, ja, en in FUNNEL:
            entered = counts[key]
            rate = entered / previous if previous else None
            stages.append({"key": key, "ja": ja, "en": en, "count": entered, "rate": rate})
            previous = entered
        peak = max([int(s["count"]) for s in stages] + [1])
        health = totals.list_health
        values = {
            "unsubscribed": health.unsubscribed,
            **health.suppressed,
            "sunset": health.sunset,
        }
        list_health = [
            {"key": key, "ja": ja, "en": en, "count": values.get(key, 0)}
            for key, ja, en in LIST_HEALTH
        ]
        weeks = [
            {"monday": monday, "leads": w.stages["lead"], "mql": w.stages["mql"]}
            for monday, w in sorted(report.weeks.items())
        ]
        # The CLI report's tables, the same cells, with Japanese titles first.
        tables = [
            {"table": t, "ja": REPORT_TABLES[t.name], "headers": [header(h) for h in t.headers]}
            for t in funnel_tables(report)
            if t.name in REPORT_TABLES
        ]
        return self._page(
            "funnel.html",
            stages=stages,
            peak=peak,
            weeks=weeks,
            week_peak=max([w.stages["lead"] for w in report.weeks.values()] + [1]),
            tables=tables,
            transitions=sorted(totals.transitions.items()),
            list_health=list_health,
            period=period,
            days=FUNNEL_DAYS,
        )

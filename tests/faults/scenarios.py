"""The write paths, each as a scenario: the state before, the delivery to fault, what
the system does afterwards anyway, and what the fault-free run must show.

A scenario's ``prepare`` builds the state through the functions themselves (nothing is
faulted then) and returns the ``Trigger`` whose first attempt is faulted; ``settle``
runs in both the faulted and the fault-free run after the retries (the next ticks of
the scheduler and the sender working off its queue); ``expect`` checks that the
fault-free run did what the path is for, so a scenario cannot quietly stop exercising it.

``known`` lists the cases that fail today, by patterns over the fault id
(``<service>.<Operation>#<n>-<before|after>-<kind>``, shell-style wildcards), with the
broken invariant observed. They run as strict xfails: a fix turns them into XPASS
failures, which say to remove the entry.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from infra.wiring import ADMIN, CAPTURE, ENGAGEMENT, HANDOFF, SEND_QUEUE, SENDER, UNSUBSCRIBE
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.funnel import business_day
from shared.domain.leads import ActivityType
from tests.email_events import raw, ses_record, sqs_event
from tests.events import multipart_post, rest_event
from tests.faults.snapshot import Snapshot
from tests.faults.system import System
from tests.faults.triggers import CliRun, HttpRequest, ScheduledTick, SqsBatch, StreamBatch, Trigger
from tests.integration.test_admin_api import admin_event
from tests.integration.test_cli import CONSENT, HEADERS, ROWS
from tests.integration.test_handoff import PROFILE

ADDRESS = str(PROFILE["email"])  # the grade A lead of the hand-off tests
LEASE = timedelta(minutes=10)  # the scheduler's

Check = Callable[[Snapshot], None]


@dataclass(frozen=True)
class Known:
    """Cases that fail today: patterns over the fault id, and the broken invariant."""

    reason: str
    patterns: tuple[str, ...]

    def matches(self, fault: str) -> bool:
        return any(fnmatchcase(fault, pattern) for pattern in self.patterns)


def known(reason: str, *patterns: str) -> Known:
    return Known(reason, patterns)


def _nothing(system: System) -> None:
    return None


@dataclass(frozen=True)
class Scenario:
    name: str
    prepare: Callable[[System, Path], Trigger]
    expect: Check
    settle: Callable[[System], None] = _nothing
    # Snapshot groups a retry may change without breaking anything (a send that SES
    # throttled is rescheduled: one more ``rescheduled`` activity).
    tolerated: frozenset[str] = frozenset()
    known: tuple[Known, ...] = ()

    def known_failure(self, fault: str) -> Known | None:
        return next((k for k in self.known if k.matches(fault)), None)

    def __str__(self) -> str:
        return self.name


# -- building the state before ----------------------------------------------------------------


def form(form_type: str, **fields: str) -> dict[str, Any]:
    """The grade A lead's website form, posted with FormData as ``fetch`` posts it."""
    return multipart_post({**PROFILE, "form_type": form_type, **fields})


DOWNLOAD = form("download", asset="dx-guide.pdf")
INQUIRY = form("inquiry", message="見積もりをお願いします。")  # high intent: an MQL at once


def capture(system: System, event: dict[str, Any]) -> str:
    response = system.invoke(CAPTURE, copy.deepcopy(event))
    assert response["statusCode"] in (200, 201), response["body"]
    return str(json.loads(response["body"])["lead_id"])


def welcome_sent(system: System) -> tuple[str, dict[str, Any], datetime]:
    """A new lead sent its welcome email: (lead id, its email_sent details, sent at)."""
    lead_id = capture(system, DOWNLOAD)
    system.tick()
    system.drain_sends()
    leads = DynamoLeadRepository(system.client("dynamodb"), system.resources.table_name)
    sent = [a for a in leads.timeline(lead_id) if a.type is ActivityType.EMAIL_SENT]
    assert len(sent) == 1, "the welcome email was not sent"
    return lead_id, sent[0].details, sent[0].at


def engagement_batch(records: list[dict[str, Any]]) -> SqsBatch:
    """SES events as the engagement queue delivers them (raw message delivery)."""
    return SqsBatch(ENGAGEMENT, sqs_event([raw(r) for r in records])["Records"])


def later_ticks(system: System) -> None:
    """What follows anyway: the sender works off the queue; the lease of a lead whose job
    was lost runs out, the next tick queues it again and the sender sends it (and a send
    SES throttled, rescheduled five minutes on)."""
    system.drain_sends()
    system.clock.advance(LEASE + timedelta(minutes=1))
    system.tick()
    system.drain_sends()


# -- what the fault-free runs must show -------------------------------------------------------


def one_lead(stage: str) -> Check:
    def check(snapshot: Snapshot) -> None:
        assert list(snapshot.profiles) == [ADDRESS], snapshot.profiles.keys()
        assert snapshot.stage(ADDRESS) == stage

    return check


def totals(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """The counters without the breakdowns (by source, form, program, send-time group;
    cycle histograms), which count the same transitions and emails again."""
    return {
        key: metrics
        for key, metrics in snapshot.counters.items()
        if not key.split(" ", 1)[1].startswith(
            ("source#", "form#", "program#", "cycle#", "sendtime#")
        )
    }


def counted(metric: str) -> Check:
    def check(snapshot: Snapshot) -> None:
        total = sum(m.get(metric, 0) for m in totals(snapshot).values())
        assert total == 1, (metric, snapshot.counters)

    return check


def qualified_once(snapshot: Snapshot) -> None:
    """One stage change into MQL counted (``lead>mql``, or ``new>mql`` for a lead that
    qualifies as it is created)."""
    counts = [n for m in totals(snapshot).values() for k, n in m.items() if k.endswith(">mql")]
    assert counts == [1], snapshot.counters


def emailed_once(snapshot: Snapshot) -> None:
    assert len(snapshot.mail) == 1, snapshot.mail


def handed_off_once(snapshot: Snapshot) -> None:
    assert len(snapshot.sales) == 1, snapshot.sales


def erased(snapshot: Snapshot) -> None:
    assert not snapshot.profiles, snapshot.profiles.keys()
    assert (snapshot.count("erasure"), snapshot.count("email claim")) == (1, 0)


def held(segment: str, customers: int) -> Check:
    """The running total of a customer segment (``COUNTER#total``)."""

    def check(snapshot: Snapshot) -> None:
        running = [m for key, m in snapshot.counters.items() if key.startswith("COUNTER#total ")]
        assert sum(m.get(segment, 0) for m in running) == customers, snapshot.counters

    return check


def all_of(*checks: Check) -> Check:
    def check(snapshot: Snapshot) -> None:
        for one in checks:
            one(snapshot)

    return check


# -- form posts (capture) ---------------------------------------------------------------------


def _new_lead(system: System, tmp: Path) -> Trigger:
    return HttpRequest(CAPTURE, DOWNLOAD)


def _repeat_post(system: System, tmp: Path) -> Trigger:
    capture(system, DOWNLOAD)
    system.clock.advance(timedelta(hours=2))
    return HttpRequest(CAPTURE, form("seminar_registration", asset="dx-seminar-2026-12"))


def _qualifying_post(system: System, tmp: Path) -> Trigger:
    return HttpRequest(CAPTURE, INQUIRY)


# -- a lead list (the operator CLI) -----------------------------------------------------------


def _list_import(system: System, tmp: Path) -> Trigger:
    path = tmp / "seminar.csv"
    path.write_bytes("\r\n".join([HEADERS, ROWS[0]]).encode("utf-8-sig") + b"\r\n")
    argv = ["import", str(path), "--table", system.resources.table_name]
    argv += ["--source", "seminar-2026-11", "--consent-source", CONSENT]
    return CliRun(argv, tmp)


# -- seminars and webinars (shared/content/events.yaml) ---------------------------------------

SEMINAR = "case-study-night-2027-02"  # the shipped event with a capacity: seats are written
REGISTRATION = form("seminar_registration", asset=SEMINAR)


def _event_registration(system: System, tmp: Path) -> Trigger:
    return HttpRequest(CAPTURE, REGISTRATION)


def _event_attendance(system: System, tmp: Path) -> Trigger:
    capture(system, REGISTRATION)
    system.clock.advance(timedelta(days=1))
    path = tmp / "attendees.csv"
    path.write_bytes(f"メールアドレス,氏名\r\n{ADDRESS},山田 太郎\r\n".encode("utf-8-sig"))
    return CliRun(["attendance", SEMINAR, str(path), "--table", system.resources.table_name], tmp)


def _event_cancellation(system: System, tmp: Path) -> Trigger:
    capture(system, REGISTRATION)
    system.clock.advance(timedelta(days=1))
    return CliRun(["cancel", SEMINAR, ADDRESS, "--table", system.resources.table_name], tmp)


# -- nurture email: the scheduler's tick and the sender ---------------------------------------


def _event_cancel_link(system: System, tmp: Path) -> Trigger:
    """The button of the page an event email's cancellation link opens."""
    lead_id = capture(system, REGISTRATION)
    system.clock.advance(timedelta(days=1))
    query = {"e": SEMINAR, "t": system.cancel_token(lead_id, SEMINAR)}
    return HttpRequest(UNSUBSCRIBE, rest_event("POST", "/events/cancel", query=query))


def _seat_holder_erasure(system: System, tmp: Path) -> Trigger:
    """Erasing a lead that holds a place: the place is given up first (``EVENT#`` seats)."""
    lead_id = capture(system, REGISTRATION)
    system.clock.advance(timedelta(days=1))
    return HttpRequest(ADMIN, admin_event("DELETE", lead_id))


def _tick(system: System, tmp: Path) -> Trigger:
    capture(system, DOWNLOAD)
    return ScheduledTick()


def _send(system: System, tmp: Path) -> Trigger:
    capture(system, DOWNLOAD)
    system.tick()
    messages = system.receive(SEND_QUEUE.name)  # the sender's poller holds the job
    assert len(messages) == 1, messages
    return SqsBatch(SENDER, system.sqs_records(SEND_QUEUE.name, messages), received=True)


# -- SES events (engagement) ------------------------------------------------------------------


def ses_event(name: str, **extra: Any) -> Callable[[System, Path], Trigger]:
    """One SES event about the lead's welcome email, a minute after the send."""

    def prepare(system: System, tmp: Path) -> Trigger:
        lead_id, sent, at = welcome_sent(system)
        own_time = name not in ("send", "reject")  # those are stamped with the send
        record = ses_record(
            name,
            lead_id=lead_id,
            program=sent["program_id"],
            step=sent["step_id"],
            variant=sent["variant"],
            email=ADDRESS,
            at=at + timedelta(minutes=1) if own_time else at,
            message_id=sent["message_id"],
            **extra,
        )
        system.clock.advance(timedelta(minutes=2))
        return engagement_batch([record])

    return prepare


OTHER_ADDRESS = "jiro.suzuki@example.co.jp"


def _untagged_bounce(system: System, tmp: Path) -> Trigger:
    """An identity notification (mail another tool sent from the same address: no tags
    of ours) that bounced for two leads: it names both."""
    for address in (ADDRESS, OTHER_ADDRESS):
        capture(system, form("download", asset="dx-guide.pdf", email=address))
    record = ses_record(
        "bounce_permanent",
        lead_id=None,
        program=None,
        step=None,
        variant=None,
        at=system.clock.now(),
    )
    record["bounce"]["bouncedRecipients"] = [
        {"emailAddress": address, "action": "failed", "status": "5.1.1"}
        for address in (ADDRESS, OTHER_ADDRESS)
    ]
    system.clock.advance(timedelta(minutes=1))
    return engagement_batch([record])


def each_suppressed(snapshot: Snapshot) -> None:
    """Both leads the bounce names are suppressed, each counted once."""
    assert sorted(snapshot.profiles) == sorted((ADDRESS, OTHER_ADDRESS)), snapshot.profiles
    assert all(p["suppressed"] for p in snapshot.profiles.values()), snapshot.profiles
    total = sum(m.get("suppressed:bounce", 0) for m in totals(snapshot).values())
    assert total == 2, snapshot.counters


def _qualifying_click(system: System, tmp: Path) -> Trigger:
    """tests/integration/test_handoff.py's lead: 45 points on day one, 51 with a click on
    the next (grade A download, three tagged clicks and three opens, then a case study)."""
    lead_id = capture(system, DOWNLOAD)
    at = system.clock.now()
    records = [
        ses_record(
            "click",
            lead_id=lead_id,
            email=ADDRESS,
            at=at + timedelta(seconds=20 * i),
            link=f"https://www.example.co.jp/{tag}/",
            link_tags=[tag],
        )
        for i, tag in enumerate(["pricing", "trial", "seminar"])
    ]
    records += [
        ses_record("open", lead_id=lead_id, email=ADDRESS, at=at + timedelta(seconds=70 + i))
        for i in range(3)
    ]
    for record in records:
        assert engagement_batch([record]).attempt(system)
    system.clock.advance(timedelta(days=1))
    click = ses_record(
        "click",
        lead_id=lead_id,
        email=ADDRESS,
        at=system.clock.now() - timedelta(seconds=1),
        link="https://www.example.co.jp/case/",
        link_tags=["case_study"],
    )
    return engagement_batch([click])


# -- hand-off to sales, sales feedback, opt-out and erasure -----------------------------------


def _handoff(system: System, tmp: Path) -> Trigger:
    capture(system, INQUIRY)
    records = system.handoff_records()
    assert len(records) == 1, records
    return StreamBatch(HANDOFF, records)


def _disposition(system: System, tmp: Path) -> Trigger:
    lead_id = capture(system, INQUIRY)
    system.clock.advance(timedelta(days=1))
    body = {"disposition": "won", "reason": "年間契約", "by": "sales-alice"}
    return HttpRequest(ADMIN, admin_event("POST", lead_id, "disposition", body))


def _unsubscribe(system: System, tmp: Path) -> Trigger:
    lead_id = capture(system, DOWNLOAD)
    system.clock.advance(timedelta(days=1))
    event = rest_event(
        "POST",
        "/unsubscribe",
        body="List-Unsubscribe=One-Click",  # RFC 8058, from a mail client
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        query={"t": system.unsubscribe_token(lead_id)},
    )
    return HttpRequest(UNSUBSCRIBE, event)


def purchase_of(system: System, lead_id: str) -> dict[str, Any]:
    """A purchase of today (in Japan), with its order number, as the admin API takes it."""
    day = business_day(system.clock.now()).isoformat()
    body = {"purchase_id": "SO-0001", "amount": 1_200_000, "date": day, "product": "standard"}
    return admin_event("POST", lead_id, "purchases", body)


def _purchase(system: System, tmp: Path) -> Trigger:
    lead_id = capture(system, DOWNLOAD)
    system.clock.advance(timedelta(days=1))
    return HttpRequest(ADMIN, purchase_of(system, lead_id))


def _customer_erasure(system: System, tmp: Path) -> Trigger:
    lead_id = capture(system, DOWNLOAD)
    response = system.invoke(ADMIN, purchase_of(system, lead_id))
    assert response["statusCode"] == 201, response["body"]
    system.clock.advance(timedelta(days=1))
    return HttpRequest(ADMIN, admin_event("DELETE", lead_id))


def _erasure(system: System, tmp: Path) -> Trigger:
    lead_id = capture(system, DOWNLOAD)
    system.clock.advance(timedelta(days=1))
    return HttpRequest(ADMIN, admin_event("DELETE", lead_id))


# -- what fails today -------------------------------------------------------------------------

NO_IDEMPOTENCY = (
    "SES's SendEmail takes no idempotency key, so after a lost answer the sender cannot "
    "know whether the email went out: either it may mail twice or it may not mail at all"
)
SEND = (
    known(
        "SES answered 5xx and sent nothing: the step is recorded as email_send_uncertain and "
        "never sent again, so the email is never sent (a 5xx before and after acceptance "
        f"look the same to the sender; {NO_IDEMPOTENCY})",
        "sesv2.SendEmail#1-before-5xx",
    ),
    known(
        "SES sent the email and its answer was lost: the step is recorded as "
        "email_send_uncertain and never sent again, so the email that went out has no "
        f"email_sent activity and the step no message id ({NO_IDEMPOTENCY})",
        "sesv2.SendEmail#1-after-*",
    ),
)
HANDOFF_KNOWN = (
    known(
        "SNS published and its answer was lost: the retried batch publishes again (sales "
        "get the lead twice). With a standard topic and email subscribers a crash between "
        "Publish and the marker cannot be prevented in general; automated subscribers "
        "deduplicate on handoff_id",
        "sns.Publish#1-after-*",
    ),
)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("form_post_new_lead", _new_lead, all_of(one_lead("lead"), counted("new>lead"))),
    Scenario("form_post_repeat", _repeat_post, one_lead("lead")),
    Scenario("form_post_qualifies", _qualifying_post, all_of(one_lead("mql"), qualified_once)),
    Scenario("list_import_row", _list_import, counted("new>lead")),
    Scenario("event_registration", _event_registration, counted("registered")),
    Scenario("event_attendance", _event_attendance, counted("attended")),
    Scenario("event_cancellation", _event_cancellation, counted("cancelled")),
    Scenario("event_cancel_link", _event_cancel_link, counted("cancelled")),
    Scenario("seat_holder_erasure", _seat_holder_erasure, all_of(erased, counted("cancelled"))),
    Scenario(
        "scheduler_tick",
        _tick,
        emailed_once,
        settle=later_ticks,
        tolerated=frozenset({"activity:rescheduled"}),
    ),
    Scenario(
        "send",
        _send,
        emailed_once,
        settle=later_ticks,
        tolerated=frozenset({"activity:rescheduled"}),
        known=SEND,
    ),
    Scenario("ses_send", ses_event("send"), counted("accepted")),
    Scenario("ses_delivery", ses_event("delivery"), counted("delivered")),
    Scenario("ses_open", ses_event("open"), counted("human_opens")),
    Scenario(
        "ses_click",
        ses_event("click", link="https://www.example.co.jp/resources/", link_tags=["whitepaper"]),
        counted("human_clicks"),
    ),
    Scenario("ses_bounce_permanent", ses_event("bounce_permanent"), counted("suppressed:bounce")),
    Scenario("ses_bounce_untagged_two_leads", _untagged_bounce, each_suppressed),
    Scenario("ses_complaint", ses_event("complaint"), counted("suppressed:complaint")),
    Scenario("ses_reject", ses_event("reject"), counted("rejects")),
    Scenario("ses_delivery_delay", ses_event("delivery_delay"), counted("delays")),
    Scenario("ses_subscription", ses_event("subscription"), counted("unsubscribed")),
    Scenario("click_qualifies", _qualifying_click, all_of(one_lead("mql"), qualified_once)),
    Scenario("handoff", _handoff, handed_off_once, known=HANDOFF_KNOWN),
    Scenario("disposition", _disposition, all_of(one_lead("customer"), counted("mql>customer"))),
    Scenario("unsubscribe", _unsubscribe, counted("unsubscribed")),
    Scenario("erasure", _erasure, erased),
    Scenario(
        "purchase",
        _purchase,
        all_of(
            one_lead("customer"),
            counted("lead>customer"),
            counted("none>new"),
            counted("purchases:new"),
            held("new", 1),
        ),
    ),
    Scenario("customer_erasure", _customer_erasure, all_of(erased, held("new", 0))),
)

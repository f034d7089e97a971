"""Machine opens and clicks: recorded and labelled, never scored, never deciding a branch.

Emails go out through the real scheduler and sender (moto SES), so each SES record
below carries what the sender really set: its message id, its tags (``links`` too) and
its send time. Events are documented SES records (``tests/fixtures/ses_events``) with
the user agents and addresses that mail scanners and image proxies really use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.items import deserialize, lead_pk, mail_sk
from shared.domain.clock import FixedClock
from shared.domain.leads import Activity, ActivityType, Stage
from shared.domain.machine_engagement import MailRecord, load_engagement_rules
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from tests.email_events import iso, raw, redelivered, ses_record, sns_envelope
from tests.emf import metric_counts
from tests.integration.conftest import TABLE
from tests.integration.nurture import NurtureWorld, SentEmail, build_world
from tests.integration.scoring_world import (
    GRADE_A,
    activities,
    counters,
    engagement,
    fail_calls,
    indexed_due_at,
    lead_table,
    lose_answer,
    recorder,
    store_lead,
    stored,
)

JST = ZoneInfo("Asia/Tokyo")
RULES = load_scoring()
SECOND = timedelta(seconds=1)

# User agents as mail clients, proxies and scanners send them.
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
OUTLOOK = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)
APPLE_PROXY = "Mozilla/5.0"
OFFICE_IP = "203.0.113.25"  # a reader's office (documentation range)
SAFE_LINKS_IP = "40.107.74.21"  # Exchange Online Protection
PROOFPOINT_IP = "148.163.150.12"


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return lead_table()


# The welcome email (several links) first, at any hour; its branch waits up to 3 days.
READING = """
id: reading
name: テスト（閲読）
priority: 20
entry:
  stages: [lead]
send_window:
  weekdays: [mon, tue, wed, thu, fri, sat, sun]
  start: "00:00"
  end: "23:59"
  skip_public_holidays: false
  skip_new_year_holidays: false
steps:
  - id: welcome
    wait: PT0S
    template: welcome
    content_type: welcome
    subject:
      ja: ["ようこそ"]
      en: ["Welcome"]
    branch:
      wait_up_to: P3D
      rules:
        - when: clicked
          goto: seminar_invitation
      otherwise: case_study
  - id: case_study
    wait: PT0S
    template: case_study
    content_type: case_study
    subject:
      ja: ["導入事例"]
      en: ["A case study"]
  - id: seminar_invitation
    wait: PT0S
    template: seminar_invitation
    content_type: seminar_invitation
    subject:
      ja: ["セミナーのご案内"]
      en: ["Seminar"]
"""


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any, tmp_path: Path) -> NurtureWorld:
    """One program (``reading``), on a Tuesday morning in Tokyo."""
    (tmp_path / "reading.yaml").write_text(READING, encoding="utf-8")
    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=JST).astimezone(UTC))
    return build_world(clock, dynamodb, TABLE, lambda_context, programs=load_programs(tmp_path))


@pytest.fixture
def deliver(world: NurtureWorld, lambda_context: Any) -> Callable[..., Any]:
    return engagement(
        recorder(world.dynamodb, world.clock, programs=world.programs), lambda_context
    )


def sent_welcome(world: NurtureWorld) -> tuple[str, SentEmail, datetime]:
    """A grade A lead sent the welcome email now: its id, the email, when it was sent."""
    lead = store_lead(
        world.repository, world.clock, program="reading", programs=world.programs, **GRADE_A
    )
    sent_at = world.clock.now()
    assert world.run() == 1
    return lead.lead_id, world.ses.sent[-1], sent_at


def links_of(email: SentEmail) -> list[tuple[str, list[str]]]:
    """Every tracked link of the sent HTML with its tags, in order, and then the hidden
    trap link."""
    html = email.part("html")
    found = []
    for anchor in re.findall(r"<a [^>]*>", html):
        if "ses:no-track" in anchor:
            continue
        href = re.search(r'href="(https?://[^"]+)"', anchor)
        if href is None:
            continue
        tags = re.search(r'ses:tags="link:([a-z0-9_]+);"', anchor)
        found.append((href.group(1).replace("&amp;", "&"), [tags.group(1)] if tags else []))
    return sorted(found, key=lambda link: link[1] == ["trap"])


def event(
    name: str, email: SentEmail, sent_at: datetime, at: datetime, **detail: Any
) -> dict[str, Any]:
    """The SES record of ``name`` about the sent email, as SES publishes it."""
    record = ses_record(
        name,
        email=email.to,
        at=at,
        message_id=email.message_id,
        **{k: email.tags[k] for k in ("lead_id", "program", "step", "variant")},
        **detail,
    )
    record["mail"]["tags"]["links"] = [email.tags["links"]]
    record["mail"]["timestamp"] = iso(sent_at)
    return record


def click(
    email: SentEmail, sent_at: datetime, at: datetime, link: tuple[str, list[str]], **who: Any
) -> dict[str, Any]:
    who.setdefault("userAgent", CHROME)
    who.setdefault("ipAddress", OFFICE_IP)
    return event("click", email, sent_at, at, link=link[0], link_tags=link[1], **who)


def opened(email: SentEmail, sent_at: datetime, at: datetime, **who: Any) -> dict[str, Any]:
    who.setdefault("userAgent", IPHONE_MAIL)
    who.setdefault("ipAddress", OFFICE_IP)
    return event("open", email, sent_at, at, **who)


def score(world: NurtureWorld, lead_id: str) -> float:
    return RULES.score(stored(world.repository, lead_id).score_units, world.clock.now())


def timeline(world: NurtureWorld, lead_id: str, kind: ActivityType) -> list[Activity]:
    return sorted(activities(world.repository, lead_id, kind), key=lambda a: a.at)


def email_counters(world: NurtureWorld, email: SentEmail, day: datetime) -> dict[str, int]:
    """The email's engagement counts (its send, counted by the sender, left out)."""
    tags = email.tags
    key = f"email#{tags['program']}#{tags['step']}#{tags['variant']}"
    found = counters(world.dynamodb, day).get(key, {})
    return {name: n for name, n in found.items() if n and name != "sent"}


def mail_record(world: NurtureWorld, lead_id: str, email: SentEmail) -> MailRecord:
    assert email.message_id is not None
    item = world.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": lead_pk(lead_id)}, "sk": {"S": mail_sk(email.message_id)}}
    )["Item"]
    return MailRecord.model_validate({**deserialize(item), "lead_id": lead_id})


# -- each signal ---------------------------------------------------------------------------

# (what happened, the SES record's maker, how long after the Delivery, the reason)
SIGNALS = [
    (
        "Apple Mail Privacy Protection prefetches the images",
        "open",
        {"userAgent": APPLE_PROXY, "ipAddress": "172.225.80.14"},
        timedelta(minutes=40),
        "agent:apple_mail_privacy",
    ),
    (
        "Safe Links follows a link from Exchange Online",
        "click",
        {"userAgent": CHROME, "ipAddress": SAFE_LINKS_IP},
        timedelta(minutes=3),
        "agent:microsoft_defender",
    ),
    (
        "Proofpoint URL Defense follows a link",
        "click",
        {"userAgent": CHROME, "ipAddress": PROOFPOINT_IP},
        timedelta(minutes=3),
        "agent:proofpoint",
    ),
    (
        "a script fetches a link",
        "click",
        {"userAgent": "python-requests/2.32.3", "ipAddress": "198.51.100.7"},
        timedelta(hours=2),
        "agent:automation",
    ),
    (
        "a fetch that names no user agent",
        "open",
        {"userAgent": "", "ipAddress": "198.51.100.7"},
        timedelta(hours=2),
        "agent:blank_user_agent",
    ),
    (
        "a gateway opens the mail two seconds after accepting it",
        "open",
        {"userAgent": IPHONE_MAIL, "ipAddress": OFFICE_IP},
        2 * SECOND,
        "delivery_window",
    ),
    (
        "a gateway follows a link two seconds after accepting the mail",
        "click",
        {"userAgent": CHROME, "ipAddress": OFFICE_IP},
        2 * SECOND,
        "delivery_window",
    ),
]


@pytest.mark.parametrize(
    ("what", "name", "who", "after", "reason"), SIGNALS, ids=[s[0] for s in SIGNALS]
)
def test_a_machine_open_or_click_is_labelled_and_earns_nothing(
    world: NurtureWorld,
    deliver: Callable[..., Any],
    what: str,
    name: str,
    who: dict[str, str],
    after: timedelta,
    reason: str,
) -> None:
    # Given a grade A lead sent the whitepaper, which SES delivered a second later
    lead_id, email, sent_at = sent_welcome(world)
    delivered_at = sent_at + SECOND
    assert deliver([raw(event("delivery", email, sent_at, delivered_at))]).failed == []
    due_before = stored(world.repository, lead_id).enrolment
    assert due_before is not None

    # When SES reports the machine's open or click
    at = delivered_at + after
    world.clock.set(at + SECOND)
    link = links_of(email)[0]
    record = (
        click(email, sent_at, at, link, **who)
        if name == "click"
        else opened(email, sent_at, at, **who)
    )
    assert deliver([sns_envelope(record)]).failed == []

    # Then it is on the timeline, labelled a machine's with the reason, without points
    kind = ActivityType.EMAIL_CLICKED if name == "click" else ActivityType.EMAIL_OPENED
    (activity,) = timeline(world, lead_id, kind)
    assert activity.details["verdict"] == "machine"
    assert reason in activity.details["machine_reasons"]
    assert "points" not in activity.details
    # and the lead has no score, no engagement for dormancy, and no decided branch
    lead = stored(world.repository, lead_id)
    assert lead.score_units == 0
    assert lead.last_engaged_at is None
    assert lead.enrolment is not None
    assert lead.enrolment.sent["welcome"].opened_at is None
    assert lead.enrolment.sent["welcome"].clicked_at is None
    assert lead.enrolment.due_at == due_before.due_at
    assert indexed_due_at(world.dynamodb, lead_id) is not None
    # and the email's counters count it as a machine's
    plural = f"{name}s"
    assert email_counters(world, email, at) == {
        "delivered": 1,
        plural: 1,
        f"machine_{plural}": 1,
        f"unique_machine_{plural}": 1,
        **({"unique_machine_opens": 1} if name == "click" else {}),
    }


@pytest.mark.parametrize(
    ("who", "name"),
    [
        ({"userAgent": GMAIL_PROXY, "ipAddress": "66.249.84.10"}, "open"),
        ({"userAgent": IPHONE_MAIL, "ipAddress": OFFICE_IP}, "open"),
        ({"userAgent": OUTLOOK, "ipAddress": OFFICE_IP}, "click"),
    ],
    ids=["Gmail's image proxy", "Apple Mail without privacy protection", "Edge from Outlook"],
)
def test_a_person_reading_minutes_after_delivery_scores(
    world: NurtureWorld, deliver: Callable[..., Any], who: dict[str, str], name: str
) -> None:
    lead_id, email, sent_at = sent_welcome(world)
    assert deliver([raw(event("delivery", email, sent_at, sent_at + SECOND))]).failed == []
    at = sent_at + timedelta(minutes=12)
    world.clock.set(at + SECOND)
    record = (
        click(email, sent_at, at, links_of(email)[0], **who)
        if name == "click"
        else opened(email, sent_at, at, **who)
    )
    assert deliver([raw(record)]).failed == []
    kind = ActivityType.EMAIL_CLICKED if name == "click" else ActivityType.EMAIL_OPENED
    (activity,) = timeline(world, lead_id, kind)
    assert activity.details["verdict"] == "human"
    assert activity.details["points"] > 0
    assert stored(world.repository, lead_id).last_engaged_at == at


def test_a_person_and_a_machine_are_counted_apart_in_the_metrics(
    world: NurtureWorld, deliver: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a lead sent the welcome email, delivered a second later
    _, email, sent_at = sent_welcome(world)
    assert deliver([raw(event("delivery", email, sent_at, sent_at + SECOND))]).failed == []
    assert metric_counts(capsys.readouterr().out) == {
        ("sender", "EmailsSent"): 1,
        ("engagement", "EmailsDelivered"): 1,
    }
    first, second = links_of(email)[:2]

    # When Safe Links follows a link and Apple's proxy fetches the images
    at = sent_at + timedelta(minutes=3)
    world.clock.set(at + SECOND)
    scanned = [
        click(email, sent_at, at, first, ipAddress=SAFE_LINKS_IP),
        opened(email, sent_at, at, userAgent=APPLE_PROXY, ipAddress="172.225.80.14"),
    ]
    assert deliver([raw(r) for r in scanned]).failed == []
    # Then the function counts a machine's click and open
    assert metric_counts(capsys.readouterr().out) == {
        ("engagement", "MachineClicks"): 1,
        ("engagement", "MachineOpens"): 1,
    }

    # When the reader opens the email and clicks another link minutes later
    at = sent_at + timedelta(minutes=12)
    world.clock.set(at + SECOND)
    read = [opened(email, sent_at, at), click(email, sent_at, at + SECOND, second)]
    assert deliver([raw(r) for r in read]).failed == []
    # Then a person's open and click are counted
    assert metric_counts(capsys.readouterr().out) == {
        ("engagement", "HumanOpens"): 1,
        ("engagement", "HumanClicks"): 1,
    }


# -- bursts and the trap link ----------------------------------------------------------------


def test_a_burst_over_most_links_in_separate_batches_takes_back_the_first_clicks_points(
    world: NurtureWorld, deliver: Callable[..., Any]
) -> None:
    # Given a lead sent the whitepaper (its branch waits 3 days), delivered at once
    lead_id, email, sent_at = sent_welcome(world)
    assert deliver([raw(event("delivery", email, sent_at, sent_at + SECOND))]).failed == []
    links = links_of(email)
    assert int(email.tags["links"]) == len({href for href, _ in links}) >= 3
    # When, an hour later, a scanner clicks every link within two seconds, each click
    # arriving in a batch of its own; the first alone looks like a person's
    start = sent_at + timedelta(hours=1)
    world.clock.set(start + 5 * SECOND)
    first = click(email, sent_at, start, links[0])
    assert deliver([raw(first)]).failed == []
    assert score(world, lead_id) > 0
    enrolment = stored(world.repository, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.due_at == start  # the click decided the branch at once
    for i, link in enumerate(links[1:], start=1):
        at = start + i * (2 * SECOND) / len(links)
        assert deliver([raw(click(email, sent_at, at, link))]).failed == []

    # Then every click is a machine's, the first included, and no point is left
    clicks = timeline(world, lead_id, ActivityType.EMAIL_CLICKED)
    assert len(clicks) == len(links)
    assert all(c.details["verdict"] == "machine" for c in clicks)
    assert clicks[0].details["points"] == 0
    assert clicks[0].details["points_taken_back"] > 0
    assert "burst" in clicks[0].details["machine_reasons"]
    lead = stored(world.repository, lead_id)
    assert lead.score_units == Decimal(0)
    # and the branch waits again for a person, up to its three days
    assert lead.enrolment is not None
    assert lead.enrolment.sent["welcome"].clicked_at is None
    assert lead.enrolment.due_at == sent_at + timedelta(days=3)
    assert indexed_due_at(world.dynamodb, lead_id) == iso_due(sent_at + timedelta(days=3))
    # and the first click, delivered again (SQS is at least once), stays taken back
    assert deliver([raw(first)]).failed == []
    again = timeline(world, lead_id, ActivityType.EMAIL_CLICKED)[0]
    assert again.details["points"] == 0
    assert again.details["points_taken_back"] == clicks[0].details["points_taken_back"]
    assert stored(world.repository, lead_id).score_units == Decimal(0)
    # and the counters moved the first click from the people's column to the machines'
    assert email_counters(world, email, start) == {
        "delivered": 1,
        "clicks": len(links),
        "machine_clicks": len(links),
        "unique_machine_clicks": 1,
        "unique_machine_opens": 1,
    }


def iso_due(at: datetime) -> str:
    from shared.domain.clock import to_iso

    return to_iso(at)


def test_a_burst_in_one_batch_never_scores_and_a_later_person_click_does(
    world: NurtureWorld, deliver: Callable[..., Any]
) -> None:
    lead_id, email, sent_at = sent_welcome(world)
    links = links_of(email)
    start = sent_at + timedelta(minutes=30)
    world.clock.set(start + 5 * SECOND)
    # When a scanner's clicks on every link arrive in one batch
    burst = [
        raw(click(email, sent_at, start + i * 100 * timedelta(milliseconds=1), link))
        for i, link in enumerate(links)
    ]
    assert deliver(burst).failed == []
    # Then none of them scored, at any point, and the branch was not decided
    clicks = timeline(world, lead_id, ActivityType.EMAIL_CLICKED)
    assert [c.details["verdict"] for c in clicks] == ["machine"] * len(links)
    assert all("points_taken_back" not in c.details for c in clicks)
    assert stored(world.repository, lead_id).score_units == 0
    # When the reader clicks the guide twenty minutes later, from another browser
    later = start + timedelta(minutes=20)
    world.clock.set(later + SECOND)
    pricing = next(link for link in links if link[1] == ["pricing"])
    assert deliver([raw(click(email, sent_at, later, pricing, userAgent=OUTLOOK))]).failed == []
    # Then that click is a person's: it scores and decides the branch
    last = timeline(world, lead_id, ActivityType.EMAIL_CLICKED)[-1]
    assert last.at == later
    assert last.details["verdict"] == "human"
    assert last.details["points"] == 3 + 10  # click + the pricing link
    lead = stored(world.repository, lead_id)
    assert lead.enrolment is not None
    assert lead.enrolment.sent["welcome"].clicked_at == later
    assert lead.enrolment.due_at == later


def test_a_click_on_the_hidden_link_marks_the_clicks_around_it(
    world: NurtureWorld, deliver: Callable[..., Any]
) -> None:
    lead_id, email, sent_at = sent_welcome(world)
    links = links_of(email)
    trap = next(link for link in links if link[1] == ["trap"])
    visible = [link for link in links if link != trap]
    start = sent_at + timedelta(hours=3)
    world.clock.set(start + 5 * SECOND)
    # When two visible links and then the hidden one are clicked within two seconds, each
    # in its own batch (too few links for a burst on their own)
    assert deliver([raw(click(email, sent_at, start, visible[0]))]).failed == []
    assert deliver([raw(click(email, sent_at, start + SECOND, visible[1]))]).failed == []
    assert deliver([raw(click(email, sent_at, start + 2 * SECOND, trap))]).failed == []
    # Then all three are a machine's, and the score is back to nothing
    clicks = timeline(world, lead_id, ActivityType.EMAIL_CLICKED)
    assert [("trap_link" in c.details.get("machine_reasons", [])) for c in clicks] == [True] * 3
    assert stored(world.repository, lead_id).score_units == 0
    record = mail_record(world, lead_id, email)
    assert record.tally()["machine_clicks"] == 3


def test_a_delivery_reported_late_still_shows_the_gateways_open(
    world: NurtureWorld, deliver: Callable[..., Any]
) -> None:
    # Given an email whose delivery the receiving gateway held for ten minutes
    lead_id, email, sent_at = sent_welcome(world)
    delivered_at = sent_at + timedelta(minutes=10)
    # When the gateway's open, a second after it accepted the mail, is handled before
    # the Delivery event (SQS does not keep order)
    world.clock.set(delivered_at + 5 * SECOND)
    assert deliver([raw(opened(email, sent_at, delivered_at + SECOND))]).failed == []
    assert score(world, lead_id) == 1
    assert deliver([raw(event("delivery", email, sent_at, delivered_at))]).failed == []
    # Then the open is a machine's after all, and its point is taken back
    (open_activity,) = timeline(world, lead_id, ActivityType.EMAIL_OPENED)
    assert open_activity.details["machine_reasons"] == ["delivery_window"]
    assert open_activity.details["points_taken_back"] == 1
    assert stored(world.repository, lead_id).score_units == 0
    assert email_counters(world, email, delivered_at) == {
        "delivered": 1,
        "opens": 1,
        "machine_opens": 1,
        "unique_machine_opens": 1,
    }


# -- exactly once under faults --------------------------------------------------------------


def _mail_write(params: dict[str, Any]) -> bool:
    """The commit that writes an email's record (the event marker's transaction)."""
    return any(
        item.get("Put", {}).get("Item", {}).get("sk", {}).get("S", "").startswith("MAIL#")
        for item in params.get("TransactItems", [])
    )


def _mail_read(params: dict[str, Any]) -> bool:
    """The read of the lead with the email's record and the event's marker."""
    keys = params.get("RequestItems", {}).get(TABLE, {}).get("Keys", [])
    return any(str(k["sk"]["S"]).startswith("MAIL#") for k in keys)


FAULT_MATCH: dict[str, Callable[[dict[str, Any]], bool]] = {
    "TransactWriteItems": _mail_write,
    "BatchGetItem": _mail_read,
}
FAULTS = [
    ("the commit fails before it is made", "TransactWriteItems", "before"),
    ("the commit is made and its answer lost", "TransactWriteItems", "after"),
    ("the email record cannot be read", "BatchGetItem", "before"),
]


@pytest.mark.parametrize(("what", "operation", "position"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_burst_shown_by_a_click_that_fails_midway_is_taken_back_exactly_once(
    world: NurtureWorld,
    lambda_context: Any,
    what: str,
    operation: str,
    position: str,
) -> None:
    # Given a lead with one click that looked like a person's
    lead_id, email, sent_at = sent_welcome(world)
    deliver = engagement(
        recorder(world.dynamodb, world.clock, programs=world.programs), lambda_context
    )
    links = links_of(email)
    start = sent_at + timedelta(hours=1)
    world.clock.set(start + 10 * SECOND)
    assert deliver([raw(click(email, sent_at, start, links[0]))]).failed == []
    earned = score(world, lead_id)
    assert earned > 0
    # When a scanner clicks the other links within a second, and the click that shows
    # the burst hits a DynamoDB fault, then SQS redelivers it
    needed = load_engagement_rules().burst.links_needed(int(email.tags["links"]))
    assert needed is not None
    at = [start + i * 100 * timedelta(milliseconds=1) for i in range(len(links))]
    for i in range(1, needed - 1):
        assert deliver([raw(click(email, sent_at, at[i], links[i]))]).failed == []
    assert score(world, lead_id) >= earned  # not a burst yet: they look like a person's
    if position == "after":
        failed = lose_answer(world.dynamodb, operation, _mail_write)
    else:
        failed = fail_calls(world.dynamodb, operation, when=FAULT_MATCH[operation])
    showing = click(email, sent_at, at[needed - 1], links[needed - 1])
    first_try = deliver([raw(showing)])
    assert len(failed) == 1
    assert first_try.failed != []
    assert deliver(event=redelivered(first_try.event)).failed == []
    # and once more, as at-least-once delivery may
    assert deliver([raw(showing)]).failed == []
    for i in range(needed, len(links)):
        assert deliver([raw(click(email, sent_at, at[i], links[i]))]).failed == []

    # Then the points are taken back once: none left, none taken twice
    assert stored(world.repository, lead_id).score_units == 0
    # and every click is one activity, labelled a machine's
    clicks = timeline(world, lead_id, ActivityType.EMAIL_CLICKED)
    assert len(clicks) == len(links)
    assert {c.details["verdict"] for c in clicks} == {"machine"}
    assert clicks[0].details["points_taken_back"] > 0
    # and the counters count each click once, in the machines' column
    assert email_counters(world, email, start) == {
        "clicks": len(links),
        "machine_clicks": len(links),
        "unique_machine_clicks": 1,
        "unique_machine_opens": 1,
    }
    assert mail_record(world, lead_id, email).tally()["machine_clicks"] == len(links)


# -- the whole program ------------------------------------------------------------------------


def test_a_scanned_inbox_never_makes_an_mql_over_a_whole_program_but_a_person_does(
    clock: FixedClock, dynamodb: Any, lambda_context: Any
) -> None:
    # Given a grade A lead in the shipped welcome program, whose company's gateway opens
    # every email and follows every link within two seconds of delivery
    world = build_world(clock, dynamodb, TABLE, lambda_context)
    deliver = engagement(recorder(dynamodb, clock, programs=world.programs), lambda_context)
    lead = store_lead(world.repository, clock, **GRADE_A)
    scanner = {"userAgent": CHROME, "ipAddress": "52.101.44.9"}  # not a listed range

    # When the program runs to its end, every email scanned as it arrives
    seen = 0
    for _ in range(200):
        current = stored(world.repository, lead.lead_id)
        assert current.stage is Stage.LEAD, "a scanner made an MQL"
        enrolment = current.enrolment
        if enrolment is None or enrolment.due_at is None:
            break
        clock.set(max(enrolment.due_at, clock.now()))
        world.run()
        for email in world.ses.sent[seen:]:
            sent_at = clock.now()
            delivered = sent_at + SECOND
            records = [event("delivery", email, sent_at, delivered)]
            records.append(opened(email, sent_at, delivered + SECOND, **scanner))
            links = links_of(email)
            for i, link in enumerate(links):
                at = delivered + SECOND + i * SECOND / len(links)
                records.append(click(email, sent_at, at, link, **scanner))
            clock.advance(5 * SECOND)
            assert deliver([raw(r) for r in records]).failed == []
        seen = len(world.ses.sent)
        clock.advance(timedelta(minutes=1))
    else:
        pytest.fail("the program never ended")

    # Then it got every email of its path, scanned, and is still a lead without points
    assert len(world.ses.sent) >= 5
    final = stored(world.repository, lead.lead_id)
    assert final.stage is Stage.LEAD
    assert final.score_units == 0
    assert final.last_engaged_at is None
    clicks = activities(world.repository, lead.lead_id, ActivityType.EMAIL_CLICKED)
    assert clicks
    assert {c.details["verdict"] for c in clicks} == {"machine"}
    # (not one "clicked" branch was taken: the path is the one for a silent reader)
    assert final.enrolment is not None
    assert all(step.clicked_at is None for step in final.enrolment.sent.values())

    # When the reader, a day later, opens the last email and clicks through from Outlook
    email = world.ses.sent[-1]
    clock.advance(timedelta(days=1))
    later = clock.now() - timedelta(minutes=1)
    content = next(link for link in links_of(email) if link[1] != ["trap"])
    person = [
        raw(opened(email, later - timedelta(minutes=2), later - timedelta(minutes=1))),
        raw(click(email, later - timedelta(minutes=2), later, content, userAgent=OUTLOOK)),
    ]
    assert deliver(person).failed == []
    # Then that click scores
    last = timeline(world, lead.lead_id, ActivityType.EMAIL_CLICKED)[-1]
    assert last.details["verdict"] == "human"
    assert last.details["points"] >= 3
    assert RULES.score(stored(world.repository, lead.lead_id).score_units, clock.now()) > 0


def test_the_mail_record_item_lives_under_its_lead(world: NurtureWorld, deliver: Any) -> None:
    lead_id, email, sent_at = sent_welcome(world)
    assert deliver([raw(event("delivery", email, sent_at, sent_at + SECOND))]).failed == []
    assert email.message_id is not None
    item = world.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": lead_pk(lead_id)}, "sk": {"S": mail_sk(email.message_id)}}
    )["Item"]
    assert item["delivered_at"]["S"].startswith(iso(sent_at + SECOND)[:19])
    assert int(item["expires_at"]["N"]) > int(sent_at.timestamp()) + 300 * 86400

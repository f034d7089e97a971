"""Seminars and webinars end to end on moto, over the event's clock: a registration through
``POST /leads``, the confirmation with its ``.ics`` file, the reminders at their times (a
late registrant skipping the ones whose time passed), a check-in, the follow-up or the
recording, a full event's waiting list and the place a cancellation frees, and the report
per event. The shipped ``event`` and ``event_waitlist`` programs; the events are this
file's, on dates the tests' clock knows."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from aws_lambda_powertools import Logger

from functions.capture.handler import Dependencies, build_app, lambda_handler
from functions.capture.settings import CaptureSettings
from infra.cli import main, reports
from shared.adapters.counters import DynamoCounterReader
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.calendar import uid
from shared.domain.clock import FixedClock, SystemClock
from shared.domain.events import Event, EventCatalog, Localized, load_events
from shared.domain.funnel import business_day
from shared.domain.leads import ActivityType, Lead, RegistrationStatus
from shared.domain.programs import CONTENT_DIR, load_programs
from shared.domain.scoring import Signal, load_scoring
from shared.ports import VersionConflict
from shared.services.capture import LeadCapture, RequestInfo
from shared.services.qualification import ScoreKeeper
from shared.services.registration import EventDesk
from shared.web.pages import Pages
from shared.web.submission import parse_submission
from tests.builders import overwrite
from tests.events import form_post, rest_event
from tests.integration.conftest import TABLE
from tests.integration.nurture import NurtureWorld, SentEmail, build_world

JST = ZoneInfo("Asia/Tokyo")
MINUTE = timedelta(minutes=1)
ACCEPT_JSON = {"Accept": "application/json"}
WEBINAR = Event(
    id="dx-webinar-2026-12",
    title=Localized(ja="はじめての業務フロー電子化ウェビナー", en="Digital workflows webinar"),
    start=datetime(2026, 12, 10, 14, 0, tzinfo=JST),  # a Thursday
    end=datetime(2026, 12, 10, 15, 0, tzinfo=JST),
    url="https://webinar.example.com/j/2026121014",
    page="/seminars/dx-webinar-2026-12/",
    materials_url="/seminars/dx-webinar-2026-12/materials/",
    recording_url="/seminars/dx-webinar-2026-12/recording/",
)
SEMINAR = Event(
    id="case-night-2026-12",
    title=Localized(ja="導入事例ナイト 東京", en="Customer Stories Night Tokyo"),
    start=datetime(2026, 12, 17, 18, 30, tzinfo=JST),
    end=datetime(2026, 12, 17, 20, 30, tzinfo=JST),
    venue=Localized(ja="丸の内ホール 5階", en="Marunouchi Hall, 5F"),
    capacity=2,
    page="/seminars/case-night-2026-12/",
)
EVENTS = EventCatalog([WEBINAR, SEMINAR])
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=JST)

Post = Callable[..., dict[str, Any]]


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    clock.set(MONDAY_10.astimezone(UTC))
    return build_world(clock, dynamodb, TABLE, lambda_context, events=EVENTS)


@pytest.fixture
def register(world: NurtureWorld, capture_settings: CaptureSettings, lambda_context: Any) -> Post:
    """Post a form to ``POST /leads`` as a browser's script would; the JSON answer."""
    capture = LeadCapture(
        world.repository,
        world.programs,
        world.clock,
        capture_settings.consent_version,
        scores=ScoreKeeper(load_scoring()),
        events=EVENTS,
    )
    app = build_app(Dependencies(capture_settings, capture, Pages(), Logger(service="capture")))

    def post(email: str, event: Event = WEBINAR, **fields: str) -> dict[str, Any]:
        form = {
            "email": email,
            "name": "山田 花子",
            "company": "株式会社テスト商事",
            "form_type": "seminar_registration",
            "event": event.id,
            "consent": "on",
            **fields,
        }
        response = lambda_handler(form_post(form, headers=ACCEPT_JSON), lambda_context, app)
        assert response["statusCode"] in (200, 201), response
        answer: dict[str, Any] = json.loads(response["body"])
        return answer

    return post


def at(world: NurtureWorld, moment: datetime) -> list[SentEmail]:
    """Move the clock to ``moment``, tick and send: the event emails that went."""
    world.clock.set(moment.astimezone(UTC))
    before = len(world.ses.sent)
    world.run()
    world.run()  # a lead whose welcome email took the tick: its event email goes next
    return [e for e in world.ses.sent[before:] if e.tags["program"].startswith("event")]


def steps(sent: list[SentEmail]) -> dict[str, str]:
    """Who got which event step: address -> step."""
    found: dict[str, str] = {}
    for email in sent:
        assert email.to not in found, f"two event emails to {email.to} at once"
        found[email.to] = email.tags["step"]
    return found


def lead_of(world: NurtureWorld, email: str) -> Lead:
    lead = world.repository.find_by_email(email)
    assert lead is not None
    return lead


def calendar_of(email: SentEmail) -> tuple[bytes, icalendar.Calendar]:
    message = email.message
    assert message.get_content_type() == "multipart/mixed"
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert isinstance(part, EmailMessage)
    assert part.get_filename() == f"{WEBINAR.id}.ics"
    assert part.get_param("method") == "PUBLISH"
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data, icalendar.Calendar.from_ical(data)


def activities(world: NurtureWorld, lead_id: str, kind: ActivityType) -> list[dict[str, Any]]:
    return [a.details for a in world.repository.history(lead_id) if a.type is kind]


# -- the whole journey ----------------------------------------------------------------------


def test_a_registrant_is_confirmed_reminded_and_followed_up_on_the_events_clock(
    world: NurtureWorld, register: Post
) -> None:
    # Given two leads who register for Thursday's webinar on Monday morning
    answer = register("hanako@example.co.jp", job_title="部長")
    assert answer["registration"] == "registered"
    register("taro@example.co.jp")

    # When the scheduler ticks, each gets the confirmation at once, the event attached
    sent = at(world, MONDAY_10)
    assert steps(sent) == {
        "hanako@example.co.jp": "confirmation",
        "taro@example.co.jp": "confirmation",
    }
    confirmation = next(e for e in sent if e.to == "hanako@example.co.jp")
    assert "はじめての業務フロー電子化ウェビナー" in confirmation.message["Subject"]
    assert "2026年12月10日（木）14:00〜15:00" in confirmation.part("plain")
    assert WEBINAR.url in confirmation.part("html")
    raw, calendar = calendar_of(confirmation)
    assert calendar["METHOD"] == "PUBLISH"
    (vevent,) = calendar.walk("VEVENT")
    assert vevent.decoded("DTSTART") == WEBINAR.start
    assert vevent.decoded("DTEND") == WEBINAR.end
    assert str(vevent["SUMMARY"]) == WEBINAR.title.ja
    assert str(vevent["LOCATION"]) == WEBINAR.url
    hanako = lead_of(world, "hanako@example.co.jp")
    assert str(vevent["UID"]) == uid(WEBINAR.id, hanako.lead_id, "example.co.jp")
    # an RFC 5545 file: CRLF lines of at most 75 octets
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in raw.split(b"\r\n"))
    # a calendar entry per registrant, the same one in every email to that registrant
    _, other = calendar_of(next(e for e in sent if e.to == "taro@example.co.jp"))
    assert other.walk("VEVENT")[0]["UID"] != vevent["UID"]

    # Then the day before, nothing goes until 10:00, when both are reminded
    assert at(world, datetime(2026, 12, 9, 9, 59, tzinfo=JST)) == []
    sent = at(world, datetime(2026, 12, 9, 10, 0, tzinfo=JST))
    assert set(steps(sent).values()) == {"reminder_day_before"}
    assert len(sent) == 2
    assert "【明日開催】" in sent[0].message["Subject"]

    # and on the day, two hours before the start
    assert at(world, datetime(2026, 12, 10, 11, 59, tzinfo=JST)) == []
    sent = at(world, datetime(2026, 12, 10, 12, 0, tzinfo=JST))
    assert set(steps(sent).values()) == {"reminder_two_hours"}
    assert len(sent) == 2

    # When hanako checks in at the webinar (the attendance form) and taro does not come
    world.clock.set(datetime(2026, 12, 10, 14, 5, tzinfo=JST).astimezone(UTC))
    score_before = lead_of(world, "hanako@example.co.jp").score_units
    register("hanako@example.co.jp", form_type="seminar_attendance")

    # Then her attendance is recorded and scored by the rule for it
    hanako = lead_of(world, "hanako@example.co.jp")
    registration = hanako.registrations[WEBINAR.id]
    assert registration.status is RegistrationStatus.REGISTERED
    assert registration.attended_at == world.clock.now()
    assert activities(world, hanako.lead_id, ActivityType.EVENT_ATTENDED) == [
        {"event_id": WEBINAR.id, "status": "registered"}
    ]
    posted = activities(world, hanako.lead_id, ActivityType.FORM_SUBMITTED)[-1]
    points = load_scoring().behaviour[Signal.SEMINAR_ATTENDANCE].points
    assert posted["points"] == points
    assert hanako.score_units > score_before
    # and checking in twice scores once
    register("hanako@example.co.jp", form_type="seminar_attendance", message="again")
    assert lead_of(world, "hanako@example.co.jp").score_units == hanako.score_units

    # And the morning after, she gets the materials and a meeting offer, he the recording
    assert at(world, datetime(2026, 12, 11, 9, 59, tzinfo=JST)) == []
    sent = at(world, datetime(2026, 12, 11, 10, 0, tzinfo=JST))
    assert steps(sent) == {
        "hanako@example.co.jp": "follow_up",
        "taro@example.co.jp": "recording",
    }
    follow_up = next(e for e in sent if e.to == "hanako@example.co.jp")
    html = follow_up.part("html")
    assert 'ses:tags="link:materials;"' in html
    assert 'ses:tags="link:meeting;"' in html
    assert "/seminars/dx-webinar-2026-12/materials/" in html
    recording = next(e for e in sent if e.to == "taro@example.co.jp")
    assert "/seminars/dx-webinar-2026-12/recording/" in recording.part("plain")

    # and their event programs are over: each skipped the other's email
    for address, skipped in (
        ("hanako@example.co.jp", {"recording": "skip_if:attendance:attended"}),
        ("taro@example.co.jp", {"follow_up": "only_if:attendance"}),
    ):
        enrolment = lead_of(world, address).registrations[WEBINAR.id].enrolment
        assert enrolment is not None
        assert enrolment.completed_at is not None
        assert enrolment.skipped == skipped
        assert set(enrolment.sent) == {
            "confirmation",
            "reminder_day_before",
            "reminder_two_hours",
            *({"follow_up", "recording"} - set(skipped)),
        }
    assert at(world, datetime(2026, 12, 14, 10, 0, tzinfo=JST)) == []


def test_a_late_registrant_skips_the_reminders_whose_time_has_passed(
    world: NurtureWorld, register: Post
) -> None:
    # Given a lead who registers on the day, after the day-before reminder's time
    world.clock.set(datetime(2026, 12, 10, 11, 0, tzinfo=JST).astimezone(UTC))
    register("late@example.co.jp")

    # When the scheduler ticks, it is confirmed at once
    assert steps(at(world, datetime(2026, 12, 10, 11, 0, tzinfo=JST))) == {
        "late@example.co.jp": "confirmation"
    }
    # Then it gets only the two-hour reminder, at 12:00
    assert steps(at(world, datetime(2026, 12, 10, 12, 0, tzinfo=JST))) == {
        "late@example.co.jp": "reminder_two_hours"
    }
    # And a lead who registers after the two-hour reminder's time gets the confirmation
    world.clock.set(datetime(2026, 12, 10, 12, 30, tzinfo=JST).astimezone(UTC))
    register("later@example.co.jp")
    assert steps(at(world, datetime(2026, 12, 10, 12, 30, tzinfo=JST))) == {
        "later@example.co.jp": "confirmation"
    }
    # and nobody is reminded of anything again before the event
    assert at(world, datetime(2026, 12, 10, 13, 59, tzinfo=JST)) == []

    # and the timeline says why each reminder was not sent
    late, later = lead_of(world, "late@example.co.jp"), lead_of(world, "later@example.co.jp")
    skipped = activities(world, late.lead_id, ActivityType.STEP_SKIPPED)
    assert [(s["step_id"], s["reason"]) for s in skipped] == [
        ("reminder_day_before", "event_time_passed")
    ]
    skipped = activities(world, later.lead_id, ActivityType.STEP_SKIPPED)
    assert sorted((s["step_id"], s["reason"]) for s in skipped) == [
        ("reminder_day_before", "event_time_passed"),
        ("reminder_two_hours", "event_time_passed"),
    ]
    # and the one who missed the webinar gets the recording the next morning
    sent = steps(at(world, datetime(2026, 12, 11, 10, 0, tzinfo=JST)))
    assert sent == {"late@example.co.jp": "recording", "later@example.co.jp": "recording"}


def test_a_reminder_kept_back_past_the_start_is_never_sent(
    world: NurtureWorld, register: Post
) -> None:
    # Given a registrant whose two-hour reminder did not go at 12:00 (sending was paused)
    register("hanako@example.co.jp")
    at(world, MONDAY_10)
    at(world, datetime(2026, 12, 9, 10, 0, tzinfo=JST))
    # When the scheduler next runs after the start
    sent = at(world, datetime(2026, 12, 10, 14, 1, tzinfo=JST))
    # Then the reminder is skipped, not sent late
    assert sent == []
    lead = lead_of(world, "hanako@example.co.jp")
    skipped = activities(world, lead.lead_id, ActivityType.STEP_SKIPPED)
    assert [(s["step_id"], s["reason"]) for s in skipped] == [
        ("reminder_two_hours", "event_started")
    ]


def test_registering_again_changes_nothing_and_an_ended_event_takes_no_registration(
    world: NurtureWorld, register: Post
) -> None:
    register("hanako@example.co.jp")
    registered = lead_of(world, "hanako@example.co.jp")
    # When the same lead registers again (another post of the form)
    assert "registration" not in register("hanako@example.co.jp", message="もう一度")
    lead = lead_of(world, "hanako@example.co.jp")
    # Then its registration and score are as they were
    assert lead.registrations == registered.registrations
    assert lead.score_units == registered.score_units
    # And after the event, a registration form for it records the post and nothing more
    world.clock.set(WEBINAR.end.astimezone(UTC))
    assert "registration" not in register("late@example.co.jp")
    assert lead_of(world, "late@example.co.jp").registrations == {}


# -- capacity and the waiting list ----------------------------------------------------------


def test_a_full_event_waitlists_and_a_cancellation_gives_the_place_to_who_waited_longest(
    world: NurtureWorld, register: Post
) -> None:
    # Given a seminar of 2 places and four registrations in turn
    answers = {}
    for name in ("a", "b", "c", "d"):
        answers[name] = register(f"{name}@example.co.jp", event=SEMINAR)["registration"]
        world.clock.advance(MINUTE)
    # Then the first two have places, the others wait, each told so at once
    assert answers == {"a": "registered", "b": "registered", "c": "waitlisted", "d": "waitlisted"}
    sent = at(world, world.clock.now())
    assert steps(sent) == {
        "a@example.co.jp": "confirmation",
        "b@example.co.jp": "confirmation",
        "c@example.co.jp": "waitlisted",
        "d@example.co.jp": "waitlisted",
    }
    waitlisted = next(e for e in sent if e.to == "c@example.co.jp")
    assert waitlisted.tags["program"] == "event_waitlist"
    assert "キャンセル待ち" in waitlisted.message["Subject"]
    assert waitlisted.message.get_content_type() == "multipart/alternative"  # no .ics
    ids = {n: lead_of(world, f"{n}@example.co.jp").lead_id for n in "abcd"}
    seats = world.repository.seats(SEMINAR.id)
    assert seats.holders == {ids["a"], ids["b"]}
    assert list(seats.waiting) == [ids["c"], ids["d"]]

    # When a cancels
    desk = EventDesk(world.repository, world.programs, world.clock)
    done = desk.cancel(SEMINAR, ids["a"])

    # Then c, who waited longest, gets the place, and is told so with the event attached
    assert done.cancelled
    assert done.promoted == (ids["c"],)
    c = lead_of(world, "c@example.co.jp").registrations[SEMINAR.id]
    assert (c.status, c.waitlisted_at is not None) == (RegistrationStatus.REGISTERED, True)
    sent = at(world, world.clock.now())
    assert steps(sent) == {"c@example.co.jp": "confirmation", "a@example.co.jp": "cancelled"}
    confirmed = next(e for e in sent if e.to == "c@example.co.jp")
    assert "お席をご用意できました" in confirmed.part("plain")
    part = next(confirmed.message.iter_attachments())
    assert part.get_content_type() == "text/calendar"
    seats = world.repository.seats(SEMINAR.id)
    assert seats.holders == {ids["b"], ids["c"]}
    assert list(seats.waiting) == [ids["d"]]

    # and a is told, with the update that takes the entry off its calendar
    cancelled = next(e for e in sent if e.to == "a@example.co.jp")
    assert "お申し込みの取り消し" in cancelled.message["Subject"]
    (part,) = list(cancelled.message.iter_attachments())
    assert (part.get_content_type(), part.get_param("method")) == ("text/calendar", "CANCEL")
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    calendar = icalendar.Calendar.from_ical(data)
    (entry,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "CANCEL"
    assert (str(entry["STATUS"]), int(entry["SEQUENCE"])) == ("CANCELLED", 1)
    assert str(entry["UID"]) == uid(SEMINAR.id, ids["a"], "example.co.jp")
    # and its event emails stop
    a = lead_of(world, "a@example.co.jp").registrations[SEMINAR.id]
    assert a.status is RegistrationStatus.CANCELLED
    assert a.enrolment is not None
    assert (a.enrolment.program_id, a.enrolment.outcome) == ("event_cancelled", "completed")
    reminded = steps(at(world, datetime(2026, 12, 16, 10, 0, tzinfo=JST)))
    assert reminded == {
        "b@example.co.jp": "reminder_day_before",
        "c@example.co.jp": "reminder_day_before",
    }

    # When the cancellation is run again (the operator's retry), nothing changes
    again = desk.cancel(SEMINAR, ids["a"])
    assert (again.cancelled, again.promoted) == (False, ())
    assert world.repository.seats(SEMINAR.id) == seats
    # and a new registration still waits behind d
    assert register("e@example.co.jp", event=SEMINAR)["registration"] == "waitlisted"


def test_two_registrations_for_the_last_place_give_it_to_one(
    world: NurtureWorld, register: Post
) -> None:
    # Given one place left
    register("a@example.co.jp", event=SEMINAR)
    stale = world.repository.seats(SEMINAR.id)
    # When another registration takes it after this one read the seats
    register("b@example.co.jp", event=SEMINAR)
    # Then writing on the stale read is refused: the loser reads again and waits
    with pytest.raises(VersionConflict):
        world.repository.save_seats(stale.taking("someone"))
    assert register("c@example.co.jp", event=SEMINAR)["registration"] == "waitlisted"
    assert len(world.repository.seats(SEMINAR.id).holders) == 2


# -- the report per event -------------------------------------------------------------------


def test_the_report_shows_registrations_attendance_rate_and_mqls_per_event(
    world: NurtureWorld, register: Post
) -> None:
    # Given four registrants of the webinar, one of whom cancels
    for name in ("a", "b", "c", "d"):
        register(f"{name}@example.co.jp", job_title="部長", industry="製造業")
    desk = EventDesk(world.repository, world.programs, world.clock)
    desk.cancel(WEBINAR, lead_of(world, "d@example.co.jp").lead_id)
    # and two of the other three come, with one who did not register
    world.clock.set(datetime(2026, 12, 10, 14, 5, tzinfo=JST).astimezone(UTC))
    for name in ("a", "b", "walk-in"):
        register(f"{name}@example.co.jp", form_type="seminar_attendance")
    # and one attendee asks for a meeting the next day (an inquiry: MQL)
    world.clock.set(datetime(2026, 12, 11, 11, 0, tzinfo=JST).astimezone(UTC))
    register("a@example.co.jp", form_type="inquiry", message="個別相談を希望します")
    # and one registrant of the seminar
    register("e@example.co.jp", event=SEMINAR)

    # When the counters of the period are summed for the report
    reader = DynamoCounterReader(world.dynamodb, TABLE)
    totals = reports.collect(reader, business_day(MONDAY_10), business_day(world.clock.now()))
    table = reports.events_table(totals, EVENTS)

    # Then each event has its line
    assert table.headers[3:] == [
        "registered",
        "cancelled",
        "waitlisted",
        "attended",
        "attendance",
        "walk-ins",
        "MQL",
    ]
    rows = {row[0]: row for row in table.rows}
    assert rows[WEBINAR.id][1:] == [
        WEBINAR.title.ja,
        "2026-12-10",
        "4",
        "1",
        "0",
        "2",
        "66.7%",  # 2 of the 3 places still held
        "1",
        "1",
    ]
    assert rows[SEMINAR.id][3:] == ["1", "0", "0", "0", "0.0%", "0", "0"]
    assert [row[0] for row in table.rows] == [WEBINAR.id, SEMINAR.id]


# -- the operator CLI -----------------------------------------------------------------------


def test_the_cli_cancels_imports_the_attendee_list_and_reports_the_event(
    dynamodb: Any,
    capture_settings: CaptureSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "LEAD_NURTURE_CONTENT", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no cdk.json: the deployment defaults
    # Given content with a webinar of one place, the day after tomorrow (the CLI's clock
    # is the system's)
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    now = SystemClock().now()
    start = (now + timedelta(days=2)).astimezone(JST).replace(hour=14, minute=0, second=0)
    document = {
        "cli-webinar": {
            "title": {"ja": "CLIウェビナー", "en": "CLI webinar"},
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "url": "https://webinar.example.com/j/7",
            "page": "/seminars/cli-webinar/",
            "capacity": 1,
        }
    }
    (content / "events.yaml").write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    events = load_events(content / "events.yaml")
    repository = DynamoLeadRepository(dynamodb, TABLE)
    capture = LeadCapture(
        repository,
        load_programs(content / "programs"),
        FixedClock(now),
        capture_settings.consent_version,
        scores=ScoreKeeper(load_scoring()),
        events=events,
    )
    for name in ("a", "b"):
        form = {"email": f"{name}@example.co.jp", "form_type": "seminar_registration"}
        form |= {"event": "cli-webinar", "consent": "true"}
        capture.capture(parse_submission({k: [v] for k, v in form.items()}), RequestInfo())
    b = repository.find_by_email("b@example.co.jp")
    assert b is not None
    assert b.registrations["cli-webinar"].status is RegistrationStatus.WAITLISTED
    table = ["--table", TABLE, "--content", str(content)]

    # When the operator cancels a's registration
    assert main(["cancel", "cli-webinar", "a@example.co.jp", *table]) == 0
    out = capsys.readouterr().out
    # Then b gets the place
    assert out.splitlines() == ["cancelled", f"place given to {b.lead_id} (waited longest)"]
    assert main(["cancel", "cli-webinar", "a@example.co.jp", *table]) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing to cancel: no place or turn held"]

    # When the webinar's attendee report is imported: b came, and c, who had not registered
    attendees = tmp_path / "attendees.csv"
    attendees.write_text(
        "名前,メールアドレス\r\n佐藤 b,b@example.co.jp\r\n鈴木 c,c@example.co.jp\r\n"
    )
    assert main(["attendance", "cli-webinar", str(attendees), *table]) == 0
    out = capsys.readouterr().out
    assert re.search(r"created\s+1", out)
    assert re.search(r"merged \(updated\)\s+1", out)
    # Then b is marked attended and c is a walk-in
    b = repository.find_by_email("b@example.co.jp")
    c = repository.find_by_email("c@example.co.jp")
    assert b is not None
    assert c is not None
    assert b.registrations["cli-webinar"].attended_at is not None
    assert c.registrations["cli-webinar"].status is RegistrationStatus.WALK_IN
    assert b.last_touch.source == "event:cli-webinar"
    # and importing the list again changes nothing
    assert main(["attendance", "cli-webinar", str(attendees), *table]) == 0
    assert re.search(r"unchanged \(already imported\)\s+2", capsys.readouterr().out)
    # and an unknown event is refused, naming the ones there are
    assert main(["attendance", "no-such-event", str(attendees), *table]) == 2
    assert "events: cli-webinar" in capsys.readouterr().err

    # When the report per event is asked for
    assert main(["report", "events", *table]) == 0
    out = capsys.readouterr().out
    # Then the webinar's line: 2 places given (a, then b), 1 given up, 1 waited, b came
    (line,) = [row for row in out.splitlines() if row.startswith("cli-webinar")]
    assert line.split()[3:] == ["2", "1", "1", "1", "100.0%", "1", "0"]


# -- invitations ------------------------------------------------------------------------------


def test_the_welcome_invitation_names_the_next_event_unless_the_lead_registered_for_it(
    world: NurtureWorld, register: Post
) -> None:
    # Given two leads of the welcome program at its seminar invitation, one of whom has
    # registered for Thursday's webinar already
    register("invited@example.co.jp", event=SEMINAR, form_type="download")
    register("registered@example.co.jp")
    at(world, MONDAY_10)  # the registrant's confirmation, both leads' welcome
    for address in ("invited@example.co.jp", "registered@example.co.jp"):
        lead = lead_of(world, address)
        assert lead.enrolment is not None
        invitation = lead.enrolment.model_copy(
            update={"step_id": "seminar_invitation", "due_at": world.clock.now()}
        )
        overwrite(world.repository, lead.model_copy(update={"enrolment": invitation}))

    # When the scheduler ticks
    before = len(world.ses.sent)
    world.run()

    # Then the first is invited to the webinar, three days ahead, with its page
    (sent,) = world.ses.sent[before:]
    assert (sent.to, sent.tags["step"]) == ("invited@example.co.jp", "seminar_invitation")
    assert WEBINAR.title.ja in sent.part("plain")
    assert "2026年12月10日（木）14:00〜15:00" in sent.part("plain")
    assert "https://www.example.co.jp/seminars/dx-webinar-2026-12/?utm_source=" in sent.part("html")
    # and the registrant is not invited to what it registered for: it moves on
    registered = lead_of(world, "registered@example.co.jp")
    skipped = activities(world, registered.lead_id, ActivityType.STEP_SKIPPED)
    assert [(s["step_id"], s["reason"]) for s in skipped] == [
        ("seminar_invitation", f"registered:{WEBINAR.id}")
    ]
    assert registered.enrolment is not None
    assert registered.enrolment.step_id == "free_trial"


# -- the cancellation link in the event emails ------------------------------------------------


@pytest.fixture
def links(world: NurtureWorld, lambda_context: Any) -> Callable[[str, str], dict[str, Any]]:
    """Open (GET) or press the button of (POST) a link of the email-links function."""
    from functions.unsubscribe.handler import Dependencies as LinkDependencies
    from functions.unsubscribe.handler import EventLinks
    from functions.unsubscribe.handler import build_app as build_links
    from functions.unsubscribe.handler import lambda_handler as links_handler

    desk = EventDesk(world.repository, world.programs, world.clock)
    app = build_links(
        LinkDependencies(
            world.repository,
            world.tokens,
            world.clock,
            Pages(),
            Logger(service="unsubscribe"),
            event_links=lambda: EventLinks(EVENTS, desk),
        )
    )

    def call(method: str, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        event = rest_event(method, parts.path.removeprefix("/v1"), query=query)
        response: dict[str, Any] = links_handler(event, lambda_context, app)
        return response

    return call


def cancel_link(email: SentEmail) -> str:
    (link,) = set(re.findall(r"https://\S+/events/cancel\?\S+", email.part("plain")))
    assert link in email.part("html").replace("&amp;", "&")
    return link


def test_the_confirmations_link_opens_a_page_whose_button_gives_the_place_up(
    world: NurtureWorld, register: Post, links: Callable[[str, str], dict[str, Any]]
) -> None:
    # Given a seminar of 2 places, full, with one lead waiting
    for name in ("a", "b", "c"):
        register(f"{name}@example.co.jp", event=SEMINAR)
        world.clock.advance(MINUTE)
    sent = {e.to: e for e in at(world, world.clock.now())}
    ids = {n: lead_of(world, f"{n}@example.co.jp").lead_id for n in "abc"}
    link = cancel_link(sent["a@example.co.jp"])
    assert "ses:no-track" in sent["a@example.co.jp"].part("html")  # a click scores nothing
    assert "キャンセル待ちが不要になった場合" in sent["c@example.co.jp"].part("plain")
    seats = world.repository.seats(SEMINAR.id)

    # When the link is opened (a person, or a mail scanner following it)
    page = links("GET", link)
    # Then a page asks to confirm, and nothing changes
    assert page["statusCode"] == 200
    assert "お申し込みの取り消し" in page["body"]
    assert SEMINAR.title.ja in page["body"]
    assert 'method="post"' in page["body"]
    assert page["multiValueHeaders"]["Cache-Control"] == ["no-store"]
    assert world.repository.seats(SEMINAR.id) == seats

    # When its button is pressed
    done = links("POST", link)
    # Then the place goes to c, who waited, and a gets the cancellation's email
    assert done["statusCode"] == 200
    assert "お申し込みを取り消しました" in done["body"]
    seats = world.repository.seats(SEMINAR.id)
    assert seats.holders == {ids["b"], ids["c"]}
    assert steps(at(world, world.clock.now())) == {
        "a@example.co.jp": "cancelled",
        "c@example.co.jp": "confirmation",
    }
    # and pressing it again (or opening it) says there is nothing left to cancel
    assert "取り消すお申し込みはありません" in links("POST", link)["body"]
    assert "取り消すお申し込みはありません" in links("GET", link)["body"]
    assert world.repository.seats(SEMINAR.id) == seats


def test_a_cancellation_link_altered_for_another_lead_or_event_is_refused(
    world: NurtureWorld, register: Post, links: Callable[[str, str], dict[str, Any]]
) -> None:
    register("a@example.co.jp", event=SEMINAR)
    register("b@example.co.jp", event=SEMINAR)
    sent = {e.to: e for e in at(world, world.clock.now())}
    link = cancel_link(sent["a@example.co.jp"])
    other = lead_of(world, "b@example.co.jp").lead_id
    token = dict(parse_qsl(urlsplit(link).query))["t"]
    forged = [
        link.replace(token, other + token[32:]),  # b's id with a's signature
        link.replace(SEMINAR.id, WEBINAR.id),  # a's signature for another event
        link.replace(token, token[:-2]),
        link.split("?")[0],
    ]
    seats = world.repository.seats(SEMINAR.id)
    for url in forged:
        for method in ("GET", "POST"):
            answer = links(method, url)
            assert answer["statusCode"] == 400, url
            assert "このリンクは無効です" in answer["body"]
    assert world.repository.seats(SEMINAR.id) == seats


def test_a_cancellation_link_after_the_start_changes_nothing(
    world: NurtureWorld, register: Post, links: Callable[[str, str], dict[str, Any]]
) -> None:
    register("a@example.co.jp", event=SEMINAR)
    link = cancel_link(steps_email(at(world, world.clock.now()), "a@example.co.jp"))
    world.clock.set(SEMINAR.start.astimezone(UTC))
    answer = links("POST", link)
    assert answer["statusCode"] == 200
    assert "このイベントは開始しています" in answer["body"]
    registration = lead_of(world, "a@example.co.jp").registrations[SEMINAR.id]
    assert registration.status is RegistrationStatus.REGISTERED


def steps_email(sent: list[SentEmail], address: str) -> SentEmail:
    return next(e for e in sent if e.to == address)


def test_erasing_a_lead_gives_its_place_to_the_lead_waiting_longest(
    world: NurtureWorld, register: Post
) -> None:
    for name in ("a", "b", "c"):
        register(f"{name}@example.co.jp", event=SEMINAR)
        world.clock.advance(MINUTE)
    at(world, world.clock.now())
    ids = {n: lead_of(world, f"{n}@example.co.jp").lead_id for n in "abc"}
    desk = EventDesk(world.repository, world.programs, world.clock)
    lead = lead_of(world, "a@example.co.jp")

    # When a is erased (the admin API gives its places up first)
    assert desk.withdraw(lead, EVENTS) == (ids["c"],)
    assert world.repository.erase(ids["a"])

    # Then its id holds no place, c has it, and no email goes to the erased address
    seats = world.repository.seats(SEMINAR.id)
    assert seats.holders == {ids["b"], ids["c"]}
    assert not seats.waiting
    assert steps(at(world, world.clock.now())) == {"c@example.co.jp": "confirmation"}

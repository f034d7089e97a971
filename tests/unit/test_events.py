"""Seminars and webinars: the events content (shared/content/events.yaml), the .ics file
(parsed back with a real iCalendar parser), steps timed by the event, registration,
attendance, the waiting list, and what each counts for the report per event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml

from infra.cli.content import SAMPLE_EVENTS, event_problems
from shared.domain import nurture
from shared.domain.calendar import CONTENT_TYPE, escape, event_ics, fold, uid
from shared.domain.email import Attachment, OutgoingEmail, RenderedEmail, build_mime
from shared.domain.events import Event, EventCatalog, Localized, load_events
from shared.domain.funnel import EVENT_PREFIX, lead_counts
from shared.domain.jobs import SendJob
from shared.domain.leads import (
    ConsentState,
    FormType,
    Lead,
    RegistrationStatus,
    Seats,
    Stage,
    Touch,
)
from shared.domain.programs import EventTiming, Program, load_programs
from shared.services.registration import attend, cancel, promote, register

JST = ZoneInfo("Asia/Tokyo")
CATALOG = load_programs()
EVENTS = load_events()
WEBINAR = Event(
    id="dx-webinar",
    title=Localized(ja="DX入門ウェビナー", en="DX webinar"),
    start=datetime(2026, 12, 10, 14, 0, tzinfo=JST),
    end=datetime(2026, 12, 10, 15, 0, tzinfo=JST),
    url="https://webinar.example.com/j/42",
    page="/seminars/dx-webinar/",
)
SEMINAR = Event(
    id="case-night",
    title=Localized(ja="導入事例ナイト", en="Customer Stories Night"),
    start=datetime(2026, 12, 17, 18, 30, tzinfo=JST),
    end=datetime(2026, 12, 17, 20, 30, tzinfo=JST),
    venue=Localized(ja="丸の内ホール 5階", en="Marunouchi Hall, 5F"),
    capacity=2,
    page="/seminars/case-night/",
)
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=JST)
PAGE = "https://www.example.co.jp/seminars/dx-webinar/"


def lead(number: int = 1, at: datetime = MONDAY) -> Lead:
    touch = Touch(at=at, form_type=FormType.SEMINAR_REGISTRATION, asset=WEBINAR.id)
    return Lead(
        lead_id=f"{number:032x}",
        email=f"lead{number}@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=at, wording_version="2026-01"),
        created_at=at,
        updated_at=at,
    )


def program(program_id: str = "event") -> Program:
    found = CATALOG.get(program_id)
    assert found is not None
    return found


# -- the content ---------------------------------------------------------------------------


def test_the_shipped_events_load_each_with_its_event_programs_and_reminders_in_time() -> None:
    assert [e.id for e in EVENTS.events] == ["dx-webinar-2027-01", "case-study-night-2027-02"]
    for event in EVENTS.events:
        assert event.start.tzinfo is not None
        assert event.start < event.end
        assert event.online or event.venue is not None
        assert event.title.ja
        assert event.title.en
    # an online webinar without a capacity, and a venue seminar with one
    assert [(e.online, e.capacity) for e in EVENTS.events] == [(True, None), (False, 40)]
    assert event_problems(EVENTS, CATALOG) == []
    assert event_problems(EventCatalog(SAMPLE_EVENTS), CATALOG) == []


def test_a_time_without_an_offset_is_the_events_local_time() -> None:
    seminar = next(e for e in EVENTS.events if e.id == "case-study-night-2027-02")
    assert seminar.start == datetime(2027, 2, 18, 18, 30, tzinfo=JST)
    assert seminar.start.astimezone(UTC) == datetime(2027, 2, 18, 9, 30, tzinfo=UTC)
    elsewhere = Event.model_validate(
        {**_fields(), "timezone": "Europe/London", "start": "2027-01-21T05:00"}
    )
    assert elsewhere.start.astimezone(UTC) == datetime(2027, 1, 21, 5, 0, tzinfo=UTC)


def test_the_events_times_read_in_both_languages() -> None:
    assert WEBINAR.when("ja") == "2026年12月10日（木）14:00〜15:00"
    assert WEBINAR.when("en") == "Thursday, 10 December 2026, 14:00–15:00 (JST)"
    two_days = WEBINAR.model_copy(update={"end": datetime(2026, 12, 11, 12, 0, tzinfo=JST)})
    assert two_days.when("ja") == "2026年12月10日（木）14:00〜2026年12月11日（金）12:00"
    assert (WEBINAR.where("ja"), SEMINAR.where("en")) == ("オンライン", "Marunouchi Hall, 5F")


def _fields() -> dict[str, Any]:
    return {
        "id": "probe",
        "title": {"ja": "プローブ", "en": "Probe"},
        "start": "2027-01-21T14:00:00+09:00",
        "end": "2027-01-21T15:00:00+09:00",
        "url": "https://webinar.example.com/j/1",
        "page": "/seminars/probe/",
    }


def _write(tmp_path: Path, fields: dict[str, Any], raw: str | None = None) -> Path:
    path = tmp_path / "events.yaml"
    event = {k: v for k, v in fields.items() if k != "id"}
    path.write_text(raw or yaml.safe_dump({"probe": event}, allow_unicode=True), "utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"end": "2027-01-21T13:00:00+09:00"}, "start must be before end", id="ends"),
        pytest.param({"url": None}, "give a venue or a url", id="nowhere"),
        pytest.param({"url": "http://webinar.example.com/j/1"}, "https URL", id="http"),
        pytest.param({"timezone": "Tokyo"}, "unknown timezone", id="zone"),
        pytest.param({"capacity": 0}, "capacity", id="capacity"),
        pytest.param({"page": "/seminars/?a=1"}, "without ? or #", id="page"),
        pytest.param({"seats": 3}, "seats", id="unknown-key"),
        pytest.param({"title": {"ja": "題名"}}, "title.en", id="english-title"),
        pytest.param({"venue": {"ja": "会場\n2階", "en": "Hall"}}, "one line", id="venue"),
    ],
)
def test_a_broken_events_file_fails_to_load_naming_the_problem(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    fields = {**_fields(), **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(ValueError, match=r"events\.yaml") as failed:
        load_events(_write(tmp_path, fields))
    assert problem in str(failed.value)


def test_an_unquoted_time_or_a_bad_id_is_refused(tmp_path: Path) -> None:
    # YAML reads an unquoted time as a timestamp, which the build's JSON snapshot cannot hold
    document = yaml.safe_dump({"probe": {k: v for k, v in _fields().items() if k != "id"}})
    unquoted = document.replace("'2027-01-21T14:00:00+09:00'", "2027-01-21T14:00:00+09:00")
    assert unquoted != document
    with pytest.raises(ValueError, match="write times in quotes"):
        load_events(_write(tmp_path, {}, raw=unquoted))
    bad_id = _write(tmp_path, {}, raw=yaml.safe_dump({"Bad Id": _fields()}))
    with pytest.raises(ValueError, match="not an event id"):
        load_events(bad_id)


def test_an_event_naming_a_missing_or_nurture_program_is_reported() -> None:
    wrong = WEBINAR.model_copy(update={"program": "welcome", "waitlist_program": "nowhere"})
    assert event_problems(EventCatalog([wrong]), CATALOG) == [
        "dx-webinar: 'welcome' is not an event program",
        "dx-webinar: 'nowhere' is not an event program",
    ]


def test_a_reminder_outside_the_send_window_is_reported() -> None:
    early = WEBINAR.model_copy(
        update={
            "start": datetime(2026, 12, 10, 8, 0, tzinfo=JST),
            "end": datetime(2026, 12, 10, 9, 0, tzinfo=JST),
        }
    )
    assert event_problems(EventCatalog([early]), CATALOG) == [
        "dx-webinar: event/reminder_two_hours falls outside the send window (2026-12-10 06:00)"
    ]


# -- the .ics file ------------------------------------------------------------------------


def test_the_ics_file_parses_with_a_real_parser_and_has_the_events_times() -> None:
    now = datetime(2026, 12, 7, 1, 0, 5, tzinfo=UTC)
    data = event_ics(WEBINAR, lead().lead_id, "ja", now, "example.co.jp", PAGE)
    calendar = icalendar.Calendar.from_ical(data)
    assert (str(calendar["VERSION"]), str(calendar["METHOD"])) == ("2.0", "PUBLISH")
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == WEBINAR.start == datetime(2026, 12, 10, 5, 0, tzinfo=UTC)
    assert event.decoded("DTEND") == WEBINAR.end
    assert event.decoded("DTSTAMP") == now
    assert str(event["SUMMARY"]) == "DX入門ウェビナー"
    assert str(event["LOCATION"]) == WEBINAR.url
    assert str(event["URL"]) == WEBINAR.url
    assert "2026年12月10日（木）14:00〜15:00" in str(event["DESCRIPTION"])
    assert str(event["UID"]) == uid(WEBINAR.id, lead().lead_id, "example.co.jp")
    # stable per event and lead, different for another lead or event
    again = icalendar.Calendar.from_ical(
        event_ics(WEBINAR, lead().lead_id, "en", now + timedelta(days=1), "example.co.jp", PAGE)
    )
    assert again.walk("VEVENT")[0]["UID"] == event["UID"]
    assert uid(WEBINAR.id, lead(2).lead_id, "example.co.jp") != event["UID"]
    assert uid(SEMINAR.id, lead().lead_id, "example.co.jp") != event["UID"]
    # RFC 5545: CRLF line ends only
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_a_venue_event_has_its_place_as_the_location_and_its_page_as_the_url() -> None:
    data = event_ics(SEMINAR, lead().lead_id, "en", MONDAY, "example.co.jp", PAGE)
    (event,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert str(event["LOCATION"]) == "Marunouchi Hall, 5F"
    assert str(event["URL"]) == PAGE
    assert str(event["SUMMARY"]) == "Customer Stories Night"


def test_long_japanese_lines_are_folded_at_75_octets_and_text_is_escaped() -> None:
    title = "東京・大阪同時開催；導入事例,ナイト\\特別編 " * 4
    event = WEBINAR.model_copy(update={"title": Localized(ja=title.strip(), en="x")})
    data = event_ics(event, lead().lead_id, "ja", MONDAY, "example.co.jp", PAGE)
    lines = data.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines)
    assert any(line.startswith(b" ") for line in lines)  # continuation lines
    for line in lines:
        line.decode("utf-8")  # never cut inside a character
    (parsed,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert str(parsed["SUMMARY"]) == title.strip()
    assert escape("a;b,c\\d\ne") == "a\\;b\\,c\\\\d\\ne"
    assert fold("x" * 75) == "x" * 75
    assert fold("x" * 76) == "x" * 75 + "\r\n x"


def test_the_confirmation_carries_the_ics_file_as_an_attachment_beside_both_parts() -> None:
    ics = event_ics(WEBINAR, lead().lead_id, "ja", MONDAY, "example.co.jp", PAGE)
    email = OutgoingEmail(
        from_address="株式会社サンプル <news@example.co.jp>",
        to_address="lead1@example.co.jp",
        rendered=RenderedEmail("【お申し込み完了】DX入門ウェビナー", "<p>本文</p>", "本文", "ja"),
        unsubscribe_url="https://api.example.co.jp/v1/unsubscribe?t=abc",
        tags={},
        attachments=(Attachment(f"{WEBINAR.id}.ics", CONTENT_TYPE, ics),),
    )
    raw = build_mime(email)
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/mixed"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().strip() == "本文"
    (attachment,) = message.iter_attachments()
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "dx-webinar.ics"
    assert attachment.get_payload(decode=True) == ics
    assert not message.defects


# -- steps timed by the event --------------------------------------------------------------


@pytest.mark.parametrize(
    ("timing", "moment"),
    [
        ({"before": "start", "by": "P1D", "at": "10:00"}, datetime(2026, 12, 9, 10, 0)),
        ({"before": "start", "by": "PT2H"}, datetime(2026, 12, 10, 12, 0)),
        ({"after": "end", "by": "P1D", "at": "10:00"}, datetime(2026, 12, 11, 10, 0)),
        ({"after": "start", "by": "PT10M"}, datetime(2026, 12, 10, 14, 10)),
        ({"before": "end"}, datetime(2026, 12, 10, 15, 0)),
    ],
)
def test_a_step_is_timed_by_the_events_start_or_end(
    timing: dict[str, str], moment: datetime
) -> None:
    assert EventTiming.model_validate(timing).moment(WEBINAR) == moment.replace(tzinfo=JST)


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        ({"by": "P1D"}, "one of before"),
        ({"before": "start", "after": "end"}, "one of before"),
        ({"before": "start", "at": 600}, "in quotes"),
        ({"before": "middle"}, "before"),
    ],
)
def test_a_broken_timing_is_refused(timing: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EventTiming.model_validate(timing)


def test_only_event_programs_time_steps_by_an_event_and_none_is_chosen_for_a_segment() -> None:
    document = program().model_dump(mode="json")
    with pytest.raises(ValueError, match="timing and calendar are for event programs"):
        Program.model_validate({**document, "kind": "nurture"})
    steps = [{**document["steps"][1], "wait": "P1D"}]
    with pytest.raises(ValueError, match="no wait or send_times"):
        Program.model_validate({**document, "steps": steps})
    for stage in Stage:
        chosen = CATALOG.program_for(lead().model_copy(update={"stage": stage}))
        assert chosen is None or chosen.kind == "nurture"


def walk_event(registered_at: datetime, attended: bool = False) -> list[str]:
    """The event program for a lead registered at ``registered_at``: what it is sent."""
    event_program = program()
    registration = register(lead(), WEBINAR, CATALOG, registered_at)
    assert registration is not None
    subject = registration.lead
    if attended:
        subject = subject.model_copy(
            update={
                "registrations": {
                    WEBINAR.id: subject.registrations[WEBINAR.id].model_copy(
                        update={"attended_at": WEBINAR.start}
                    )
                }
            }
        )
    enrolment = subject.registrations[WEBINAR.id].enrolment
    assert enrolment is not None
    sent: list[str] = []
    while enrolment.completed_at is None:
        assert enrolment.due_at is not None
        now = enrolment.due_at
        step = event_program.step(str(enrolment.step_id))
        reason = nurture.skip_reason(
            subject, step, subject.registrations[WEBINAR.id]
        ) or nurture.too_late(step, WEBINAR, now)
        if reason:
            enrolment = nurture.skip(enrolment, event_program, step, now, reason, WEBINAR)
            continue
        sent.append(step.id)
        enrolment = nurture.after_send(enrolment, event_program, step, now, "A", None, WEBINAR)
    return sent


def test_the_event_program_sends_in_the_events_time_and_by_attendance() -> None:
    assert walk_event(MONDAY) == [
        "confirmation",
        "reminder_day_before",
        "reminder_two_hours",
        "recording",
    ]
    assert walk_event(MONDAY, attended=True)[-1] == "follow_up"


def test_a_registration_after_a_reminders_time_skips_it() -> None:
    late = datetime(2026, 12, 10, 11, 0, tzinfo=JST)
    assert walk_event(late) == ["confirmation", "reminder_two_hours", "recording"]
    later = datetime(2026, 12, 10, 12, 1, tzinfo=JST)
    assert walk_event(later) == ["confirmation", "recording"]
    # the engine notes why, once the confirmation is sent
    started = nurture.start(program(), later, WEBINAR)
    moved = nurture.after_send(started, program(), program().steps[0], later, "A", None, WEBINAR)
    assert moved.skipped == {
        "reminder_day_before": nurture.EVENT_TIME_PASSED,
        "reminder_two_hours": nurture.EVENT_TIME_PASSED,
    }
    assert moved.step_id == "follow_up"


def test_a_reminder_is_never_sent_once_the_event_has_begun() -> None:
    reminder = program().step("reminder_two_hours")
    assert nurture.too_late(reminder, WEBINAR, WEBINAR.start - timedelta(seconds=1)) is None
    assert nurture.too_late(reminder, WEBINAR, WEBINAR.start) == nurture.EVENT_STARTED
    # an after-the-event step goes late rather than never
    assert (
        nurture.too_late(program().step("recording"), WEBINAR, WEBINAR.end + timedelta(days=3))
        is None
    )


# -- registration, attendance and the waiting list -----------------------------------------


def test_a_registration_holds_a_place_and_starts_the_event_program() -> None:
    done = register(lead(), WEBINAR, CATALOG, MONDAY)
    assert done is not None
    registration = done.lead.registrations[WEBINAR.id]
    assert registration.status is RegistrationStatus.REGISTERED
    assert registration.enrolment is not None
    assert registration.enrolment.event_id == WEBINAR.id
    assert (registration.enrolment.step_id, registration.enrolment.due_at) == (
        "confirmation",
        MONDAY,
    )
    assert done.seats is None  # no capacity, no seats
    assert done.lead.enrolment is None  # its nurture program is its own business
    # registering again, or after the event, changes nothing
    assert register(done.lead, WEBINAR, CATALOG, MONDAY + timedelta(hours=1)) is None
    assert register(lead(2), WEBINAR, CATALOG, WEBINAR.end) is None


def test_places_go_in_turn_and_a_cancellation_gives_one_to_who_waited_longest() -> None:
    seats = Seats(event_id=SEMINAR.id)
    leads: dict[int, Lead] = {}
    for n in range(1, 5):
        done = register(lead(n), SEMINAR, CATALOG, MONDAY + timedelta(minutes=n), seats)
        assert done is not None
        assert done.seats is not None
        leads[n], seats = done.lead, done.seats
    statuses = [leads[n].registrations[SEMINAR.id].status.value for n in range(1, 5)]
    assert statuses == ["registered", "registered", "waitlisted", "waitlisted"]
    assert leads[3].registrations[SEMINAR.id].enrolment.program_id == "event_waitlist"  # type: ignore[union-attr]
    assert seats.holders == {lead(1).lead_id, lead(2).lead_id}
    assert seats.next_waiting() == lead(3).lead_id

    # lead 4 cannot be promoted before lead 3, nor anyone while the event is full
    assert promote(leads[4], SEMINAR, CATALOG, MONDAY, seats) is None
    assert promote(leads[3], SEMINAR, CATALOG, MONDAY, seats) is None

    cancelled = cancel(leads[1], SEMINAR, MONDAY + timedelta(days=1), seats)
    assert cancelled is not None
    assert cancelled.seats is not None
    seats = cancelled.seats
    assert cancelled.lead.registrations[SEMINAR.id].enrolment.outcome == "exited:cancelled"  # type: ignore[union-attr]
    assert cancel(cancelled.lead, SEMINAR, MONDAY, seats) is None  # once

    promoted = promote(leads[3], SEMINAR, CATALOG, MONDAY + timedelta(days=1), seats)
    assert promoted is not None
    assert promoted.seats is not None
    registration = promoted.lead.registrations[SEMINAR.id]
    assert registration.status is RegistrationStatus.REGISTERED
    assert registration.waitlisted_at == MONDAY + timedelta(minutes=3)
    assert registration.enrolment is not None
    assert (registration.enrolment.program_id, registration.enrolment.step_id) == (
        "event",
        "confirmation",
    )
    assert promoted.seats.holders == {lead(2).lead_id, lead(3).lead_id}
    assert list(promoted.seats.waiting) == [lead(4).lead_id]
    # a newcomer waits behind lead 4 even if a place were free
    newcomer = register(lead(5), SEMINAR, CATALOG, MONDAY, promoted.seats.leaving(lead(2).lead_id))
    assert newcomer is not None
    assert newcomer.lead.registrations[SEMINAR.id].status is RegistrationStatus.WAITLISTED


def test_attendance_marks_a_registrant_and_makes_anyone_else_a_walk_in() -> None:
    registered = register(lead(), WEBINAR, CATALOG, MONDAY)
    assert registered is not None
    came = attend(registered.lead, WEBINAR, CATALOG, WEBINAR.start)
    assert came is not None
    registration = came.lead.registrations[WEBINAR.id]
    assert (registration.status, registration.attended_at) == (
        RegistrationStatus.REGISTERED,
        WEBINAR.start,
    )
    assert registration.enrolment == registered.lead.registrations[WEBINAR.id].enrolment
    assert attend(came.lead, WEBINAR, CATALOG, WEBINAR.end) is None  # once

    walk_in = attend(lead(2), WEBINAR, CATALOG, WEBINAR.start)
    assert walk_in is not None
    registration = walk_in.lead.registrations[WEBINAR.id]
    assert registration.status is RegistrationStatus.WALK_IN
    # no confirmation or reminders for an event it has been to: the follow-up comes next
    assert registration.enrolment is not None
    assert registration.enrolment.step_id == "follow_up"

    # a lead on the waiting list that came anyway leaves the list
    seats = Seats(event_id=SEMINAR.id, holders=frozenset({"a", "b"}))
    waiting = register(lead(3), SEMINAR, CATALOG, MONDAY, seats)
    assert waiting is not None
    assert waiting.seats is not None
    came = attend(waiting.lead, SEMINAR, CATALOG, SEMINAR.start, waiting.seats)
    assert came is not None
    assert came.seats is not None
    assert came.seats.waiting == {}
    assert came.lead.registrations[SEMINAR.id].status is RegistrationStatus.WALK_IN


# -- what the report counts ----------------------------------------------------------------


def event_counts(before: Lead | None, after: Lead) -> dict[str, int]:
    found = [c for c in lead_counts(before, after) if c.key == EVENT_PREFIX + WEBINAR.id]
    return dict(found[0].metrics) if found else {}


def test_each_registration_change_is_counted_once_for_its_event() -> None:
    start = lead()
    registered = register(start, WEBINAR, CATALOG, MONDAY)
    assert registered is not None
    assert event_counts(start, registered.lead) == {"registered": 1}
    assert event_counts(registered.lead, registered.lead) == {}  # a repeat counts nothing
    came = attend(registered.lead, WEBINAR, CATALOG, WEBINAR.start)
    assert came is not None
    assert event_counts(registered.lead, came.lead) == {"attended": 1}
    gone = cancel(registered.lead, WEBINAR, MONDAY)
    assert gone is not None
    assert event_counts(registered.lead, gone.lead) == {"cancelled": 1}
    walk_in = attend(lead(2), WEBINAR, CATALOG, WEBINAR.start)
    assert walk_in is not None
    assert event_counts(lead(2), walk_in.lead) == {"walk_ins": 1}
    # an MQL is credited to the event its lead came to
    qualified = came.lead.model_copy(
        update={"stage": Stage.MQL, "updated_at": WEBINAR.end + timedelta(days=1)}
    )
    assert event_counts(came.lead, qualified) == {"mql": 1}
    # but not to one registered for long before
    stale = qualified.model_copy(update={"updated_at": MONDAY + timedelta(days=91)})
    assert event_counts(came.lead, stale) == {}


# -- the send job ---------------------------------------------------------------------------


def test_a_send_job_names_its_event_and_a_nurture_job_reads_as_before() -> None:
    job = SendJob("0" * 32, "event", "confirmation", WEBINAR.id)
    assert SendJob.from_json(job.to_json()) == job
    nurture_job = SendJob("0" * 32, "welcome", "welcome")
    assert json.loads(nurture_job.to_json()) == {
        "lead_id": "0" * 32,
        "program_id": "welcome",
        "step_id": "welcome",
    }
    assert SendJob.from_json(nurture_job.to_json()) == nurture_job


def test_the_sample_events_cover_an_online_and_a_venue_event() -> None:
    assert {e.online for e in SAMPLE_EVENTS} == {True, False}


def test_an_invitation_names_the_next_event_with_time_to_register() -> None:
    events = EventCatalog([WEBINAR, SEMINAR])
    assert events.invitation("next", MONDAY) == WEBINAR
    # less than two days ahead: the next one after it
    assert events.invitation("next", WEBINAR.start - timedelta(days=1)) == SEMINAR
    assert events.invitation("next", SEMINAR.start) is None
    assert events.invitation(SEMINAR.id, MONDAY) == SEMINAR
    assert events.invitation(SEMINAR.id, SEMINAR.start - timedelta(hours=1)) is None
    assert events.invitation("no-such-event", MONDAY) is None
    # only nurture programs invite
    document = program().model_dump(mode="json")
    steps = [{**document["steps"][0], "invite": "next"}]
    with pytest.raises(ValueError, match="invite is for nurture programs"):
        Program.model_validate({**document, "steps": steps})

"""SES events → SNS → SQS → the engagement function, against moto.

Every event is a documented SES record (``tests/fixtures/ses_events``) pointed at a
stored lead, delivered in a real-shaped SQS batch, as raw message delivery or inside the
SNS envelope. What is checked is what the function leaves in the table: the lead, its
timeline (each activity with the rule and points behind a score change), the report
counters, the due index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import FixedClock, to_iso
from shared.domain.funnel import business_day
from shared.domain.leads import ActivityType, Stage
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from tests.email_events import raw, redelivered, ses_record, sns_envelope, sqs_event
from tests.emf import emf_documents, metric_counts
from tests.events import form_post
from tests.integration.conftest import TABLE
from tests.integration.nurture import FIXTURES, NurtureWorld, build_world
from tests.integration.scoring_world import (
    GRADE_A,
    AtomicCalls,
    activities,
    counters,
    engagement,
    fail_calls,
    indexed_due_at,
    lead_table,
    lose_answer,
    recorder,
    scores_profile,
    sort_keys,
    store_lead,
    stored,
    table_items,
)

JST = ZoneInfo("Asia/Tokyo")
RULES = load_scoring()
REPORT_KEY = "email#welcome#whitepaper#A"
Wrap = Callable[[dict[str, Any]], str]
BODIES: dict[str, Wrap] = {"raw": raw, "sns": sns_envelope}


@pytest.fixture
def dynamodb(aws: None) -> Any:
    """The conftest's table, through a client from the run's one session (much faster)."""
    return lead_table()


@pytest.fixture
def deliver(dynamodb: Any, clock: FixedClock, lambda_context: Any) -> Callable[..., Any]:
    return engagement(recorder(dynamodb, clock), lambda_context)


def score(repository: DynamoLeadRepository, lead_id: str, at: datetime) -> float:
    return RULES.score(stored(repository, lead_id).score_units, at)


def event_of(name: str, lead_email: str, lead_id: str, at: datetime, **kwargs: Any) -> Any:
    return ses_record(name, lead_id=lead_id, email=lead_email, at=at, **kwargs)


# -- each documented event type ------------------------------------------------------------

# (sample, activity, report metric, rules and points earned, lead changes)
EVENT_TYPES = [
    # SES accepted it: the sender itself counts what it sent
    ("send", ActivityType.EMAIL_SEND_ACCEPTED, "accepted", [], {}),
    ("delivery", ActivityType.EMAIL_DELIVERED, "delivered", [], {}),
    ("open", ActivityType.EMAIL_OPENED, "opens", [("open", 1)], {}),
    ("click", ActivityType.EMAIL_CLICKED, "clicks", [("click", 3), ("link:whitepaper", 4)], {}),
    (
        "bounce_permanent",
        ActivityType.EMAIL_BOUNCED,
        "bounces",
        [("bounce", -10)],
        {"suppressed": True, "suppression_reason": "bounce:permanent"},
    ),
    ("bounce_transient", ActivityType.EMAIL_BOUNCED, "bounces", [], {"transient_bounces": 1}),
    (
        "complaint",
        ActivityType.EMAIL_COMPLAINED,
        "complaints",
        [],
        {"suppressed": True, "suppression_reason": "complaint"},
    ),
    ("reject", ActivityType.EMAIL_REJECTED, "rejects", [], {}),
    ("rendering_failure", ActivityType.EMAIL_RENDERING_FAILED, "rendering_failures", [], {}),
    ("delivery_delay", ActivityType.EMAIL_DELAYED, "delays", [], {}),
    # The opt-out counts, credited to the last email sent (none here: see test_kpis)
    ("subscription", ActivityType.UNSUBSCRIBED, None, [("unsubscribe", -20)], {}),
]
# A person's open or click is also counted as a person's, and once per email.
PERSON = {
    "opens": {"human_opens": 2, "unique_human_opens": 2},
    "clicks": {"human_clicks": 2, "unique_human_clicks": 2, "unique_human_opens": 2},
}
ONE_PERSON_CLICK = {"human_clicks": 1, "unique_human_clicks": 1, "unique_human_opens": 1}
UNCHANGED = {"suppressed": False, "unsubscribed": False, "transient_bounces": 0}
# The list-health counter (sk "list") of the events that take a lead off the list.
OPT_OUTS = {
    "bounce_permanent": "suppressed:bounce",
    "complaint": "suppressed:complaint",
    "subscription": "unsubscribed",
}


@pytest.mark.parametrize(("name", "kind", "metric", "rules", "changes"), EVENT_TYPES)
def test_each_event_type_leaves_its_activity_counter_score_and_lead_state(
    deliver: Callable[..., Any],
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
    name: str,
    kind: ActivityType,
    metric: str | None,
    rules: list[tuple[str, int]],
    changes: dict[str, Any],
) -> None:
    # Given two leads in the welcome program
    leads = [store_lead(repository, clock, **GRADE_A) for _ in BODIES]
    at = clock.now()

    # When SES publishes the documented event about each one's mail, delivered to the
    # queue as raw message delivery for one and in the SNS envelope for the other
    records = [event_of(name, lead.email, lead.lead_id, at) for lead in leads]
    result = deliver([wrap(r) for wrap, r in zip(BODIES.values(), records, strict=True)])

    # Then the batch succeeded
    assert result.failed == []
    # and the report counter of the day, program, step and variant counts both, as does
    # the list-health counter when the event took them off the list
    expected_counters = {REPORT_KEY: {metric: 2, **PERSON.get(metric, {})}} if metric else {}
    if name == "bounce_permanent":
        expected_counters[REPORT_KEY]["hard_bounces"] = 2  # what SES's bounce rate counts
    if name in OPT_OUTS:
        expected_counters["list"] = {OPT_OUTS[name]: 2}
    assert counters(dynamodb, at) == expected_counters
    for lead, record in zip(leads, records, strict=True):
        # and each timeline has the event, explaining any points it earned
        (activity,) = activities(repository, lead.lead_id)
        assert activity.type is kind
        assert activity.at == at
        details = activity.details
        assert details["message_id"] == record["mail"]["messageId"]
        assert (details["program_id"], details["step_id"], details["variant"]) == (
            "welcome",
            "whitepaper",
            "A",
        )
        if rules:
            assert details["rules"] == [{"rule": r, "points": p} for r, p in rules]
            assert details["points"] == sum(p for _, p in rules)
        else:
            assert "points" not in details
            assert "rules" not in details
        # and the stored score is exactly what the activity says
        assert score(repository, lead.lead_id, at) == sum(p for _, p in rules)
        # and the lead changed as the event means, and in no other way
        after = stored(repository, lead.lead_id)
        expected = {**UNCHANGED, **changes}
        if name == "subscription":
            expected["unsubscribed"] = True
        assert {k: getattr(after, k) for k in expected} == expected
        assert after.stage is Stage.LEAD
        positive = sum(p for _, p in rules) > 0
        assert after.last_engaged_at == (at if positive else None)


# The function's metric of each documented event (shared/domain/metrics.py); None: not counted.
EVENT_METRICS = {
    "send": None,
    "delivery": "EmailsDelivered",
    "open": "HumanOpens",
    "click": "HumanClicks",
    "bounce_permanent": "HardBounces",
    "bounce_transient": "SoftBounces",
    "complaint": "Complaints",
    "reject": None,
    "rendering_failure": None,
    "delivery_delay": None,
    "subscription": "OptOuts",
}


@pytest.mark.parametrize(("name", "metric"), EVENT_METRICS.items())
def test_each_event_type_is_counted_in_its_metric_once(
    deliver: Callable[..., Any],
    repository: DynamoLeadRepository,
    clock: FixedClock,
    capsys: pytest.CaptureFixture[str],
    name: str,
    metric: str | None,
) -> None:
    # Given two leads in the welcome program
    leads = [store_lead(repository, clock, **GRADE_A) for _ in BODIES]
    at = clock.now()

    # When SES publishes the documented event about each one's mail, in one batch
    records = [event_of(name, lead.email, lead.lead_id, at) for lead in leads]
    first = deliver([raw(r) for r in records])

    # Then the batch is counted in one metric document of the engagement function
    out = capsys.readouterr().out
    assert metric_counts(out) == ({("engagement", metric): 2} if metric else {})
    assert len(emf_documents(out)) == (1 if metric else 0)

    # When SQS delivers the same batch again
    assert deliver(event=redelivered(first.event)).failed == []
    # Then nothing is counted twice
    assert metric_counts(capsys.readouterr().out) == {}


def test_a_click_notes_the_link_and_its_tags_on_the_activity(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    link = "https://www.example.co.jp/pricing/?utm_source=nurture"

    click = event_of("click", lead.email, lead.lead_id, clock.now(), link_tags=["pricing"])
    click["click"]["link"] = link

    deliver([raw(click)])

    (activity,) = activities(repository, lead.lead_id)
    assert activity.details["link"] == link
    assert activity.details["link_tags"] == ["pricing"]
    assert activity.details["points"] == 13


def test_bounce_and_complaint_details_are_kept_on_the_activity(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    at = clock.now()

    deliver(
        [
            raw(event_of("bounce_transient", lead.email, lead.lead_id, at)),
            raw(event_of("complaint", lead.email, lead.lead_id, at + timedelta(minutes=1))),
        ]
    )

    bounced, complained = activities(repository, lead.lead_id)
    assert (bounced.details["bounce_type"], bounced.details["bounce_subtype"]) == (
        "Transient",
        "MailboxFull",
    )
    assert complained.details["feedback_type"] == "abuse"


def test_a_suppressing_event_takes_the_lead_out_of_its_program_and_the_due_index(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    # Given a lead whose next email is due
    lead = store_lead(repository, clock)
    assert indexed_due_at(dynamodb, lead.lead_id) == to_iso(clock.now())

    # When its address bounces for good
    deliver([sns_envelope(event_of("bounce_permanent", lead.email, lead.lead_id, clock.now()))])

    # Then it leaves the program and nothing is due for it any more
    after = stored(repository, lead.lead_id)
    assert after.enrolment is not None
    assert after.enrolment.outcome == "exited:suppressed"
    assert after.enrolment.completed_at == clock.now()
    assert indexed_due_at(dynamodb, lead.lead_id) is None


def test_an_unsubscribe_from_all_takes_the_lead_out_of_its_program(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)

    deliver([raw(event_of("subscription", lead.email, lead.lead_id, clock.now()))])

    after = stored(repository, lead.lead_id)
    assert after.unsubscribed
    assert not after.mailable
    assert after.enrolment is not None
    assert after.enrolment.outcome == "exited:unsubscribed"
    assert indexed_due_at(dynamodb, lead.lead_id) is None


def test_a_topic_change_that_is_not_an_unsubscribe_from_all_is_only_recorded(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    record = event_of("subscription", lead.email, lead.lead_id, clock.now())
    record["subscription"]["newTopicPreferences"]["unsubscribeAll"] = False

    deliver([raw(record)])

    after = stored(repository, lead.lead_id)
    assert not after.unsubscribed
    assert after.mailable
    assert [a.type for a in activities(repository, lead.lead_id)] == [ActivityType.UNSUBSCRIBED]
    assert score(repository, lead.lead_id, clock.now()) == 0


# -- finding the lead ------------------------------------------------------------------------


def test_an_event_without_our_tags_finds_the_lead_by_its_recipient_address(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    # Given a lead, and an event about a mail to it that carries none of our tags
    lead = store_lead(repository, clock, email="taro.yamada@example.co.jp")
    record = ses_record(
        "open",
        lead_id=None,
        program=None,
        step=None,
        variant=None,
        email="Taro.Yamada@Example.co.jp",
        at=clock.now(),
    )

    # When it arrives
    result = deliver([sns_envelope(record)])

    # Then it is recorded against the lead (addresses compare case-insensitively)
    assert result.failed == []
    (activity,) = activities(repository, lead.lead_id)
    assert activity.type is ActivityType.EMAIL_OPENED
    assert score(repository, lead.lead_id, clock.now()) == 1
    # but no program report counts it: it names no program
    assert counters(dynamodb, clock.now()) == {}


def test_a_stale_lead_tag_falls_back_to_the_recipient_address(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)

    deliver([raw(event_of("open", lead.email, "f" * 32, clock.now()))])

    assert [a.type for a in activities(repository, lead.lead_id)] == [ActivityType.EMAIL_OPENED]


@pytest.mark.parametrize("body", BODIES)
def test_an_event_for_an_unknown_lead_is_dropped_not_retried(
    deliver: Callable[..., Any],
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
    body: str,
) -> None:
    # Given a stored lead (so the table is not empty) and the state of the table
    store_lead(repository, clock)
    before = table_items(dynamodb)

    # When an event arrives for a lead and an address we do not know (erased, or not ours)
    record = event_of("click", "nobody@example.net", "0" * 32, clock.now())
    result = deliver([BODIES[body](record)])

    # Then the message succeeds (no retry, no DLQ) and nothing is stored
    assert result.failed == []
    assert table_items(dynamodb) == before


def test_a_poison_message_fails_alone_and_the_rest_of_the_batch_is_recorded(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    # Given a batch with a body that is not an SES event between two good ones
    lead = store_lead(repository, clock)
    at = clock.now()
    event = sqs_event(
        [
            raw(event_of("open", lead.email, lead.lead_id, at)),
            '{"Type": "Notification", "Message": "not an SES event"}',
            sns_envelope(event_of("click", lead.email, lead.lead_id, at)),
        ]
    )

    # When it is processed
    result = deliver(event=event)

    # Then only the poison message is reported as failed (to be retried, then dead-lettered)
    assert result.failed == [event["Records"][1]["messageId"]]
    assert {a.type for a in activities(repository, lead.lead_id)} == {
        ActivityType.EMAIL_OPENED,
        ActivityType.EMAIL_CLICKED,
    }


def test_a_batch_of_poison_only_fails_every_message(
    deliver: Callable[..., Any], dynamodb: Any
) -> None:
    event = sqs_event(["not json", "[]"])

    result = deliver(event=event)

    assert sorted(result.failed) == sorted(r["messageId"] for r in event["Records"])
    assert table_items(dynamodb) == []


# -- duplicates ------------------------------------------------------------------------------


def test_the_same_event_delivered_twice_counts_once(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    # Given a click event
    lead = store_lead(repository, clock)
    record = event_of("click", lead.email, lead.lead_id, clock.now())
    first = deliver([raw(record)])

    # When SQS delivers it again, in the same batch twice, and SNS once more in its envelope
    again = deliver(event=redelivered(first.event))
    twice = deliver([raw(record), sns_envelope(record)])

    # Then nothing failed, and it is one activity, one score, one count
    assert first.failed == again.failed == twice.failed == []
    assert len(activities(repository, lead.lead_id)) == 1
    assert score(repository, lead.lead_id, clock.now()) == 7
    assert counters(dynamodb, clock.now()) == {REPORT_KEY: {"clicks": 1, **ONE_PERSON_CLICK}}


@pytest.mark.parametrize("name", sorted(OPT_OUTS))
def test_an_opt_out_counts_once_however_often_it_is_delivered(
    deliver: Callable[..., Any],
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
    name: str,
) -> None:
    # Given a lead taken off the list by an event
    lead = store_lead(repository, clock)
    record = event_of(name, lead.email, lead.lead_id, clock.now())
    first = deliver([raw(record)])

    # When SQS delivers it again, twice in one batch, and SNS once more in its envelope
    again = deliver(event=redelivered(first.event))
    twice = deliver([raw(record), sns_envelope(record)])
    # and another event of the same kind comes about a later mail
    later = event_of(name, lead.email, lead.lead_id, clock.now() + timedelta(hours=1))
    deliver([raw(later)])

    # Then the lead left the list once, and the day's list health says so
    assert first.failed == again.failed == twice.failed == []
    assert counters(dynamodb, clock.now())["list"] == {OPT_OUTS[name]: 1}


def test_a_complaint_after_a_permanent_bounce_is_not_a_second_suppression(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    at = clock.now()

    deliver([raw(event_of("bounce_permanent", lead.email, lead.lead_id, at))])
    deliver([raw(event_of("complaint", lead.email, lead.lead_id, at + timedelta(minutes=1)))])

    # the first reason stays, and the lead is counted under it alone
    assert stored(repository, lead.lead_id).suppression_reason == "bounce:permanent"
    assert counters(dynamodb, at)["list"] == {"suppressed:bounce": 1}


def test_a_duplicate_transient_bounce_is_not_counted_twice(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    record = event_of("bounce_transient", lead.email, lead.lead_id, clock.now())

    for _ in range(3):  # the limit, had they counted
        deliver([raw(record)])

    after = stored(repository, lead.lead_id)
    assert (after.transient_bounces, after.suppressed) == (1, False)


def test_an_event_retried_after_a_failure_midway_counts_once(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, lambda_context: Any
) -> None:
    # Given a lead, and DynamoDB applying the event's write but losing its answer
    lead = store_lead(repository, clock)
    failed = lose_answer(dynamodb, "TransactWriteItems", lambda params: True)
    deliver = engagement(recorder(dynamodb, clock), lambda_context)
    record = event_of("click", lead.email, lead.lead_id, clock.now())

    # When the click fails midway, and SQS delivers it again
    first = deliver([raw(record)])
    assert len(first.failed) == len(failed) == 1
    retry = deliver(event=redelivered(first.event))
    assert retry.failed == []

    # Then it counts once: one activity, 7 points
    assert len(activities(repository, lead.lead_id)) == 1
    assert score(repository, lead.lead_id, clock.now()) == 7


# -- out of order ----------------------------------------------------------------------------


def test_an_open_that_arrives_before_its_delivery_leaves_the_same_state(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    delivered_at = clock.now()
    opened_at = delivered_at + timedelta(minutes=5)

    # When the open is delivered before the delivery
    deliver([sns_envelope(event_of("open", lead.email, lead.lead_id, opened_at))])
    deliver([sns_envelope(event_of("delivery", lead.email, lead.lead_id, delivered_at))])

    # Then both are on the timeline in the order they happened, and counted
    timeline = activities(repository, lead.lead_id)
    assert [(a.type, a.at) for a in timeline] == [
        (ActivityType.EMAIL_DELIVERED, delivered_at),
        (ActivityType.EMAIL_OPENED, opened_at),
    ]
    assert counters(dynamodb, delivered_at) == {
        REPORT_KEY: {"delivered": 1, "opens": 1, "human_opens": 1, "unique_human_opens": 1}
    }
    after = stored(repository, lead.lead_id)
    assert (after.suppressed, after.last_engaged_at) == (False, opened_at)
    assert score(repository, lead.lead_id, opened_at) == 1


def test_a_permanent_bounce_after_a_delivery_suppresses(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    at = clock.now()

    deliver([raw(event_of("delivery", lead.email, lead.lead_id, at))])
    deliver([raw(event_of("bounce_permanent", lead.email, lead.lead_id, at + timedelta(hours=1)))])

    after = stored(repository, lead.lead_id)
    assert (after.suppressed, after.suppression_reason) == (True, "bounce:permanent")


def test_an_untagged_bounce_naming_several_recipients_suppresses_each_ones_lead(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    # Given two leads, and an identity notification (no tags of ours) that both bounced
    first = store_lead(repository, clock, email="ichiro@example.co.jp")
    second = store_lead(repository, clock, email="jiro@example.co.jp")
    record = ses_record(
        "bounce_permanent", lead_id=None, program=None, step=None, variant=None, at=clock.now()
    )
    record["bounce"]["bouncedRecipients"] = [
        {"emailAddress": lead.email, "action": "failed", "status": "5.1.1"}
        for lead in (first, second)
    ]

    # When it arrives, and again (redelivered)
    deliver([sns_envelope(record)])
    deliver([sns_envelope(record)])

    # Then each lead is suppressed, once
    for lead in (first, second):
        after = stored(repository, lead.lead_id)
        assert (after.suppressed, after.suppression_reason) == (True, "bounce:permanent")
        bounces = [
            a for a in repository.timeline(lead.lead_id) if a.type == ActivityType.EMAIL_BOUNCED
        ]
        assert len(bounces) == 1


def test_an_open_after_a_permanent_bounce_does_not_revive_the_lead(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    # Given a lead whose address bounced for good
    lead = store_lead(repository, clock)
    at = clock.now()
    deliver([raw(event_of("bounce_permanent", lead.email, lead.lead_id, at))])

    # When an open and a click of the same (or an earlier) mail arrive later
    deliver(
        [
            raw(event_of("open", lead.email, lead.lead_id, at + timedelta(hours=1))),
            raw(event_of("click", lead.email, lead.lead_id, at - timedelta(hours=1))),
        ]
    )

    # Then the lead stays suppressed, for the first reason, out of its program and the index
    after = stored(repository, lead.lead_id)
    assert (after.suppressed, after.suppression_reason) == (True, "bounce:permanent")
    assert not after.mailable
    assert after.enrolment is not None
    assert after.enrolment.outcome == "exited:suppressed"
    assert indexed_due_at(dynamodb, lead.lead_id) is None


def test_a_complaint_suppresses_for_good_even_after_a_new_opt_in(
    deliver: Callable[..., Any],
    post: Callable[[dict[str, Any]], dict[str, Any]],
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
) -> None:
    # Given a lead that marked our mail as spam
    lead = store_lead(repository, clock, email="hanako@example.co.jp")
    deliver([sns_envelope(event_of("complaint", lead.email, lead.lead_id, clock.now()))])

    # When later it opens a mail and even opts in again on a form
    clock.advance(timedelta(days=3))
    deliver([raw(event_of("open", lead.email, lead.lead_id, clock.now()))])
    response = post(
        form_post({"email": "hanako@example.co.jp", "consent": "on", "form_type": "download"})
    )
    assert response["statusCode"] in (200, 303)

    # Then it is still suppressed for the complaint, and nothing is due for it
    after = stored(repository, lead.lead_id)
    assert (after.suppressed, after.suppression_reason) == (True, "complaint")
    assert after.consent.opted_in
    assert not after.mailable
    assert indexed_due_at(dynamodb, lead.lead_id) is None


# -- transient bounces -----------------------------------------------------------------------


def transient(lead: Any, at: datetime) -> str:
    return raw(event_of("bounce_transient", lead.email, lead.lead_id, at))


def delivery(lead: Any, at: datetime) -> str:
    return raw(event_of("delivery", lead.email, lead.lead_id, at))


@pytest.mark.parametrize("limit", [2, 3, 5])
def test_transient_bounces_suppress_after_the_configured_number_in_a_row(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    clock: FixedClock,
    lambda_context: Any,
    limit: int,
) -> None:
    deliver = engagement(recorder(dynamodb, clock, transient_bounce_limit=limit), lambda_context)
    lead = store_lead(repository, clock)
    at = clock.now()

    # One short of the limit: counted, still mailable
    for i in range(limit - 1):
        deliver([transient(lead, at + i * timedelta(days=1))])
    before = stored(repository, lead.lead_id)
    assert (before.transient_bounces, before.suppressed) == (limit - 1, False)
    assert "list" not in counters(dynamodb, clock.now())

    # At the limit: suppressed for soft bounces, out of the program
    deliver([transient(lead, at + limit * timedelta(days=1))])
    after = stored(repository, lead.lead_id)
    assert (after.transient_bounces, after.suppressed) == (limit, True)
    assert after.suppression_reason == "bounce:transient"
    assert after.enrolment is not None
    assert after.enrolment.outcome == "exited:suppressed"
    # counted on the list health as a bounce, once, even when the last bounce comes again
    deliver([transient(lead, at + limit * timedelta(days=1))])
    deliver([transient(lead, at + (limit + 1) * timedelta(days=1))])
    assert counters(dynamodb, clock.now())["list"] == {"suppressed:bounce": 1}


def test_a_delivery_between_transient_bounces_starts_the_count_again(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    day = timedelta(days=1)
    at = clock.now()

    # bounce, bounce, delivered, bounce, bounce (limit 3): never three in a row
    deliver([transient(lead, at), transient(lead, at + day)])
    deliver([delivery(lead, at + 2 * day)])
    assert stored(repository, lead.lead_id).transient_bounces == 0
    deliver([transient(lead, at + 3 * day)])
    deliver([transient(lead, at + 4 * day)])

    after = stored(repository, lead.lead_id)
    assert (after.transient_bounces, after.suppressed) == (2, False)

    # and a third in a row suppresses
    deliver([transient(lead, at + 5 * day)])
    assert stored(repository, lead.lead_id).suppressed


def test_a_late_delivery_of_an_earlier_mail_does_not_break_a_run_of_soft_bounces(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    day = timedelta(days=1)
    at = clock.now()

    # Given two soft bounces in a row
    deliver([transient(lead, at + day), transient(lead, at + 2 * day)])
    # When the delivery of a mail sent before them arrives only now
    deliver([delivery(lead, at)])
    # and a third soft bounce follows
    deliver([transient(lead, at + 3 * day)])

    # Then that is three in a row: suppressed
    after = stored(repository, lead.lead_id)
    assert (after.suppressed, after.suppression_reason) == (True, "bounce:transient")


def test_the_transient_bounce_limit_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.engagement.handler import EngagementSettings

    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("TRANSIENT_BOUNCE_LIMIT", "4")
    assert EngagementSettings.from_env().transient_bounce_limit == 4
    monkeypatch.setenv("TRANSIENT_BOUNCE_LIMIT", "0")
    with pytest.raises(ValueError, match="transient_bounce_limit"):
        EngagementSettings.from_env()
    monkeypatch.delenv("TRANSIENT_BOUNCE_LIMIT")
    assert EngagementSettings.from_env().transient_bounce_limit == 3


# -- daily caps and decay ---------------------------------------------------------------------


def test_opens_beyond_the_daily_cap_earn_nothing_until_the_next_japanese_day(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    # Given a lead, on a Tokyo evening
    lead = store_lead(repository, clock)
    evening = datetime(2026, 11, 24, 20, 0, tzinfo=JST)
    times = [evening + i * timedelta(minutes=30) for i in range(4)]  # 20:00 .. 21:30

    # When it opens four times that evening (the cap is 3 points a day)
    deliver([raw(event_of("open", lead.email, lead.lead_id, t)) for t in times])

    # Then three opens earn a point each, the fourth is recorded without points
    timeline = activities(repository, lead.lead_id)
    assert [a.details.get("points") for a in timeline] == [1, 1, 1, None]
    # (the email counts once among those a person opened)
    assert counters(dynamodb, evening) == {
        REPORT_KEY: {"opens": 4, "human_opens": 4, "unique_human_opens": 1}
    }

    # When it opens again just after midnight in Tokyo (15:00 UTC), a new day
    midnight = datetime(2026, 11, 25, 0, 0, 1, tzinfo=JST)
    deliver([raw(event_of("open", lead.email, lead.lead_id, midnight))])

    # Then that open earns its point
    assert activities(repository, lead.lead_id)[-1].details.get("points") == 1
    assert business_day(midnight) != business_day(evening)
    assert counters(dynamodb, midnight) == {REPORT_KEY: {"opens": 1, "human_opens": 1}}
    # and the score is exactly the four points that were awarded, each decayed from its time
    expected = sum(RULES.units(1, t) for t in [*times[:3], midnight])
    assert stored(repository, lead.lead_id).score_units == expected


def test_a_click_on_a_tagged_link_earns_the_tag_points_up_to_its_own_cap(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    at = clock.now()

    # Three clicks on the pricing link in a day: click 3 each (cap 9), pricing 10 once (cap 10)
    times = [at + i * timedelta(minutes=1) for i in range(3)]
    deliver(
        [raw(event_of("click", lead.email, lead.lead_id, t, link_tags=["pricing"])) for t in times]
    )

    awarded = [a.details["rules"] for a in activities(repository, lead.lead_id)]
    assert awarded == [
        [{"rule": "click", "points": 3}, {"rule": "link:pricing", "points": 10}],
        [{"rule": "click", "points": 3}],
        [{"rule": "click", "points": 3}],
    ]
    assert score(repository, lead.lead_id, at) == 19.0


def test_the_score_read_a_half_life_later_is_half(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    # Given 7 + 13 points earned today
    lead = store_lead(repository, clock)
    at = clock.now()
    whitepaper = event_of("click", lead.email, lead.lead_id, at)
    pricing = event_of("click", lead.email, lead.lead_id, at, link_tags=["pricing"])
    pricing["click"]["link"] = "https://www.example.co.jp/pricing/"
    deliver([raw(whitepaper), raw(pricing)])
    assert score(repository, lead.lead_id, at) == 20

    # When it is read 30 days later (nothing was written meanwhile)
    later = at + timedelta(days=30)

    # Then it is half, and half again 30 days after that
    assert RULES.evaluate(stored(repository, lead.lead_id), later).score == 10
    assert RULES.evaluate(stored(repository, lead.lead_id), later + timedelta(days=30)).score == 5


# -- concurrency -----------------------------------------------------------------------------


def test_twenty_concurrent_clicks_for_one_lead_give_exactly_the_summed_score(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, lambda_context: Any
) -> None:
    # Given a grade A lead, and 20 clicks on the pricing link made on 20 different days
    # (so no daily cap binds), each worth 3 + 10 points when it happened; every fourth is
    # delivered twice (SNS and SQS are at-least-once)
    lead = store_lead(repository, clock, **GRADE_A)
    first = clock.now()
    days = [first + i * timedelta(days=1) for i in range(20)]
    clock.set(days[-1])
    atomic = AtomicCalls(dynamodb)
    deliver = engagement(recorder(atomic, clock), lambda_context)
    bodies = [
        raw(event_of("click", lead.email, lead.lead_id, at, link_tags=["pricing"])) for at in days
    ]
    deliveries = bodies + bodies[::4]
    start = threading.Barrier(len(deliveries))
    failed: list[str] = []

    def send(body: str) -> None:
        start.wait(timeout=30)
        if deliver([body]).failed:
            failed.append(body)  # its conflicts outlasted revise's rounds: SQS redelivers

    # When they are all processed at once, one Lambda invocation each
    threads = [threading.Thread(target=send, args=(b,)) for b in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # (on a loaded machine a few of 24 writers to one item may lose every round; SQS
    # delivers those again, one after the other here)
    assert len(failed) <= 4, failed
    redelivered = [deliver([body]).failed for body in failed]

    # Then each click is recorded once, and no point was lost or doubled
    assert all(again == [] for again in redelivered)
    clicks = activities(repository, lead.lead_id, ActivityType.EMAIL_CLICKED)
    assert sorted(a.at for a in clicks) == days
    assert all(a.details["points"] == 13 for a in clicks)
    now = clock.now()
    expected = sum(13 * 2 ** (-(now - at) / timedelta(days=30)) for at in days)
    assert abs(RULES.evaluate(stored(repository, lead.lead_id), now).score - expected) <= 0.051
    # and the lead qualified exactly once along the way
    after = stored(repository, lead.lead_id)
    assert after.stage is Stage.MQL
    assert len(activities(repository, lead.lead_id, ActivityType.QUALIFIED)) == 1
    assert counters(dynamodb, now).get("stage") == {"lead>mql": 1}


def test_concurrent_complaints_about_two_mails_count_one_suppression(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, lambda_context: Any
) -> None:
    # Given a lead, and complaints about two different mails processed at the same moment
    lead = store_lead(repository, clock)
    deliver = engagement(recorder(AtomicCalls(dynamodb), clock), lambda_context)
    at = clock.now()
    bodies = [
        raw(event_of("complaint", lead.email, lead.lead_id, at + i * timedelta(minutes=1)))
        for i in range(6)
    ]
    start = threading.Barrier(len(bodies))
    failed: list[Any] = []

    def send(body: str) -> None:
        start.wait(timeout=30)
        failed.extend(deliver([body]).failed)

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every complaint is recorded, and the lead left the list once
    assert failed == []
    assert len(activities(repository, lead.lead_id, ActivityType.EMAIL_COMPLAINED)) == 6
    assert counters(dynamodb, at)["list"] == {"suppressed:complaint": 1}


# -- the branch of a program ------------------------------------------------------------------


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    """The test catalog (``branching``: any day, any hour), on a Tuesday in Tokyo."""
    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=JST).astimezone(UTC))
    return build_world(
        clock, dynamodb, TABLE, lambda_context, programs=load_programs(FIXTURES / "programs")
    )


def test_a_click_on_the_branching_step_decides_the_branch_at_once(
    world: NurtureWorld, lambda_context: Any
) -> None:
    # Given a lead that was sent the whitepaper (its branch waits up to 3 days)
    lead = store_lead(world.repository, world.clock, program="branching", programs=world.programs)
    assert world.run() == 1
    (sent,) = world.ses.sent
    enrolment = stored(world.repository, lead.lead_id).enrolment
    assert enrolment is not None
    assert enrolment.due_at == world.clock.now() + timedelta(days=3)
    deliver = engagement(
        recorder(world.dynamodb, world.clock, programs=world.programs), lambda_context
    )

    # When SES reports a click on it two hours later, with the tags the sender set
    world.advance(timedelta(hours=2))
    clicked_at = world.clock.now() - timedelta(seconds=30)
    record = ses_record(
        "click",
        email=sent.to,
        at=clicked_at,
        message_id=sent.message_id,
        **{k: sent.tags[k] for k in ("lead_id", "program", "step", "variant")},
    )
    assert deliver([sns_envelope(record)]).failed == []

    # Then the branch is due at the click, in the lead and in the due index
    after = stored(world.repository, lead.lead_id)
    assert after.enrolment is not None
    assert after.enrolment.sent["whitepaper"].clicked_at == clicked_at
    assert after.enrolment.due_at == clicked_at
    assert indexed_due_at(world.dynamodb, lead.lead_id) == to_iso(clicked_at)
    # and the next tick sends the clicked branch's step, without waiting three days
    assert world.run() == 1
    assert [e.tags["step"] for e in world.ses.sent] == ["whitepaper", "seminar_invitation"]
    # and the report counts the click for the program, step and variant that were sent
    key = f"email#branching#whitepaper#{sent.tags['variant']}"
    # (and the send itself, counted by the sender the same day)
    assert counters(world.dynamodb, clicked_at)[key] == {
        "sent": 1,
        "clicks": 1,
        **ONE_PERSON_CLICK,
    }


def test_an_open_does_not_decide_a_branch_that_waits_for_a_click(
    world: NurtureWorld, lambda_context: Any
) -> None:
    lead = store_lead(world.repository, world.clock, program="branching", programs=world.programs)
    assert world.run() == 1
    (sent,) = world.ses.sent
    due = world.clock.now() + timedelta(days=3)
    deliver = engagement(
        recorder(world.dynamodb, world.clock, programs=world.programs), lambda_context
    )

    world.advance(timedelta(hours=1))
    record = ses_record(
        "open",
        email=sent.to,
        at=world.clock.now(),
        message_id=sent.message_id,
        **{k: sent.tags[k] for k in ("lead_id", "program", "step", "variant")},
    )
    deliver([raw(record)])

    # The open is noted on the step, but a click may still come: the branch keeps waiting
    after = stored(world.repository, lead.lead_id)
    assert after.enrolment is not None
    assert after.enrolment.sent["whitepaper"].opened_at == world.clock.now()
    assert after.enrolment.due_at == due
    assert world.run() == 0


def test_an_event_for_another_program_does_not_touch_the_current_enrolment(
    deliver: Callable[..., Any], repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    lead = store_lead(repository, clock)
    record = ses_record(
        "click",
        lead_id=lead.lead_id,
        email=lead.email,
        at=clock.now(),
        program="re_engagement",
        step="reconnect",
    )

    deliver([raw(record)])

    after = stored(repository, lead.lead_id)
    assert after.enrolment == lead.enrolment
    assert after.version == lead.version + 1  # the score ADD only
    assert activities(repository, lead.lead_id)[0].details["program_id"] == "re_engagement"


def test_a_dynamodb_error_is_a_batch_item_failure(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, lambda_context: Any
) -> None:
    # Given a table that fails every write of the lead's score (a transaction with its ADD)
    lead = store_lead(repository, clock)
    fail_calls(dynamodb, "TransactWriteItems", times=None, when=scores_profile)
    deliver = engagement(recorder(dynamodb, clock), lambda_context)
    event = sqs_event(
        [
            raw(event_of("click", lead.email, lead.lead_id, clock.now())),
            raw(event_of("send", lead.email, lead.lead_id, clock.now())),
        ]
    )

    # When a click (which needs the score write) and a send (which does not) arrive
    result = deliver(event=event)

    # Then the click is retried and leaves no trace (not even its dedupe marker), the send is done
    assert result.failed == [event["Records"][0]["messageId"]]
    assert [a.type for a in activities(repository, lead.lead_id)] == [
        ActivityType.EMAIL_SEND_ACCEPTED
    ]
    markers = [k for k in sort_keys(dynamodb, lead.lead_id) if k.startswith("EVENT#")]
    assert len(markers) == 1  # the send's
    assert score(repository, lead.lead_id, clock.now()) == 0

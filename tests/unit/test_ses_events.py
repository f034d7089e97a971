"""Parsing SES event publishing records (the documented samples), raw or in the SNS envelope."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain.ses_events import (
    EmailEvent,
    EmailEventType,
    NotAnEmailEvent,
    SetupNotice,
    parse_event,
)
from tests.email_events import (
    SAMPLE_LEAD_ID,
    SAMPLE_RECIPIENT,
    SAMPLES,
    eventbridge_envelope,
    raw,
    sample,
    ses_record,
    sns_envelope,
)

MESSAGE_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
Wrap = Callable[[dict[str, Any]], str]
BODIES: dict[str, Wrap] = {
    "raw": raw,
    "sns": sns_envelope,
    "eventbridge": eventbridge_envelope,
    # an EventBridge rule whose target is the email-events topic
    "eventbridge_via_sns": lambda record: sns_envelope(eventbridge_envelope(record)),
}


def ms(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# (sample, event type, the instant the event happened, its recipients)
DOCUMENTED = [
    ("send", EmailEventType.SEND, "2016-10-14T05:02:16.645Z"),
    ("delivery", EmailEventType.DELIVERY, "2016-10-19T23:21:04.133Z"),
    ("open", EmailEventType.OPEN, "2017-08-09T22:00:19.652Z"),
    ("click", EmailEventType.CLICK, "2017-08-09T23:51:25.570Z"),
    ("bounce_permanent", EmailEventType.BOUNCE, "2017-08-05T00:41:02.669Z"),
    ("bounce_transient", EmailEventType.BOUNCE, "2017-08-05T00:41:02.669Z"),
    ("complaint", EmailEventType.COMPLAINT, "2017-08-05T00:41:02.669Z"),
    ("reject", EmailEventType.REJECT, "2016-10-14T17:38:15.211Z"),
    ("rendering_failure", EmailEventType.RENDERING_FAILURE, "2018-01-22T18:43:06.197Z"),
    ("delivery_delay", EmailEventType.DELIVERY_DELAY, "2020-06-16T00:25:40.095Z"),
    ("subscription", EmailEventType.SUBSCRIPTION, "2022-01-12T01:00:17.910Z"),
]


def test_every_documented_event_type_has_a_sample() -> None:
    assert {t for _, t, _ in DOCUMENTED} == set(EmailEventType)
    assert sorted(name for name, _, _ in DOCUMENTED) == sorted(SAMPLES)


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize(("name", "kind", "at"), DOCUMENTED)
def test_each_documented_record_parses_raw_and_from_every_envelope(
    name: str, kind: EmailEventType, at: str, body: str
) -> None:
    # Given the documented record as the queue delivers it
    record = sample(name)

    # When it is parsed
    event = parse_event(BODIES[body](record))

    # Then it is that event, about that message, at the event's own time, for the recipient
    assert event.type is kind
    assert event.message_id == record["mail"]["messageId"]
    assert event.at == ms(at)
    assert event.at.tzinfo is not None
    assert event.recipients == (SAMPLE_RECIPIENT,)


@pytest.mark.parametrize(("name", "kind", "at"), DOCUMENTED)
def test_the_envelope_and_the_raw_body_give_the_same_event(
    name: str, kind: EmailEventType, at: str
) -> None:
    record = sample(name)
    assert parse_event(sns_envelope(record)) == parse_event(raw(record))
    assert parse_event(eventbridge_envelope(record)) == parse_event(raw(record))


@pytest.mark.parametrize("name", SAMPLES)
def test_our_message_tags_name_the_lead_program_step_and_variant(name: str) -> None:
    event = parse_event(raw(sample(name)))

    assert (event.lead_id, event.program_id, event.step_id, event.variant) == (
        SAMPLE_LEAD_ID,
        "welcome",
        "whitepaper",
        "A",
    )
    # SES's own tags are kept alongside and do not get in the way
    assert event.tags["ses:configuration-set"] == "lead-nurture"


def test_an_email_without_our_tags_has_no_lead_and_falls_back_to_its_recipient() -> None:
    record = ses_record("open", lead_id=None, program=None, step=None, variant=None)

    event = parse_event(raw(record))

    assert (event.lead_id, event.program_id, event.step_id, event.variant) == (None,) * 4
    assert event.recipients == (SAMPLE_RECIPIENT,)


def test_a_tag_with_an_empty_value_list_is_ignored() -> None:
    record = sample("open")
    record["mail"]["tags"]["lead_id"] = []

    assert parse_event(raw(record)).lead_id is None


def test_a_click_carries_its_link_and_link_tags() -> None:
    event = parse_event(sns_envelope(sample("click")))

    assert event.link == (
        "https://www.example.co.jp/resources/workflow-digitization-guide/"
        "?utm_source=nurture&utm_medium=email&utm_campaign=welcome&utm_content=whitepaper"
    )
    assert event.link_tags == ("whitepaper",)


def test_a_click_on_a_link_with_several_tags_keeps_them_all() -> None:
    record = ses_record("click", link_tags=["pricing", "trial"])
    record["click"]["linkTags"]["campaign"] = ["autumn"]  # a tag that is not ours

    assert parse_event(raw(record)).link_tags == ("pricing", "trial")


def test_a_click_on_an_untagged_link_has_no_link_tags() -> None:
    record = sample("click")
    del record["click"]["linkTags"]

    event = parse_event(raw(record))

    assert event.link_tags == ()
    assert event.link is not None


def test_events_other_than_clicks_have_no_link() -> None:
    event = parse_event(raw(sample("open")))
    assert (event.link, event.link_tags) == (None, ())


def test_a_permanent_bounce_names_the_bounced_recipient_and_its_type() -> None:
    event = parse_event(sns_envelope(sample("bounce_permanent")))

    assert event.permanent_bounce
    assert event.recipients == (SAMPLE_RECIPIENT,)
    assert (event.detail["bounceType"], event.detail["bounceSubType"]) == ("Permanent", "General")
    assert event.detail["bouncedRecipients"][0]["status"] == "5.1.1"


def test_a_transient_bounce_is_not_permanent() -> None:
    event = parse_event(raw(sample("bounce_transient")))

    assert event.type is EmailEventType.BOUNCE
    assert not event.permanent_bounce
    assert event.detail["bounceType"] == "Transient"


@pytest.mark.parametrize(
    ("name", "detail", "listed"),
    [
        ("bounce_permanent", "bounce", "bouncedRecipients"),
        ("complaint", "complaint", "complainedRecipients"),
        ("delivery_delay", "deliveryDelay", "delayedRecipients"),
    ],
)
def test_of_a_mail_to_several_people_only_the_affected_recipient_is_named(
    name: str, detail: str, listed: str
) -> None:
    # Given a mail sent to two people, where the event concerns the second only
    record = sample(name)
    record["mail"]["destination"] = ["someone.else@example.com", SAMPLE_RECIPIENT]
    assert [r["emailAddress"] for r in record[detail][listed]] == [SAMPLE_RECIPIENT]

    # Then the event is about that recipient, not everyone the mail went to
    assert parse_event(raw(record)).recipients == (SAMPLE_RECIPIENT,)


def test_other_events_are_about_the_mails_destination() -> None:
    record = sample("delivery")
    record["mail"]["destination"] = ["a@example.com", "b@example.com"]

    assert parse_event(raw(record)).recipients == ("a@example.com", "b@example.com")


def test_a_complaint_keeps_its_feedback_type() -> None:
    event = parse_event(raw(sample("complaint")))
    assert event.detail["complaintFeedbackType"] == "abuse"
    assert not event.permanent_bounce


def test_a_subscription_event_that_unsubscribes_from_all() -> None:
    event = parse_event(sns_envelope(sample("subscription")))

    assert event.unsubscribed_all
    assert event.detail["source"] == "UnsubscribeHeader"


def test_a_subscription_event_that_only_changes_topics_is_not_an_unsubscribe_from_all() -> None:
    record = sample("subscription")
    record["subscription"]["newTopicPreferences"]["unsubscribeAll"] = False

    assert not parse_event(raw(record)).unsubscribed_all


def test_a_feedback_notification_without_event_publishing_parses_too() -> None:
    # SES identity notifications name the type notificationType instead of eventType
    record = sample("bounce_permanent")
    record["notificationType"] = record.pop("eventType")

    event = parse_event(raw(record))

    assert event.type is EmailEventType.BOUNCE
    assert event.permanent_bounce


# -- dedupe keys --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_the_same_record_delivered_twice_has_the_same_dedupe_key(name: str) -> None:
    record = sample(name)

    keys = {
        parse_event(raw(record)).dedupe_key,
        parse_event(raw(sample(name))).dedupe_key,
        parse_event(sns_envelope(record)).dedupe_key,  # another SNS message id, same event
        parse_event(sns_envelope(record)).dedupe_key,
    }

    assert len(keys) == 1


def test_two_opens_of_one_mail_at_different_times_are_two_events() -> None:
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    first = parse_event(raw(ses_record("open", at=at)))
    second = parse_event(raw(ses_record("open", at=at + timedelta(seconds=1))))

    assert first.message_id == second.message_id
    assert first.dedupe_key != second.dedupe_key


def test_two_clicks_at_the_same_moment_on_different_links_are_two_events() -> None:
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    first = parse_event(raw(ses_record("click", at=at, link="https://www.example.co.jp/a")))
    second = parse_event(raw(ses_record("click", at=at, link="https://www.example.co.jp/b")))

    assert first.dedupe_key != second.dedupe_key


def test_the_same_kind_of_event_for_two_messages_are_two_events() -> None:
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    keys = {
        parse_event(raw(ses_record("delivery", at=at, message_id=f"message-{i}"))).dedupe_key
        for i in range(2)
    }
    assert len(keys) == 2


def test_an_open_and_a_click_at_the_same_moment_are_two_events() -> None:
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    open_ = parse_event(raw(ses_record("open", at=at)))
    click = parse_event(raw(ses_record("click", at=at)))
    assert open_.dedupe_key != click.dedupe_key


# -- poison messages ----------------------------------------------------------------------


def _without_mail() -> str:
    record = sample("open")
    del record["mail"]
    return raw(record)


def _without_message_id() -> str:
    record = sample("open")
    del record["mail"]["messageId"]
    return raw(record)


def _without_timestamps() -> str:
    record = sample("send")
    del record["mail"]["timestamp"]
    return raw(record)


def _bad_timestamp() -> str:
    record = sample("open")
    record["open"]["timestamp"] = "yesterday"
    return raw(record)


def _detail_not_an_object() -> str:
    record = sample("bounce_permanent")
    record["bounce"] = "Permanent"
    return raw(record)


def _unknown_event_type() -> str:
    record = sample("open")
    record["eventType"] = "Opened"
    return raw(record)


def _no_event_type() -> str:
    record = sample("open")
    del record["eventType"]
    return raw(record)


def _subscription_confirmation() -> str:
    return json.dumps(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37f...",
            "TopicArn": "arn:aws:sns:ap-northeast-1:123456789012:lead-nurture-email-events",
            "Message": "You have chosen to subscribe to the topic ...",
            "SubscribeURL": "https://sns.ap-northeast-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2026-11-24T01:00:00.000Z",
        }
    )


def _bounce_recipients(recipients: Any) -> str:
    record = sample("bounce_permanent")
    record["bounce"]["bouncedRecipients"] = recipients
    return raw(record)


def _with_mail(**fields: Any) -> str:
    record = sample("open")
    record["mail"].update(fields)
    return raw(record)


POISON: dict[str, Callable[[], str]] = {
    "not JSON": lambda: "this is not json",
    "empty body": lambda: "",
    "JSON array": lambda: json.dumps([sample("open")]),
    "JSON string": lambda: json.dumps(raw(sample("open"))),
    "JSON null": lambda: "null",
    "envelope Message not JSON": lambda: sns_envelope("Hello world!"),
    "envelope Message a JSON array": lambda: sns_envelope("[1, 2]"),
    "envelope without Message": lambda: json.dumps({"Type": "Notification"}),
    "unknown eventType": _unknown_event_type,
    "no eventType": _no_event_type,
    "no mail": _without_mail,
    "mail without messageId": _without_message_id,
    "no timestamp anywhere": _without_timestamps,
    "bad timestamp": _bad_timestamp,
    "event detail not an object": _detail_not_an_object,
    "SES inbound mail notification": lambda: sns_envelope(
        {"notificationType": "Received", "mail": {"messageId": "x"}, "receipt": {}}
    ),
    # SES's own events on the default bus, not about an email (the EventBridge reference)
    "EventBridge sending status event": lambda: json.dumps(
        {
            "detail-type": "Sending Status Disabled",
            "source": "aws.ses",
            "detail": {"accountId": "123456789012", "region": "ap-northeast-1"},
        }
    ),
    "SNS Message an object": lambda: json.dumps({"Type": "Notification", "Message": {}}),
    "bounced recipients null": lambda: _bounce_recipients(None),
    "bounced recipient a string": lambda: _bounce_recipients(["someone@example.co.jp"]),
    "mail tags a list": lambda: _with_mail(tags=["lead_id"]),
    "EventBridge event without detail": lambda: json.dumps(
        {"detail-type": "Email Opened", "source": "aws.ses"}
    ),
    "deeply nested JSON": lambda: "[" * 100_000 + "]" * 100_000,
}


def _unsubscribe_confirmation() -> str:
    confirmation = json.loads(_subscription_confirmation())
    return json.dumps({**confirmation, "Type": "UnsubscribeConfirmation"})


# What SNS and SES send when the topic is set up, as they send it.
NOTICES: dict[str, tuple[Callable[[], str], str]] = {
    "SNS subscription confirmation": (_subscription_confirmation, "SubscriptionConfirmation"),
    "SNS unsubscribe confirmation": (_unsubscribe_confirmation, "UnsubscribeConfirmation"),
    # an identity's feedback topic (SetIdentityNotificationTopic)
    "SES identity topic subscribed": (
        lambda: sns_envelope(
            '{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"You have '
            "successfully subscribed your Amazon SNS topic 'arn:aws:sns:ap-northeast-1:"
            "123456789012:lead-nurture-email-events' to receive 'Bounce' notifications "
            "from Amazon SES for identity 'example.co.jp'.\"}\n"
        ),
        "AmazonSnsSubscriptionSucceeded",
    ),
    "SES identity topic subscribed, raw": (
        lambda: raw({"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "..."}),
        "AmazonSnsSubscriptionSucceeded",
    ),
    # a configuration set's SNS event destination: a line of text, not JSON
    "SES event destination validated": (
        lambda: sns_envelope("Successfully validated SNS topic for Amazon SES event publishing."),
        "TopicValidated",
    ),
    # the same, as raw message delivery puts it on the queue: the text alone
    "SES event destination validated, raw": (
        lambda: "Successfully validated SNS topic for Amazon SES event publishing.",
        "TopicValidated",
    ),
}


@pytest.mark.parametrize("body", [b for b, _ in NOTICES.values()], ids=list(NOTICES))
def test_a_set_up_message_is_a_notice_not_a_poison_record(body: Callable[[], str]) -> None:
    with pytest.raises(SetupNotice) as caught:
        parse_event(body())

    assert not isinstance(caught.value, NotAnEmailEvent)
    assert caught.value.kind == dict(NOTICES.values())[body]


@pytest.mark.parametrize("body", POISON.values(), ids=list(POISON))
def test_a_poison_body_raises_not_an_email_event(body: Callable[[], str]) -> None:
    with pytest.raises(NotAnEmailEvent):
        parse_event(body())


def test_not_an_email_event_is_a_value_error() -> None:
    assert issubclass(NotAnEmailEvent, ValueError)


def test_an_email_event_is_immutable() -> None:
    event = parse_event(raw(sample("open")))
    assert isinstance(event, EmailEvent)
    with pytest.raises(AttributeError):
        event.message_id = "other"  # type: ignore[misc]


def test_a_clicked_link_is_kept_without_its_site_reference() -> None:
    # The email's site links carry the lead's signed reference (lnr), a bearer credential
    link = (
        "https://www.example.co.jp/pricing/?utm_source=nurture&utm_medium=email"
        "&lnr=4f9a1c2e8b7d4e6fa0c1d2e3f4a5b6c7.AbCdEf-_0123456789xyZ#plans"
    )
    record = ses_record("click", link=link)
    event = parse_event(raw(record))
    assert event.link == (
        "https://www.example.co.jp/pricing/?utm_source=nurture&utm_medium=email#plans"
    )
    # and a link without one is kept as SES reported it
    plain = "https://www.example.co.jp/a?b=c%2Fd"
    assert parse_event(raw(ses_record("click", link=plain))).link == plain
    # and where the reference sits among other parameters, they stay as written
    edited = "https://www.example.co.jp/s?q=a%20b&lnr=x.y&flag&c=d+e&lnr2=k"
    assert parse_event(raw(ses_record("click", link=edited))).link == (
        "https://www.example.co.jp/s?q=a%20b&flag&c=d+e&lnr2=k"
    )
    alone = "https://www.example.co.jp/s?lnr=x.y#top"
    assert (
        parse_event(raw(ses_record("click", link=alone))).link == "https://www.example.co.jp/s#top"
    )

"""A record that can never be processed is logged without personal data and put on its
dead-letter queue once, not retried; the rest of its batch is processed as usual.

The functions run as deployed (``tests.integration.deployed``): built by their own
``build`` with the environment a deployment gives them, on moto in process, fed from
their queues and the table's stream as Lambda feeds them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.wiring import CAPTURE, ENGAGEMENT, ENGAGEMENT_QUEUE, HANDOFF, SEND_QUEUE, SENDER
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.leads import ActivityType
from tests.email_events import raw, ses_record, sns_envelope
from tests.events import json_post
from tests.integration.deployed import (
    Deployed,
    client_error,
    deploy,
    function_logs,
    parsed,
)

EMAIL = "dead-letter-probe-91c2@example.co.jp"
PHONE = "090-8765-4321"
LEAD = {
    "email": EMAIL,
    "name": "配信 花子",
    "phone": PHONE,
    "company": "株式会社サンプル",
    "form_type": "download",
    "asset": "dx-whitepaper-2026",
    "consent": True,
}


@pytest.fixture
def deployed(aws: None, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    return deploy(monkeypatch.setenv)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    with function_logs() as buffer:
        yield buffer


def capture(deployed: Deployed, fields: dict[str, Any]) -> str:
    response = deployed.invoke(CAPTURE, json_post(fields))
    assert response["statusCode"] in (200, 201), response["body"]
    return str(parsed(response)["lead_id"])


def event_with_bad_timestamp(lead_id: str) -> dict[str, Any]:
    record = ses_record("open", lead_id=lead_id, email=EMAIL)
    record["open"]["timestamp"] = f"when {EMAIL} read it"
    return record


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(m["Body"] for m in messages)


def attribute(message: dict[str, Any], name: str) -> str:
    return str(message["MessageAttributes"][name]["StringValue"])


def assert_no_personal_data(text: str) -> None:
    for value in (EMAIL, PHONE, "配信 花子", "+819087654321"):
        assert value not in text


def test_malformed_engagement_events_go_to_the_dead_letter_queue_once(
    deployed: Deployed, logs: io.StringIO
) -> None:
    # Given a lead, and a batch on the engagement queue: a readable open event between an
    # event with a timestamp that cannot be read (its text holds the address), a body
    # that is not JSON, an SNS envelope of something that is not an SES event, and an
    # event whose timestamp has no time zone
    lead_id = capture(deployed, LEAD)
    naive = ses_record("click", lead_id=lead_id, email=EMAIL)
    naive["click"]["timestamp"] = "2026-11-24T01:00:00"
    malformed = [
        raw(event_with_bad_timestamp(lead_id)),
        f'{{"eventType": "Open", "mail": {{"destination": ["{EMAIL}"]',
        sns_envelope({"notificationType": "Received", "to": EMAIL}),
        sns_envelope(naive),
    ]
    good = raw(ses_record("open", lead_id=lead_id, email=EMAIL, at=deployed.clock.now()))
    deployed.send(ENGAGEMENT_QUEUE, malformed[0], malformed[1], good, *malformed[2:])

    # When the engagement function takes the batch
    batch = deployed.deliver(ENGAGEMENT)

    # Then it reports nothing failed: the readable event is recorded
    assert len(batch.records) == 5
    assert batch.failed == set()
    assert batch.response == {"batchItemFailures": []}
    # and each malformed one is on the dead-letter queue, once, with why
    dead = deployed.dead_letters(ENGAGEMENT_QUEUE)
    assert bodies(dead) == sorted(malformed)
    problems = {m["Body"]: attribute(m, "problem") for m in dead}
    assert problems[malformed[0]] == "bad timestamp"
    assert problems[malformed[1]] == "body is not JSON"
    assert problems[malformed[2]] == "unknown event type"
    assert problems[malformed[3]] == "timestamp without a time zone"
    assert {attribute(m, "error") for m in dead} == {"NotAnEmailEvent"}
    ids = {r["messageId"]: r["body"] for r in batch.records}
    assert {ids[attribute(m, "record_id")] for m in dead} == set(malformed)
    # nothing is left to be delivered again, so nothing reaches the queue's DLQ twice
    assert deployed.deliver(ENGAGEMENT).records == []
    assert len(deployed.dead_letters(ENGAGEMENT_QUEUE)) == len(malformed)
    # and the log says what happened without the address the records carried
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    moved = [line for line in lines if line["message"].startswith("malformed record moved")]
    assert len(moved) == len(malformed)
    assert all(line["level"] == "WARNING" and line["service"] == "engagement" for line in moved)
    assert_no_personal_data(logs.getvalue())


def test_the_topics_set_up_messages_are_acknowledged_not_dead_lettered(
    deployed: Deployed, logs: io.StringIO
) -> None:
    # Given, around a readable open event, what SNS and SES send when the email-events
    # topic is set up: a subscription waiting for confirmation, SES's word that an
    # identity's feedback reaches the topic, and its check of an event destination
    lead_id = capture(deployed, LEAD)
    confirmation = json.dumps(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37f",
            "TopicArn": "arn:aws:sns:ap-northeast-1:123456789012:lead-nurture-email-events",
            "Message": "You have chosen to subscribe to the topic ...",
            "SubscribeURL": "https://sns.ap-northeast-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2026-11-24T01:00:00.000Z",
        }
    )
    subscribed = sns_envelope(
        {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have ..."}
    )
    # raw message delivery (the queue's subscription): the text alone, as SES wrote it
    validated = "Successfully validated SNS topic for Amazon SES event publishing."
    good = raw(ses_record("open", lead_id=lead_id, email=EMAIL, at=deployed.clock.now()))
    deployed.send(ENGAGEMENT_QUEUE, confirmation, subscribed, good, validated)

    # When the engagement function takes the batch
    batch = deployed.deliver(ENGAGEMENT)

    # Then every message is processed: the event recorded, the notices acknowledged, none
    # dead-lettered (its alarm would fire at every set-up) or left to be delivered again
    assert len(batch.records) == 4
    assert batch.response == {"batchItemFailures": []}
    assert deployed.dead_letters(ENGAGEMENT_QUEUE) == []
    assert deployed.deliver(ENGAGEMENT).records == []
    repository = DynamoLeadRepository(deployed.client("dynamodb"), deployed.provisioned.table_name)
    assert [a.type for a in repository.timeline(lead_id)].count(ActivityType.EMAIL_OPENED) == 1
    # and only the confirmation, which waits for the topic's owner, is a warning
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    notices = {line["notice"]: line["level"] for line in lines if "notice" in line}
    waiting = next(line for line in lines if line.get("notice") == "SubscriptionConfirmation")
    assert waiting["topic_arn"].endswith(":lead-nurture-email-events")
    assert notices == {
        "SubscriptionConfirmation": "WARNING",
        "AmazonSnsSubscriptionSucceeded": "INFO",
        "TopicValidated": "INFO",
    }


def test_a_batch_of_malformed_events_only_succeeds(deployed: Deployed) -> None:
    # Given a batch of which no record can ever be processed
    deployed.send(ENGAGEMENT_QUEUE, "not json", "[]")

    # When it is taken, Powertools does not fail the invocation (which retries it all)
    batch = deployed.deliver(ENGAGEMENT)

    assert batch.response == {"batchItemFailures": []}
    assert bodies(deployed.dead_letters(ENGAGEMENT_QUEUE)) == ["[]", "not json"]


def test_a_malformed_record_is_retried_while_its_dead_letter_queue_is_out_of_reach(
    deployed: Deployed, logs: io.StringIO
) -> None:
    # Given a malformed event (the address in its text) and SQS refusing to take it
    lead_id = capture(deployed, LEAD)
    deployed.send(ENGAGEMENT_QUEUE, raw(event_with_bad_timestamp(lead_id)))
    refused = client_error("SendMessage", "ServiceUnavailable", "try again")

    # When the engagement function takes it
    with deployed.fail("sqs.SendMessage", refused) as failed:
        batch = deployed.deliver(ENGAGEMENT)

    # Then it is reported failed (SQS delivers it again), not dropped
    assert failed
    assert batch.failed == {batch.records[0]["messageId"]}
    assert deployed.dead_letters(ENGAGEMENT_QUEUE) == []
    assert "malformed record not dead-lettered; it will be retried" in logs.getvalue()
    assert_no_personal_data(logs.getvalue())


def test_messages_that_are_not_send_jobs_go_to_the_dead_letter_queue_once(
    deployed: Deployed, logs: io.StringIO
) -> None:
    # Given a lead due for its welcome email, its job queued by the scheduler, and
    # messages that are not send jobs
    capture(deployed, LEAD)
    assert deployed.tick()["queued"] == 1
    malformed = ["{not json", '{"program_id": "welcome"}', f'["{EMAIL}"]']
    deployed.send(SEND_QUEUE, *malformed)

    # When the sender works off its queue
    batches = deployed.drain(SENDER)

    # Then no message failed, the job was sent, and the others are dead letters, once
    assert [b.failed for b in batches] == [set()]
    assert len(batches[0].records) == 4
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [line["outcome"] for line in lines if line["message"] == "send job"] == ["sent"]
    dead = deployed.dead_letters(SEND_QUEUE)
    assert bodies(dead) == sorted(malformed)
    assert {attribute(m, "error") for m in dead} == {"NotASendJob"}
    assert deployed.drain(SENDER) == []
    assert_no_personal_data(logs.getvalue())


def test_a_stream_record_without_a_lead_is_described_on_the_failure_queue_once(
    deployed: Deployed, logs: io.StringIO
) -> None:
    # Given a lead that became an MQL on an inquiry (its profile on the stream), and the
    # same record without its lead id
    capture(deployed, {**LEAD, "form_type": "inquiry", "message": "見積もり希望"})
    (record,) = deployed.stream_records(HANDOFF)
    broken = json.loads(json.dumps(record))
    broken["eventID"] = "broken-record"
    del broken["dynamodb"]["NewImage"]["lead_id"]

    # When the hand-off function takes both
    response = deployed.invoke(HANDOFF, {"Records": [broken, record]})

    # Then neither is reported failed: the lead is handed off, and the broken record is
    # described on the stream's failure queue once (where to find it, not its item)
    assert response == {"batchItemFailures": []}
    assert len(deployed.queued(deployed.provisioned.sales_inbox_url)) == 1
    (letter,) = deployed.stream_failures(HANDOFF)
    assert json.loads(letter["Body"]) == {
        "eventID": "broken-record",
        "eventName": broken["eventName"],
        "eventSourceARN": broken["eventSourceARN"],
        "SequenceNumber": broken["dynamodb"]["SequenceNumber"],
        "Keys": broken["dynamodb"]["Keys"],
    }
    assert attribute(letter, "problem") == "lead profile without a lead_id"
    assert_no_personal_data(letter["Body"])
    assert_no_personal_data(logs.getvalue())

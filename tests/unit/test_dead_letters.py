"""Batch records that can never be processed go to the dead-letter queue at once
(shared.adapters.batch), with a fake queue: what is put there, what is reported, what
is logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from pydantic import BaseModel

from functions.observability import build_logger
from shared.adapters.batch import process_batch
from shared.domain.malformed import MalformedRecord
from tests.email_events import sqs_event

EMAIL = "pii-probe-7f3a@example.co.jp"


class DeadLetters:
    def __init__(self, refuse: bool = False) -> None:
        self.letters: list[tuple[str, dict[str, str]]] = []
        self.refuse = refuse

    def put(self, body: str, attributes: Mapping[str, str]) -> None:
        if self.refuse:
            raise ConnectionError("queue out of reach")
        self.letters.append((body, dict(attributes)))


class Job(BaseModel):
    lead_id: str
    step: int


def handle(record: Any) -> str:
    """A consumer whose records are JSON jobs; "retry" fails as an outage would."""
    if record.body == "retry":
        raise ConnectionError(f"table out of reach for {EMAIL}")
    try:
        document = json.loads(record.body)
    except ValueError as exc:
        raise MalformedRecord("body is not JSON") from exc
    return Job.model_validate(document).lead_id


@pytest.fixture
def logged() -> Any:
    logger = build_logger("dead-letter-test")
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    return logger, stream


def failed(response: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_malformed_records_are_put_on_the_dead_letter_queue_and_reported_processed(
    logged: Any,
) -> None:
    logger, stream = logged
    dead = DeadLetters()
    bodies = [
        '{"lead_id": "a", "step": 1}',
        f'{{"email": "{EMAIL}"',
        f'{{"lead_id": "{EMAIL}", "step": "{EMAIL}"}}',
        "retry",
    ]
    event = sqs_event(bodies)
    ids = [r["messageId"] for r in event["Records"]]

    response = process_batch(event, None, handle, logger=logger, dead_letters=dead)  # type: ignore[arg-type]

    # Only the record that may work later is reported for redelivery
    assert failed(response) == [ids[3]]
    # each malformed one is on the dead-letter queue once, as it came, with why
    assert [body for body, _ in dead.letters] == bodies[1:3]
    (_, unreadable), (_, invalid) = dead.letters
    assert unreadable == {
        "record_id": ids[1],
        "source_arn": event["Records"][1]["eventSourceARN"],
        "error": "MalformedRecord",
        "problem": "body is not JSON",
    }
    assert invalid["error"] == "ValidationError"
    assert invalid["problem"] == "step: int_parsing"
    # and the log says so without the values
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "malformed record moved to the dead-letter queue",
        "malformed record moved to the dead-letter queue",
        "record failed; it will be retried",
    ]
    assert EMAIL not in stream.getvalue()


def test_without_a_dead_letter_queue_a_malformed_record_is_retried(logged: Any) -> None:
    logger, stream = logged
    event = sqs_event(['{"lead_id": "a", "step": 1}', "{"])

    response = process_batch(event, None, handle, logger=logger)  # type: ignore[arg-type]

    assert failed(response) == [event["Records"][1]["messageId"]]
    assert "malformed record; it will be retried" in stream.getvalue()


def test_a_malformed_record_the_queue_refuses_is_retried(logged: Any) -> None:
    logger, stream = logged
    event = sqs_event(['{"lead_id": "a", "step": 1}', "{"])

    response = process_batch(
        event,
        None,  # type: ignore[arg-type]
        handle,
        logger=logger,
        dead_letters=DeadLetters(refuse=True),
    )

    assert failed(response) == [event["Records"][1]["messageId"]]
    assert "malformed record not dead-lettered; it will be retried" in stream.getvalue()


def test_a_batch_that_fails_whole_fails_without_the_records_errors(logged: Any) -> None:
    # Lambda logs the error that fails the invocation as it is: the records' errors
    # (here the address) stay in the function's log, redacted
    logger, stream = logged

    with pytest.raises(BatchProcessingError) as caught:
        process_batch(sqs_event(["retry", "retry"]), None, handle, logger=logger)  # type: ignore[arg-type]

    assert EMAIL not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert stream.getvalue().count("record failed; it will be retried") == 2
    assert EMAIL not in stream.getvalue()


def test_a_stream_record_is_described_not_copied() -> None:
    dead = DeadLetters()
    record = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:ap-northeast-1:123456789012:table/t/stream/s",
        "dynamodb": {
            "Keys": {"pk": {"S": "LEAD#a"}, "sk": {"S": "PROFILE"}},
            "NewImage": {"email": {"S": EMAIL}},
            "SequenceNumber": "100",
        },
    }

    def broken(_: Any) -> str:
        raise MalformedRecord("lead profile without a lead_id")

    response = process_batch(
        {"Records": [record]},
        None,  # type: ignore[arg-type]
        broken,
        EventType.DynamoDBStreams,
        dead_letters=dead,
    )

    assert failed(response) == []
    ((body, attributes),) = dead.letters
    assert json.loads(body) == {
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventSourceARN": record["eventSourceARN"],
        "SequenceNumber": "100",
        "Keys": {"pk": {"S": "LEAD#a"}, "sk": {"S": "PROFILE"}},
    }
    assert attributes["record_id"] == "e1"

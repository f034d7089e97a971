"""The local stack's triggers: what Lambda's event sources promise.

Partial batch failures are honoured on queues (and the redrive policy dead-letters),
stream records are filtered by the wiring's filter, and a failed stream batch is
retried from the first record the function reported failed. Queues against moto;
the stream reader on a canned shard (in-process moto does not route DynamoDB Streams).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.local.runtime import LocalRuntime, StreamReader, Triggers, stream_record
from infra.provision import create_queues
from infra.wiring import NEW_MQL_FILTER, FunctionSpec, QueueSpec
from shared.clock import OffsetClock

pytestmark = pytest.mark.e2e

TABLE = "local-runtime"
QUEUE = QueueSpec(name="jobs", visibility_timeout_s=0, max_receive_count=2, batch_size=10)
CONSUMER = FunctionSpec(name="consumer", handler="unused", description="", consumes=QUEUE)


class Recorder:
    """A function that records its events and answers what the test says."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answers: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        answer = self.answers.pop(0) if self.answers else {"batchItemFailures": []}
        if isinstance(answer, Exception):
            raise answer
        return answer(event) if callable(answer) else answer


@pytest.fixture
def world(aws: None) -> Iterator[tuple[LocalRuntime, Recorder, dict[str, str], dict[str, str]]]:
    session = boto3.session.Session()
    sqs = session.client("sqs")
    queue_urls, dead_letter_urls = create_queues(sqs, "local", [QUEUE])
    recorder = Recorder()
    runtime = LocalRuntime(
        [CONSUMER],
        {CONSUMER.name: recorder},
        OffsetClock(),
        Triggers(queue_urls=queue_urls, table_name=TABLE),
        sqs=sqs,
        dynamodb=session.client("dynamodb"),
        streams=session.client("dynamodbstreams"),
    )
    yield runtime, recorder, queue_urls, dead_letter_urls
    runtime.stop()


def queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def fail_bodies(*bodies: str) -> Any:
    """An answer reporting the messages with these bodies failed."""

    def answer(event: dict[str, Any]) -> dict[str, Any]:
        failed = [r["messageId"] for r in event["Records"] if r["body"] in bodies]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    return answer


def test_only_the_messages_reported_failed_come_back_and_end_in_the_dead_letter_queue(
    world: tuple[LocalRuntime, Recorder, dict[str, str], dict[str, str]],
) -> None:
    runtime, recorder, queue_urls, dead_letter_urls = world
    sqs = boto3.client("sqs")
    url = queue_urls[QUEUE.name]
    arn = queue_arn(sqs, url)
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    # When the function reports "b" failed, then fails outright, then succeeds
    recorder.answers += [fail_bodies("b"), RuntimeError("boom")]
    assert runtime.poll_queue(CONSUMER, QUEUE, url, arn) == 3

    # Then the batch was shaped as Lambda's SQS event source shapes it
    record = recorder.events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "ap-northeast-1"
    assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody"} <= set(record)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    # and only "b" comes back (visibility timeout 0), failed again by the exception
    assert runtime.poll_queue(CONSUMER, QUEUE, url, arn) == 1
    assert [r["body"] for r in recorder.events[1]["Records"]] == ["b"]
    # and after max_receive_count receives it is in the dead-letter queue, not redelivered
    assert runtime.poll_queue(CONSUMER, QUEUE, url, arn) == 0
    dead = sqs.receive_message(QueueUrl=dead_letter_urls[QUEUE.name], MaxNumberOfMessages=10)
    assert [m["Body"] for m in dead["Messages"]] == ["b"]
    assert len(recorder.events) == 2


def change(sequence: int, lead: str, stage: str, sk: str = "PROFILE") -> dict[str, Any]:
    """A record as the dynamodbstreams client returns it."""
    item = {"pk": {"S": f"LEAD#{lead}"}, "sk": {"S": sk}, "stage": {"S": stage}}
    return {
        "eventID": f"e{sequence}",
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "NewImage": item,
            "SequenceNumber": str(sequence),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


class Shard:
    """The dynamodbstreams client's GetRecords on one shard holding ``records``."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._records = records

        self.refreshed_after: list[str] = []

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        records, self._records = self._records[:Limit], self._records[Limit:]
        return {"Records": records, "NextShardIterator": "next"}

    def get_shard_iterator(self, **request: str) -> dict[str, str]:
        assert request["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
        self.refreshed_after.append(request["SequenceNumber"])
        return {"ShardIterator": f"after-{request['SequenceNumber']}"}


def test_stream_records_are_filtered_and_retried_from_the_first_failure() -> None:
    # Given two new MQLs around writes the filter drops (another stage, a timeline item)
    shard = Shard(
        [
            change(1, "1", "mql"),
            change(2, "2", "lead"),
            change(3, "1", "mql", sk="ACT#1"),
            change(4, "3", "mql"),
        ]
    )
    delivered: list[list[str]] = []
    # The function fails the batch once, then reports the second record failed once
    answers: list[set[str] | None] = [None, {"4"}]

    def deliver(records: list[dict[str, Any]]) -> set[str] | None:
        delivered.append([r["dynamodb"]["SequenceNumber"] for r in records])
        return answers.pop(0) if answers else set()

    stop = threading.Event()
    reader = StreamReader(shard, "arn:stream", "shard-1", "first", NEW_MQL_FILTER, deliver, stop)  # type: ignore[arg-type]
    thread = threading.Thread(target=reader.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(delivered) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert delivered == [["1", "4"], ["1", "4"], ["4"]]
    # once drained, the reader re-takes its place after the last record it read
    assert set(shard.refreshed_after) == {"4"}


def test_a_stream_record_has_the_shape_lambda_delivers() -> None:
    raw = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"pk": {"S": "LEAD#1"}, "sk": {"S": "PROFILE"}},
            "NewImage": {"pk": {"S": "LEAD#1"}, "sk": {"S": "PROFILE"}, "stage": {"S": "mql"}},
            "OldImage": {"pk": {"S": "LEAD#1"}, "sk": {"S": "PROFILE"}, "blob": {"B": b"\x00"}},
            "SequenceNumber": "100",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    record = stream_record(raw, "arn:stream")
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == "arn:stream"
    assert record["dynamodb"]["OldImage"]["blob"] == {"B": "AA=="}
    assert record["dynamodb"]["SizeBytes"] > 0
    json.dumps(record)
    assert NEW_MQL_FILTER.matches(record)
    assert not NEW_MQL_FILTER.matches({**record, "eventName": "REMOVE"})

"""The local stack's triggers: what Lambda's event sources promise.

Queues: partial batch failures are honoured (and the redrive policy dead-letters),
batching windows gather messages, and one batch runs at a time. The table's stream:
records are filtered by the wiring's filter, a failed batch is bisected or retried from
the first record the function reported failed, and records given up on (retries spent,
too old) are described on the on-failure queue. Queues against in-process moto; the
stream reader on a canned shard, and the whole stream poller against moto in server
mode (in-process moto does not route DynamoDB Streams).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.local.runtime import (
    Discarded,
    LocalRuntime,
    StreamReader,
    Triggers,
    on_failure_record,
    stream_record,
)
from infra.provision import create_queues, create_stream_failure_queues, create_table
from infra.wiring import HANDOFF, NEW_MQL_FILTER, FunctionSpec, QueueSpec, StreamSource
from shared.domain.clock import OffsetClock

pytestmark = pytest.mark.e2e

T = TypeVar("T")
# Generous: these bound waits for threads, they do not time them.
WAIT_S = 30.0


def eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WAIT_S
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {WAIT_S}s")
        time.sleep(0.05)
    return found


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


def in_flight(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def bodies(event: dict[str, Any]) -> list[str]:
    return [r["body"] for r in event["Records"]]


def test_a_batching_window_gathers_the_messages_sent_within_it(
    world: tuple[LocalRuntime, Recorder, dict[str, str], dict[str, str]],
) -> None:
    runtime, recorder, _, _ = world
    sqs = boto3.client("sqs")
    # A window far longer than the test: the batch goes out because it is full
    queue = QueueSpec(
        name="gathered", visibility_timeout_s=60, batch_size=3, max_batching_window_s=600
    )
    url = create_queues(sqs, "local", [queue])[0][queue.name]
    arn = queue_arn(sqs, url)
    sqs.send_message(QueueUrl=url, MessageBody="a")
    received: list[int] = []
    poller = threading.Thread(
        target=lambda: received.append(runtime.poll_queue(CONSUMER, queue, url, arn)),
        daemon=True,
    )
    poller.start()

    # When two more messages are sent after the poller holds the first one
    eventually(lambda: True if in_flight(sqs, url) == 1 else None, "the first message received")
    sqs.send_message(QueueUrl=url, MessageBody="b")
    sqs.send_message(QueueUrl=url, MessageBody="c")
    poller.join(WAIT_S)

    # Then the function got the three in one batch
    assert received == [3]
    assert [bodies(event) for event in recorder.events] == [["a", "b", "c"]]


def test_a_batch_short_of_its_size_goes_out_when_the_window_closes(
    world: tuple[LocalRuntime, Recorder, dict[str, str], dict[str, str]],
) -> None:
    runtime, recorder, _, _ = world
    sqs = boto3.client("sqs")
    queue = QueueSpec(
        name="windowed", visibility_timeout_s=60, batch_size=10, max_batching_window_s=1
    )
    url = create_queues(sqs, "local", [queue])[0][queue.name]
    sqs.send_message(QueueUrl=url, MessageBody="a")

    assert runtime.poll_queue(CONSUMER, queue, url, queue_arn(sqs, url)) == 1
    assert [bodies(event) for event in recorder.events] == [["a"]]
    assert in_flight(sqs, url) == 0  # handled and deleted


def test_a_queue_consumer_never_runs_more_batches_at_once_than_its_max_concurrency(
    aws: None,
) -> None:
    queue = QueueSpec(name="capped", visibility_timeout_s=60, batch_size=1, max_concurrency=2)
    spec = FunctionSpec(name="capped", handler="unused", description="", consumes=queue)
    sqs = boto3.client("sqs")
    urls = create_queues(sqs, "local", [queue])[0]
    lock = threading.Lock()
    running: list[int] = [0]
    peak: list[int] = [0]
    handled: list[str] = []

    def function(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)  # long enough for batches to overlap, were they run in parallel
        with lock:
            running[0] -= 1
            handled.extend(bodies(event))
        return {"batchItemFailures": []}

    runtime = LocalRuntime(
        [spec],
        {spec.name: function},
        OffsetClock(),
        Triggers(queue_urls=urls, table_name=TABLE),
        sqs=sqs,
        dynamodb=boto3.client("dynamodb"),
        streams=boto3.client("dynamodbstreams"),
    )
    for n in range(20):
        sqs.send_message(QueueUrl=urls[queue.name], MessageBody=str(n))
    runtime.start()
    try:
        eventually(lambda: True if len(handled) == 20 else None, "every message handled")
    finally:
        runtime.stop()
    assert queue.max_concurrency is not None
    assert 1 <= peak[0] <= queue.max_concurrency


def change(
    sequence: int, lead: str, stage: str, sk: str = "PROFILE", created: datetime | None = None
) -> dict[str, Any]:
    """A record as the dynamodbstreams client returns it."""
    item = {"pk": {"S": f"LEAD#{lead}"}, "sk": {"S": sk}, "stage": {"S": stage}}
    return {
        "eventID": f"e{sequence}",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": created or datetime.now(UTC),
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "NewImage": item,
            "SequenceNumber": str(sequence),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


SOURCE = StreamSource(filter=NEW_MQL_FILTER, batch_size=10, retry_attempts=2)


def sequences(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in records]


class Shard:
    """The dynamodbstreams client's GetRecords on one shard holding ``records``."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._records = records
        self.iterators: list[str] = []  # the iterator of each GetRecords, in order

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.iterators.append(ShardIterator)
        records, self._records = self._records[:Limit], self._records[Limit:]
        return {"Records": records, "NextShardIterator": f"after-{len(self.iterators)}"}


class Consumer:
    """The reader's two callbacks: a function answering per batch, and a failure queue."""

    def __init__(self, answer: Callable[[list[str]], set[str] | None]) -> None:
        self._answer = answer
        self.batches: list[list[str]] = []  # every invocation, in order
        self.succeeded: list[list[str]] = []
        self.discarded: list[Discarded] = []

    def deliver(self, records: list[dict[str, Any]]) -> set[str] | None:
        batch = sequences(records)
        self.batches.append(batch)
        failed = self._answer(batch)
        if failed is not None and not failed:
            self.succeeded.append(batch)
        return failed

    def discard(self, discarded: Discarded) -> None:
        self.discarded.append(discarded)


def read(
    shard: Shard, consumer: Consumer, done: Callable[[], bool], source: StreamSource = SOURCE
) -> None:
    """Run a reader on the shard until ``done``."""
    stop = threading.Event()
    reader = StreamReader(
        shard,  # type: ignore[arg-type]
        "arn:stream",
        "shard-1",
        "first",
        source,
        consumer.deliver,
        consumer.discard,
        stop,
        retry_wait_s=0,
    )
    thread = threading.Thread(target=reader.run)
    thread.start()
    try:
        eventually(lambda: True if done() else None, "the reader to get there")
    finally:
        stop.set()
        thread.join(WAIT_S)


def test_stream_records_are_filtered_and_retried_from_the_first_reported_failure() -> None:
    # Given three new MQLs around writes the filter drops (another stage, a timeline item)
    shard = Shard(
        [
            change(1, "1", "mql"),
            change(2, "2", "lead"),
            change(3, "1", "mql", sk="ACT#1"),
            change(4, "3", "mql"),
            change(5, "4", "mql"),
        ]
    )
    # When the function reports the second record failed once
    answers: list[set[str] | None] = [{"4"}]
    consumer = Consumer(lambda batch: answers.pop(0) if answers else set())
    read(shard, consumer, lambda: len(consumer.succeeded) == 1)

    # Then the retry starts from that record: the one before it is not handled twice
    assert consumer.batches == [["1", "4", "5"], ["4", "5"]]
    assert consumer.discarded == []
    # and it reads on from each answer's next iterator, as on AWS
    assert shard.iterators[:3] == ["first", "after-1", "after-2"]


def test_a_poison_record_is_bisected_out_and_the_others_succeed_once_in_order() -> None:
    shard = Shard([change(n, str(n), "mql") for n in range(1, 11)])
    # The function fails (raises) on any batch holding record 4
    consumer = Consumer(lambda batch: None if "4" in batch else set())
    read(shard, consumer, lambda: sum(map(len, consumer.succeeded)) == 9)

    # Each other record is in exactly one successful invocation, in stream order
    # (delivery is at least once: failed invocations held some of them too)
    assert [n for batch in consumer.succeeded for n in batch] == [
        str(n) for n in range(1, 11) if n != 4
    ]
    # The batch was halved until record 4 was alone; only then were retries spent on it
    assert consumer.batches == [
        [str(n) for n in range(1, 11)],
        ["1", "2", "3", "4", "5"],
        ["1", "2", "3"],
        ["4", "5"],
        ["4"],
        ["4"],
        ["4"],
        ["5"],
        [str(n) for n in range(6, 11)],
    ]
    (discarded,) = consumer.discarded
    assert sequences(list(discarded.records)) == ["4"]
    assert discarded.condition == "RetryAttemptsExhausted"
    assert discarded.invocations == SOURCE.retry_attempts + 1
    assert discarded.function_error


def test_reported_failures_that_never_succeed_are_given_up_on_from_that_record() -> None:
    shard = Shard([change(n, str(n), "mql") for n in range(1, 5)])
    # Record 2 is always reported failed (no exception, so nothing to bisect)
    consumer = Consumer(lambda batch: {"2"} if "2" in batch else set())
    read(shard, consumer, lambda: bool(consumer.discarded))

    assert consumer.batches == [["1", "2", "3", "4"], ["2", "3", "4"], ["2", "3", "4"]]
    (discarded,) = consumer.discarded
    assert sequences(list(discarded.records)) == ["2", "3", "4"]
    assert (discarded.condition, discarded.invocations) == ("RetryAttemptsExhausted", 3)
    assert not discarded.function_error


def test_a_record_older_than_the_maximum_age_is_given_up_on_without_invoking() -> None:
    now = datetime.now(UTC)
    old = change(1, "1", "mql", created=now - timedelta(seconds=SOURCE.max_record_age_s + 60))
    shard = Shard([old, change(2, "2", "mql", created=now)])
    consumer = Consumer(lambda batch: set())
    read(shard, consumer, lambda: bool(consumer.succeeded))

    assert consumer.batches == [["2"]]
    (discarded,) = consumer.discarded
    assert sequences(list(discarded.records)) == ["1"]
    assert (discarded.condition, discarded.invocations) == ("RecordAgeExceeded", 0)


def test_the_on_failure_record_has_the_shape_lambda_sends() -> None:
    records = [
        stream_record(
            change(n, str(n), "mql", created=datetime(2026, 11, 23, 0, n, tzinfo=UTC)), "arn:stream"
        )
        for n in (7, 8)
    ]
    discarded = Discarded(
        records=records,
        condition="RetryAttemptsExhausted",
        invocations=6,
        function_error=True,
        shard_id="shard-1",
        stream_arn="arn:stream",
    )
    now = datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC)

    record = on_failure_record(discarded, function="handoff", now=now)

    assert uuid.UUID(record.pop("requestContext").pop("requestId"))
    assert record == {
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": "2026-11-23T01:02:03.456Z",
        "DDBStreamBatchInfo": {
            "shardId": "shard-1",
            "startSequenceNumber": "7",
            "endSequenceNumber": "8",
            "approximateArrivalOfFirstRecord": "2026-11-23T00:07:00Z",
            "approximateArrivalOfLastRecord": "2026-11-23T00:08:00Z",
            "batchSize": 2,
            "streamArn": "arn:stream",
        },
    }
    aged = on_failure_record(
        replace(discarded, condition="RecordAgeExceeded", invocations=0, function_error=False),
        function="handoff",
        now=now,
    )
    assert aged["requestContext"]["functionArn"] == (
        "arn:aws:lambda:ap-northeast-1:123456789012:function:handoff"
    )
    assert aged["requestContext"]["condition"] == "RecordAgeExceeded"
    assert aged["requestContext"]["approximateInvokeCount"] == 0
    assert aged["responseContext"] == {}


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


# -- the stream poller end to end, against moto in server mode ---------------------------

POISON = "LEAD#4"


def handoff_source() -> StreamSource:
    assert HANDOFF.stream is not None
    return HANDOFF.stream


# The hand-off's event source, with fewer retries so the test need not wait for five.
WATCHER = FunctionSpec(
    name="watcher",
    handler="unused",
    description="",
    stream=replace(handoff_source(), retry_attempts=2),
)


class StreamFunction:
    """Raises on any batch holding the poison lead; keeps what it was given."""

    def __init__(self) -> None:
        self.succeeded: list[str] = []  # leads, in the order of successful invocations
        self.sequence_numbers: dict[str, str] = {}

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        leads = []
        for record in event["Records"]:
            lead = record["dynamodb"]["Keys"]["pk"]["S"]
            self.sequence_numbers[lead] = record["dynamodb"]["SequenceNumber"]
            leads.append(lead)
        if POISON in leads:
            raise RuntimeError("cannot hand this lead off")
        self.succeeded.extend(leads)
        return {"batchItemFailures": []}


@pytest.fixture
def moto_client() -> Iterator[Callable[[str], Any]]:
    """Clients of a moto server of this test's own (its endpoint, not the environment's)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield lambda service: boto3.client(service, endpoint_url=f"http://{host}:{port}")  # type: ignore[call-overload]
    finally:
        server.stop()


def test_a_poison_record_ends_on_the_on_failure_queue_and_the_stream_moves_on(
    moto_client: Callable[[str], Any],
) -> None:
    dynamodb = moto_client("dynamodb")
    sqs = moto_client("sqs")
    table = "runtime-stream"
    create_table(dynamodb, table)
    # Ten leads becoming MQL, read as one batch from the start of the stream
    leads = [f"LEAD#{n}" for n in range(1, 11)]
    for lead in leads:
        item = {"pk": {"S": lead}, "sk": {"S": "PROFILE"}, "stage": {"S": "mql"}}
        dynamodb.put_item(TableName=table, Item=item)
    function = StreamFunction()
    failure_queues = create_stream_failure_queues(sqs, table, [WATCHER])
    runtime = LocalRuntime(
        [WATCHER],
        {WATCHER.name: function},
        OffsetClock(),
        Triggers(queue_urls={}, table_name=table, stream_failure_queue_urls=failure_queues),
        sqs=sqs,
        dynamodb=dynamodb,
        streams=moto_client("dynamodbstreams"),
        stream_retry_wait_s=0,
    )
    runtime.start(stream_from_start=True)
    try:
        url = failure_queues[WATCHER.name]

        def failure() -> dict[str, Any] | None:
            messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages")
            return json.loads(messages[0]["Body"]) if messages else None

        record = eventually(failure, "a record on the on-failure queue")
        eventually(lambda: True if len(function.succeeded) == 9 else None, "the other leads")
    finally:
        runtime.stop()

    assert url.endswith(f"/{table}-{WATCHER.name}-stream-failures")
    # Every other lead was handed off once, in the order written
    assert function.succeeded == [lead for lead in leads if lead != POISON]
    # and the poison one is described where Lambda would put it
    stream_arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    context = record["requestContext"]
    assert context["condition"] == "RetryAttemptsExhausted"
    assert context["approximateInvokeCount"] == 3  # the invocation and 2 retries alone
    assert context["functionArn"].endswith(f":function:{WATCHER.name}")
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["DDBStreamBatchInfo"]
    assert info["streamArn"] == stream_arn
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["startSequenceNumber"] == function.sequence_numbers[POISON]
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")

"""What Lambda's triggers do, for the local stack, read from the wiring.

- Functions with ``schedule_minutes`` run on a timer, with EventBridge's scheduled event.
- Functions that consume a queue get SQS batches as Lambda's event source mapping
  builds them; only the messages not reported in ``batchItemFailures`` are deleted, so
  failed ones come back after the visibility timeout and, after ``max_receive_count``
  receives, the queue's redrive policy moves them to the dead-letter queue.
- Functions that consume the table's stream get its records through the wiring's
  filter, in order; a failed batch is retried (from the first failed record) up to
  ``STREAM_RETRY_ATTEMPTS`` times, then given up on (logged; a failure queue on AWS).

One thread per timer and poller; ``stop`` ends them all.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from infra.local.functions import ACCOUNT, REGION, Handler, invoke
from infra.wiring import (
    STREAM_BATCH_SIZE,
    STREAM_RETRY_ATTEMPTS,
    FunctionSpec,
    QueueSpec,
    StreamFilter,
)
from shared.clock import Clock

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)

# Seconds of wall time one scheduled minute lasts (EventBridge's rate(n minutes)).
MINUTE_S = 60.0
# Long polling, as Lambda's pollers do; also how long a poller takes to notice a stop.
RECEIVE_WAIT_S = 1
STREAM_POLL_S = 0.5
STREAM_RETRY_WAIT_S = 1.0


def scheduled_event(spec: FunctionSpec, now: datetime) -> dict[str, Any]:
    """What an EventBridge rule with a rate schedule sends its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{spec.name}-schedule"],
        "detail": {},
    }


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One SQS message as Lambda's SQS event source hands it to the function."""
    attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attribute: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        attributes[name] = attribute
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _as_event_json(value: Any) -> Any:
    """Attribute values as JSON: the client's bytes (B, BS) become base64, as in events."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {k: _as_event_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_as_event_json(v) for v in value]
    return value


def stream_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One record of ``GetRecords`` as Lambda's DynamoDB event source hands it over."""
    data = record["dynamodb"]
    created = data.get("ApproximateCreationDateTime")
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": (
            int(created.timestamp()) if isinstance(created, datetime) else created
        ),
        "Keys": _as_event_json(data.get("Keys", {})),
        "SequenceNumber": data["SequenceNumber"],
        "StreamViewType": data.get("StreamViewType", "NEW_AND_OLD_IMAGES"),
    }
    for image in ("NewImage", "OldImage"):
        if image in data:
            dynamodb[image] = _as_event_json(data[image])
    dynamodb["SizeBytes"] = len(
        json.dumps({k: v for k, v in dynamodb.items() if k in ("Keys", "NewImage", "OldImage")})
    )
    return {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def reported_failures(result: Any, identifiers: Sequence[str]) -> set[str] | None:
    """The identifiers the function reported failed; None means the whole batch failed
    (Lambda's reading of a response naming a record that was not in the batch)."""
    if not isinstance(result, Mapping):
        return set()
    failures = {str(f.get("itemIdentifier")) for f in result.get("batchItemFailures") or []}
    if not failures <= set(identifiers):
        return None
    return failures


@dataclass(frozen=True)
class Triggers:
    """Where the triggers read from: queue URLs by wiring name and the table's name."""

    queue_urls: Mapping[str, str]
    table_name: str


class LocalRuntime:
    def __init__(
        self,
        specs: Sequence[FunctionSpec],
        handlers: Mapping[str, Handler],
        clock: Clock,
        triggers: Triggers,
        *,
        sqs: SQSClient,
        dynamodb: DynamoDBClient,
        streams: DynamoDBStreamsClient,
        minute_s: float = MINUTE_S,
    ) -> None:
        self._specs = specs
        self._handlers = handlers
        self._clock = clock
        self._triggers = triggers
        self._sqs = sqs
        self._dynamodb = dynamodb
        self._streams = streams
        self._minute_s = minute_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def scheduled(self) -> list[FunctionSpec]:
        return [spec for spec in self._specs if spec.schedule_minutes is not None]

    def start(self, *, stream_from_start: bool = False) -> None:
        """One thread per schedule, queue and stream consumer.

        The stream is read from its latest record, as the CDK event source starts, or
        from the oldest one it keeps (``stream_from_start``).
        """
        jobs: list[tuple[str, Callable[[], None]]] = []
        for spec in self._specs:
            if spec.schedule_minutes is not None:
                jobs.append((f"schedule-{spec.name}", self._timer(spec)))
            if spec.consumes is not None:
                jobs.append((f"sqs-{spec.name}", self._queue_poller(spec, spec.consumes)))
            if spec.consumes_stream:
                poller = self._stream_poller(spec, stream_from_start)
                jobs.append((f"stream-{spec.name}", poller))
        for name, target in jobs:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    # -- schedules -----------------------------------------------------------------------

    def run_scheduled(self, spec: FunctionSpec) -> Any:
        return invoke(spec, self._handlers, scheduled_event(spec, self._clock.now()))

    def tick(self) -> dict[str, Any]:
        """Every scheduled function once, now; their results by function name."""
        return {spec.name: self.run_scheduled(spec) for spec in self.scheduled}

    def _timer(self, spec: FunctionSpec) -> Callable[[], None]:
        interval = (spec.schedule_minutes or 1) * self._minute_s

        def run() -> None:
            # Like an EventBridge rate rule: the first run one interval after it starts.
            while not self._stop.wait(interval):
                try:
                    self.run_scheduled(spec)
                except Exception:
                    # No retry, as on AWS (retry_attempts=0): the next run picks up.
                    log.exception("scheduled run of %s failed", spec.name)

        return run

    # -- queues --------------------------------------------------------------------------

    def _queue_poller(self, spec: FunctionSpec, queue: QueueSpec) -> Callable[[], None]:
        url = self._triggers.queue_urls[queue.name]

        def run() -> None:
            arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            while not self._stop.is_set():
                try:
                    self.poll_queue(spec, queue, url, arn)
                except Exception:
                    log.exception("polling the %s queue failed", queue.name)
                    self._stop.wait(RECEIVE_WAIT_S)

        return run

    def poll_queue(self, spec: FunctionSpec, queue: QueueSpec, url: str, arn: str) -> int:
        """Receive one batch, invoke, delete what succeeded; the number received."""
        messages = self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=queue.batch_size,
            WaitTimeSeconds=RECEIVE_WAIT_S,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [sqs_record(m, arn) for m in messages]
        ids = [r["messageId"] for r in records]
        try:
            failed = reported_failures(invoke(spec, self._handlers, {"Records": records}), ids)
        except Exception:
            log.exception("%s failed on a batch of %d messages", spec.name, len(records))
            failed = None
        if failed is None:
            return len(messages)  # all of them come back after the visibility timeout
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)
                ],
            )
        return len(messages)

    # -- the table's stream ----------------------------------------------------------------

    def _stream_poller(self, spec: FunctionSpec, from_start: bool) -> Callable[[], None]:
        table = self._dynamodb.describe_table(TableName=self._triggers.table_name)["Table"]
        stream_arn = table["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        # Taken now, not when the thread runs, so no write after start() is missed.
        iterators = [
            self._streams.get_shard_iterator(
                StreamArn=stream_arn,
                ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON" if from_start else "LATEST",
            )["ShardIterator"]
            for shard in shards
        ]

        def run() -> None:
            for shard, iterator in zip(shards, iterators, strict=True):  # moto: one shard
                reader = StreamReader(
                    self._streams,
                    stream_arn,
                    shard["ShardId"],
                    iterator,
                    spec.stream_filter,
                    partial(self.invoke_stream, spec),
                    self._stop,
                )
                reader.run()

        return run

    def invoke_stream(self, spec: FunctionSpec, records: list[dict[str, Any]]) -> set[str] | None:
        ids = [r["dynamodb"]["SequenceNumber"] for r in records]
        try:
            return reported_failures(invoke(spec, self._handlers, {"Records": records}), ids)
        except Exception:
            log.exception("%s failed on a batch of %d stream records", spec.name, len(records))
            return None


class StreamReader:
    """Reads one shard in order; a batch blocks the shard until it succeeds or is given up.

    ``deliver`` invokes the function with a batch and returns the sequence numbers it
    reported failed, or None if the whole batch failed.
    """

    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        stream_arn: str,
        shard_id: str,
        iterator: str | None,
        stream_filter: StreamFilter | None,
        deliver: Callable[[list[dict[str, Any]]], set[str] | None],
        stop: threading.Event,
    ) -> None:
        self._streams = streams
        self._stream_arn = stream_arn
        self._shard_id = shard_id
        self._iterator = iterator
        self._last_sequence: str | None = None
        self._filter = stream_filter
        self._deliver_batch = deliver
        self._stop = stop
        self._pending: list[dict[str, Any]] = []
        self._attempts = 0

    def run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                if len(self._pending) < STREAM_BATCH_SIZE:
                    self._read()
                if not self._pending:
                    stop.wait(STREAM_POLL_S)
                    continue
                if not self._deliver():
                    stop.wait(STREAM_RETRY_WAIT_S * self._attempts)
            except Exception:
                log.exception("reading the table's stream failed")
                stop.wait(STREAM_RETRY_WAIT_S)

    def _read(self) -> None:
        if self._iterator is None:
            return  # the shard was closed
        response = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = response.get("NextShardIterator")
        records = response.get("Records", [])
        if not records and self._last_sequence is not None:
            # moto swaps a table's stream for a copy when it rolls back a cancelled
            # transaction, and an old iterator keeps reading the stale copy: take a fresh
            # iterator after the last record seen (cheap, and harmless on real streams).
            self._iterator = self._streams.get_shard_iterator(
                StreamArn=self._stream_arn,
                ShardId=self._shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=self._last_sequence,
            )["ShardIterator"]
        for raw in records:
            self._last_sequence = str(raw["dynamodb"]["SequenceNumber"])
            record = stream_record(dict(raw), self._stream_arn)
            if self._filter is None or self._filter.matches(record):
                self._pending.append(record)

    def _deliver(self) -> bool:
        """Invoke with the next batch; whether the shard moved on."""
        batch = self._pending[:STREAM_BATCH_SIZE]
        failed = self._deliver_batch(batch)
        if failed is not None and not failed:
            del self._pending[: len(batch)]
            self._attempts = 0
            return True
        # As with report_batch_item_failures: retry from the first record reported failed.
        first = 0
        if failed:
            first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
        del self._pending[:first]
        self._attempts += 1
        if self._attempts > STREAM_RETRY_ATTEMPTS:
            given_up = batch[first:]
            log.error(
                "gave up on %d stream records after %d retries (sequence numbers %s)",
                len(given_up),
                STREAM_RETRY_ATTEMPTS,
                [r["dynamodb"]["SequenceNumber"] for r in given_up],
            )
            del self._pending[: len(given_up)]
            self._attempts = 0
            return True
        return first > 0

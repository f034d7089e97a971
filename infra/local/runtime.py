"""What Lambda's triggers do, for the local stack, read from the wiring.

- Functions with ``schedule_minutes`` run on a timer, with EventBridge's scheduled event.
- Functions that consume a queue get SQS batches as Lambda's event source mapping
  builds them: up to ``batch_size`` messages gathered for at most
  ``max_batching_window_s``. Only the messages not reported in ``batchItemFailures``
  are deleted, so failed ones come back after the visibility timeout and, after
  ``max_receive_count`` receives, the queue's redrive policy moves them to the
  dead-letter queue. One poller per queue invokes one batch at a time, which keeps
  within any ``max_concurrency`` (Lambda accepts no cap below 2).
- Functions that consume the table's stream get its records through the wiring's
  filter, in order, as its ``StreamSource`` says: a batch the function fails is
  bisected, a batch with reported failures is retried from the first of them, and
  records past the retry attempts or the maximum age are given up on and described
  on the on-failure queue, as Lambda describes them; then the shard moves on.

One thread per timer and poller; ``stop`` ends them all.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from infra.local.functions import ACCOUNT, REGION, Handler, invoke
from infra.wiring import FunctionSpec, QueueSpec, StreamSource
from shared.domain.clock import Clock

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodbstreams.client import DynamoDBStreamsClient
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)

# Seconds of wall time one scheduled minute lasts (EventBridge's rate(n minutes)).
MINUTE_S = 60.0
# Long polling, as Lambda's pollers do; also how long a poller takes to notice a stop.
RECEIVE_WAIT_S = 1
# The most messages one ReceiveMessage returns.
RECEIVE_MAX = 10
# Within a batching window the queue is polled without waiting, so the window closes on
# time rather than at the end of a long poll.
WINDOW_POLL_S = 0.05
STREAM_POLL_S = 0.5
# The wait before the n-th retry of a failed stream batch is n times this.
STREAM_RETRY_WAIT_S = 1.0

Condition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


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


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def _arrival(record: Mapping[str, Any]) -> str | None:
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if created is None:
        return None
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Discarded:
    """Consecutive records of a shard that a stream poller gave up on."""

    records: Sequence[dict[str, Any]]  # as the function receives them
    condition: Condition
    invocations: int  # of the batch they were last invoked in
    function_error: bool  # whether that invocation raised (or answered nonsense)
    shard_id: str
    stream_arn: str


def on_failure_record(discarded: Discarded, *, function: str, now: datetime) -> dict[str, Any]:
    """What Lambda sends a stream event source's on-failure destination: where the
    records are in the stream, not the records."""
    response: dict[str, Any] = {}
    if discarded.invocations:
        response = {"statusCode": 200, "executedVersion": "$LATEST"}
        if discarded.function_error:
            response["functionError"] = "Unhandled"
    first, last = discarded.records[0], discarded.records[-1]
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn(function),
            "condition": discarded.condition,
            "approximateInvokeCount": discarded.invocations,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "DDBStreamBatchInfo": {
            "shardId": discarded.shard_id,
            "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _arrival(first),
            "approximateArrivalOfLastRecord": _arrival(last),
            "batchSize": len(discarded.records),
            "streamArn": discarded.stream_arn,
        },
    }


@dataclass(frozen=True)
class Triggers:
    """Where the triggers read from: queue URLs by wiring name and the table's name.

    ``stream_failure_queue_urls`` (by function name) are the stream consumers'
    on-failure queues (``infra.provision.create_stream_failure_queues``).
    """

    queue_urls: Mapping[str, str]
    table_name: str
    stream_failure_queue_urls: Mapping[str, str] = field(default_factory=dict)


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
        stream_retry_wait_s: float = STREAM_RETRY_WAIT_S,
    ) -> None:
        self._specs = specs
        self._handlers = handlers
        self._clock = clock
        self._triggers = triggers
        self._sqs = sqs
        self._dynamodb = dynamodb
        self._streams = streams
        self._minute_s = minute_s
        self._stream_retry_wait_s = stream_retry_wait_s
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
            if spec.stream is not None:
                poller = self._stream_poller(spec, spec.stream, stream_from_start)
                jobs.append((f"stream-{spec.name}", poller))
        for name, target in jobs:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop every thread, waiting at most ``timeout_s`` in all: a function still
        running then is cut off with the process (its threads are daemons), as a Lambda
        invocation is at its timeout, and its work is retried as on AWS."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
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
        """Gather one batch, invoke, delete what succeeded; the number received.

        The batch goes to the function once it holds ``batch_size`` messages or
        ``max_batching_window_s`` has passed since its first message arrived. The window
        is wall time, like the visibility timeouts moto keeps on the same queues.
        """
        messages = self._receive(url, queue.batch_size, RECEIVE_WAIT_S)
        if not messages:
            return 0
        closes = time.monotonic() + queue.max_batching_window_s
        # On a stop the batch still goes out: its messages are already hidden.
        while len(messages) < queue.batch_size and not self._stop.is_set():
            left = closes - time.monotonic()
            if left <= 0:
                break
            more = self._receive(url, queue.batch_size - len(messages), 0)
            messages += more
            if not more:
                self._stop.wait(min(WINDOW_POLL_S, left))
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

    def _receive(self, url: str, wanted: int, wait_s: int) -> list[dict[str, Any]]:
        messages = self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(wanted, RECEIVE_MAX),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return [dict(m) for m in messages]

    # -- the table's stream ----------------------------------------------------------------

    def _stream_poller(
        self, spec: FunctionSpec, source: StreamSource, from_start: bool
    ) -> Callable[[], None]:
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
        failure_queue_url = self._failure_queue(spec)

        def run() -> None:
            for shard, iterator in zip(shards, iterators, strict=True):  # moto: one shard
                reader = StreamReader(
                    self._streams,
                    stream_arn,
                    shard["ShardId"],
                    iterator,
                    source,
                    partial(self.invoke_stream, spec),
                    partial(self.send_on_failure, spec, failure_queue_url),
                    self._stop,
                    retry_wait_s=self._stream_retry_wait_s,
                )
                reader.run()

        return run

    def _failure_queue(self, spec: FunctionSpec) -> str:
        url = self._triggers.stream_failure_queue_urls.get(spec.name)
        if url is None:
            raise ValueError(f"{spec.name} reads the stream but has no on-failure queue")
        return url

    def invoke_stream(self, spec: FunctionSpec, records: list[dict[str, Any]]) -> set[str] | None:
        ids = [r["dynamodb"]["SequenceNumber"] for r in records]
        try:
            return reported_failures(invoke(spec, self._handlers, {"Records": records}), ids)
        except Exception:
            log.exception("%s failed on a batch of %d stream records", spec.name, len(records))
            return None

    def send_on_failure(self, spec: FunctionSpec, url: str, discarded: Discarded) -> None:
        # Wall time, as the records' arrival times beside it (see StreamReader).
        record = on_failure_record(discarded, function=spec.name, now=datetime.now(UTC))
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
        log.error(
            "%s: gave up on %d stream records (%s), sequence numbers %s to %s",
            spec.name,
            len(discarded.records),
            discarded.condition,
            record["DDBStreamBatchInfo"]["startSequenceNumber"],
            record["DDBStreamBatchInfo"]["endSequenceNumber"],
        )


@dataclass
class _Batch:
    """Records the shard waits on, and how they have fared."""

    records: list[dict[str, Any]]
    retries: int = 0  # failed invocations counted against the retry attempts
    invocations: int = 0
    function_error: bool = False


class StreamReader:
    """Reads one shard in order, as Lambda's stream event source with ``source``.

    ``deliver`` invokes the function with a batch and returns the sequence numbers it
    reported failed, or None if the whole batch failed; ``discard`` hands records given
    up on to the on-failure destination. The shard waits on a batch until it succeeds
    or is discarded, so a failing record holds back the ones after it, never for good.
    """

    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        stream_arn: str,
        shard_id: str,
        iterator: str | None,
        source: StreamSource,
        deliver: Callable[[list[dict[str, Any]]], set[str] | None],
        discard: Callable[[Discarded], None],
        stop: threading.Event,
        *,
        retry_wait_s: float = STREAM_RETRY_WAIT_S,
    ) -> None:
        self._streams = streams
        self._stream_arn = stream_arn
        self._shard_id = shard_id
        self._iterator = iterator
        self._source = source
        self._deliver = deliver
        self._discard = discard
        self._stop = stop
        self._retry_wait_s = retry_wait_s
        self._pending: list[dict[str, Any]] = []  # read and filtered, not yet in a batch
        # The batch being retried first; bisecting puts its halves here in order.
        self._batches: deque[_Batch] = deque()

    def run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                if len(self._pending) < self._source.batch_size:
                    self._read()
                if not self._batches and not self._pending:
                    stop.wait(STREAM_POLL_S)
                    continue
                wait_s = self._step()
                if wait_s:
                    stop.wait(wait_s)
            except Exception:
                log.exception("reading the table's stream failed")
                stop.wait(STREAM_RETRY_WAIT_S)

    def _read(self) -> None:
        if self._iterator is None:
            return  # the shard was closed
        response = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = response.get("NextShardIterator")
        records = response.get("Records", [])
        stream_filter = self._source.filter
        for raw in records:
            record = stream_record(dict(raw), self._stream_arn)
            if stream_filter is None or stream_filter.matches(record):
                self._pending.append(record)

    def _step(self) -> float:
        """Age out, invoke or retry the batch the shard waits on; seconds until the next."""
        source = self._source
        if not self._batches:
            self._batches.append(_Batch(self._pending[: source.batch_size]))
            del self._pending[: source.batch_size]
        batch = self._batches[0]
        aged = self._aged(batch.records)
        if aged:
            self._give_up(batch, aged, "RecordAgeExceeded")
            return 0
        if batch.retries > source.retry_attempts:  # handing it over failed last time
            self._give_up(batch, len(batch.records), "RetryAttemptsExhausted")
            return 0

        failed = self._deliver(list(batch.records))  # the function may keep or change it
        batch.invocations += 1
        if failed is not None and not failed:
            self._batches.popleft()
            return 0
        first = self._first_failed(batch.records, failed)
        batch.function_error = first is None
        if first is None:
            if source.bisect_batch_on_error and len(batch.records) > 1:
                # The halves keep the retries spent so far, and splitting spends none.
                half = (len(batch.records) + 1) // 2
                self._batches.popleft()
                self._batches.extendleft(
                    [
                        _Batch(batch.records[half:], retries=batch.retries),
                        _Batch(batch.records[:half], retries=batch.retries),
                    ]
                )
                return 0
        else:
            del batch.records[:first]  # they succeeded: the stream moves past them
        batch.retries += 1
        if batch.retries > source.retry_attempts:
            self._give_up(batch, len(batch.records), "RetryAttemptsExhausted")
            return 0
        return self._retry_wait_s * batch.retries

    @staticmethod
    def _first_failed(records: list[dict[str, Any]], failed: set[str] | None) -> int | None:
        """Where a retry starts; None when the whole batch failed."""
        if not failed:
            return None
        at = [i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed]
        return min(at) if at else None

    def _aged(self, records: list[dict[str, Any]]) -> int:
        """How many records at the head of the batch are past the maximum age.

        Measured in wall time: moto stamps ApproximateCreationDateTime from the system
        clock, not the local stack's movable one, which after a jump of a day would age
        out every record written since.
        """
        oldest_kept = time.time() - self._source.max_record_age_s
        count = 0
        for record in records:
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if created is None or created >= oldest_kept:
                break
            count += 1
        return count

    def _give_up(self, batch: _Batch, count: int, condition: Condition) -> None:
        """Hand the first ``count`` records of the batch to the on-failure destination
        and move past them; if that fails, the batch stays for the next step."""
        self._discard(
            Discarded(
                records=batch.records[:count],
                condition=condition,
                invocations=batch.invocations,
                function_error=batch.function_error,
                shard_id=self._shard_id,
                stream_arn=self._stream_arn,
            )
        )
        del batch.records[:count]
        if not batch.records:
            self._batches.popleft()

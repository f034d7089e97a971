"""Every function as deployed, on moto in process: built by its own ``build``, with the
environment ``infra.config.function_environment`` gives it (dead-letter queues
included), on resources made by ``infra.provision.provision_all``, as the local stack
wires them. Events reach the handlers in the shapes Lambda's triggers give them.

The functions' clients come from one botocore session (``shared.adapters.clients``),
hooked before they are made (each client copies the session's hooks): ``fail`` makes
their calls raise the error a test gives.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.observability import build_logger
from infra.config import DeploymentConfig, Resources, function_environment
from infra.local.functions import ACCOUNT, REGION, Handler, build_handlers, invoke
from infra.local.runtime import reported_failures, scheduled_event, sqs_record, stream_record
from infra.provision import Provisioned, provision_all
from infra.wiring import FUNCTIONS, SCHEDULER, FunctionSpec, QueueSpec
from shared.adapters.clients import use_session
from shared.domain.clock import FixedClock
from shared.domain.tokens import UnsubscribeTokens

PREFIX = "lead-nurture-test"
API_URL = "https://api.example.co.jp/v1/"
SIGNING_SECRET = "deployed-test-signing-secret-0123456789"
# Tuesday 10:00 in Tokyo, inside the send window (the Monday before is a holiday).
START = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Batch:
    """One invocation of a queue consumer: the records it got and what it answered."""

    records: list[dict[str, Any]]
    response: dict[str, Any]
    failed: set[str]  # message ids reported failed (every one when the invocation failed)


@dataclass
class Deployed:
    clock: FixedClock
    handlers: dict[str, Handler]
    provisioned: Provisioned
    reader: boto3.Session  # the test's own clients: never failed
    functions: botocore.session.Session  # the functions' clients come from it
    _clients: dict[str, Any] = field(default_factory=dict)
    _failing: dict[str, tuple[Exception, list[str]]] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            # moto answers streams on the regional endpoint only
            config = Config(account_id_endpoint_mode="disabled")
            self._clients[service] = self.reader.client(service, config=config)  # type: ignore[call-overload]
        return self._clients[service]

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        return invoke(spec, self.handlers, event)

    def tick(self) -> Any:
        return self.invoke(SCHEDULER, scheduled_event(SCHEDULER, self.clock.now()))

    # -- queues --------------------------------------------------------------------------

    def send(self, queue: QueueSpec, *bodies: str) -> None:
        sqs = self.client("sqs")
        for body in bodies:
            sqs.send_message(QueueUrl=self.provisioned.queue_urls[queue.name], MessageBody=body)

    def deliver(self, spec: FunctionSpec) -> Batch:
        """The consumer's next batch from its queue, as the event source mapping hands it
        over; what it processed is deleted, the rest stays (invisible) for a retry."""
        queue = spec.consumes
        assert queue is not None, f"{spec.name} consumes no queue"
        url = self.provisioned.queue_urls[queue.name]
        sqs = self.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=queue.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=queue.visibility_timeout_s,
        ).get("Messages", [])
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PREFIX}-{queue.name}"
        records = [sqs_record(m, arn) for m in messages]
        ids = [r["messageId"] for r in records]
        try:
            response = self.invoke(spec, {"Records": records})
        except BatchProcessingError:
            response = {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        failed = reported_failures(response, ids)
        failed = set(ids) if failed is None else failed
        for record in records:
            if record["messageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
        return Batch(records, response, failed)

    def drain(self, spec: FunctionSpec) -> list[Batch]:
        batches = []
        while (batch := self.deliver(spec)).records:
            batches.append(batch)
        return batches

    def queued(self, url: str) -> list[dict[str, Any]]:
        """Every message waiting in a queue (left there, visible again at once)."""
        sqs = self.client("sqs")
        found: dict[str, dict[str, Any]] = {}
        while messages := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in messages:
                found.setdefault(message["MessageId"], message)
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=600
                )
        for message in found.values():
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(found.values())

    def dead_letters(self, queue: QueueSpec) -> list[dict[str, Any]]:
        return self.queued(self.provisioned.dead_letter_queue_urls[queue.name])

    def stream_failures(self, spec: FunctionSpec) -> list[dict[str, Any]]:
        return self.queued(self.provisioned.stream_failure_queue_urls[spec.name])

    # -- the table's stream ----------------------------------------------------------------

    def stream_records(self, spec: FunctionSpec) -> list[dict[str, Any]]:
        """Every record of the table's stream so far that passes the function's filter,
        as Lambda hands them over."""
        streams = self.client("dynamodbstreams")
        table = self.client("dynamodb").describe_table(TableName=self.provisioned.table_name)
        arn = table["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = [
            stream_record(r, arn) for r in streams.get_records(ShardIterator=iterator)["Records"]
        ]
        wanted = spec.stream_filter
        return [r for r in records if wanted is None or wanted.matches(r)]

    # -- faults ----------------------------------------------------------------------------

    @contextmanager
    def fail(self, call: str, error: Exception) -> Iterator[list[str]]:
        """Meanwhile, every call ``call`` (``"dynamodb.TransactWriteItems"``, or
        ``"dynamodb"`` for all of a service's) of the functions raises ``error``, before
        it is made; yields the calls failed."""
        failed: list[str] = []
        self._failing[call] = (error, failed)
        try:
            yield failed
        finally:
            del self._failing[call]

    def _before_call(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        for call in (f"{service}.{operation}", service):
            if call in self._failing:
                error, failed = self._failing[call]
                failed.append(f"{service}.{operation}")
                raise error

    def unsubscribe_token(self, lead_id: str) -> str:
        return UnsubscribeTokens(SIGNING_SECRET.encode()).sign(lead_id)


def client_error(operation: str, code: str, message: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}
    return ClientError(response, operation)


def deploy(setenv: Callable[[str, str], None]) -> Deployed:
    """Provision (inside the caller's ``mock_aws``), set each function's environment with
    ``setenv`` (``monkeypatch.setenv``) and build every function, as a cold start does."""
    reader = boto3.Session(region_name=REGION)
    config = DeploymentConfig()
    provisioned = provision_all(reader, prefix=PREFIX, from_domain=config.sender.from_domain)
    resources = Resources(
        table_name=provisioned.table_name,
        api_url=API_URL,
        configuration_set=provisioned.configuration_set,
        queue_urls=provisioned.queue_urls,
        dead_letter_queue_urls=provisioned.dead_letter_queue_urls,
        stream_failure_queue_urls=provisioned.stream_failure_queue_urls,
        topic_arns=provisioned.topic_arns,
        signing_secret=SIGNING_SECRET,
    )
    for spec in FUNCTIONS:  # one process hosts them all, as in the local stack
        for name, value in function_environment(spec, config, resources).items():
            setenv(name, value)
    deployed = Deployed(FixedClock(START), {}, provisioned, reader, botocore.session.get_session())
    deployed.functions.register("before-call", deployed._before_call)
    original = use_session(deployed.functions)  # every build() makes its clients from it
    try:
        deployed.handlers.update(build_handlers(FUNCTIONS, deployed.clock))
    finally:
        use_session(original)
    return deployed


def parsed(response: Mapping[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


@contextmanager
def function_logs() -> Iterator[io.StringIO]:
    """Meanwhile, what every function's logger writes (each log line as Lambda would get
    it), into the buffer yielded: their handlers' streams are swapped for it."""
    buffer = io.StringIO()
    handlers = []
    levels = []
    for spec in FUNCTIONS:
        logger = build_logger(spec.name)
        handler = logger.registered_handler
        assert isinstance(handler, logging.StreamHandler)
        # Swapped, not setStream(): that flushes the old stream, which may be a closed
        # capture of an earlier test in this process.
        handlers.append((handler, handler.stream))
        handler.stream = buffer
        # A logger of the name made earlier in the process (the fault suite's logs
        # errors only) keeps its level: every line is wanted here.
        levels.append((logger, logger.log_level))
        logger.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        for handler, previous in handlers:
            handler.stream = previous
        for logger, level in levels:
            logger.setLevel(level)

"""The whole system on moto, wired as the local stack wires it, with an injector on its clients.

``infra.provision.provision_all`` makes the table, queues, topics and SES setup;
``infra.config.function_environment`` gives each function its environment and
``infra.local.functions.build_handlers`` builds every function with its own ``build``, so
the handlers run with their production wiring. Their clients come from one boto3 session
that carries the ``Injector``; setup and reading use clients of another session, which
is never faulted.

The functions are built once per process (as a Lambda container builds once), and the
resources keep their names in every ``mock_aws``. A scenario's state before its first
attempt is built once per process and kept as a copy of moto's backends
(``MotoState``), which each run of the scenario starts from: a run costs its own calls.
"""

from __future__ import annotations

import copy
import json
import os
import random
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from threading import Condition
from typing import Any

import boto3
from botocore.config import Config
from moto.dynamodb.models import dynamodb_backends
from moto.ses.models import ses_backends
from moto.sesv2.models import sesv2_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from infra.config import DeploymentConfig, Resources, function_environment
from infra.local.functions import ACCOUNT, REGION, Handler, build_handlers, invoke
from infra.local.runtime import reported_failures, scheduled_event, sqs_record, stream_record
from infra.provision import Provisioned, provision_all
from infra.wiring import FUNCTIONS, HANDOFF, SCHEDULER, SEND_QUEUE, SENDER, FunctionSpec
from shared.adapters.clients import use_session
from shared.domain.clock import FixedClock
from shared.domain.tokens import UnsubscribeTokens
from tests.faults.injector import Injector

PREFIX = "lead-nurture-faults"
API_URL = "https://api.example.co.jp/v1/"
SIGNING_SECRET = "fault-suite-signing-secret-0123456789"
# Tuesday 10:00 in Tokyo, inside the send window (the Monday before is a holiday).
START = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
# Received messages stay invisible this long (SQS's maximum): every run of a scenario
# starts from the state it was prepared in, however long the suite takes.
IN_FLIGHT_S = 12 * 60 * 60


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def repeatable_ids(seed: int = 0) -> Iterator[None]:
    """``uuid.uuid4`` from a seeded generator: the same run makes the same ids (lead ids,
    so a lead's due shard, so the order of the scheduler's calls) in every worker."""
    generator = random.Random(seed)
    original = uuid.uuid4

    def seeded() -> uuid.UUID:
        return uuid.UUID(int=generator.getrandbits(128), version=4)

    uuid.uuid4 = seeded
    try:
        yield
    finally:
        uuid.uuid4 = original


@dataclass
class System:
    """Built once per process; provisioned (or restored) inside each ``mock_aws``."""

    injector: Injector
    clock: FixedClock
    handlers: dict[str, Handler]
    resources: Provisioned
    reader: boto3.Session  # never faulted: setup and reading what happened
    functions: boto3.Session  # the functions' clients come from it (faulted)
    config: DeploymentConfig
    _clients: dict[str, Any] = field(default_factory=dict)
    _function_clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """A client of the harness (never faulted)."""
        if service not in self._clients:
            # moto answers streams on the regional endpoint only
            config = Config(account_id_endpoint_mode="disabled")
            self._clients[service] = self.reader.client(service, config=config)  # type: ignore[call-overload]
        return self._clients[service]

    def function_client(self, service: str) -> Any:
        """A client as the functions make theirs (faulted when the injector is armed)."""
        if service not in self._function_clients:
            self._function_clients[service] = self.functions.client(service)  # type: ignore[call-overload]
        return self._function_clients[service]

    def provision(self) -> None:
        resources = provision_all(
            self.reader, prefix=PREFIX, from_domain=self.config.sender.from_domain
        )
        assert resources == self.resources, "provisioning names changed between runs"
        self.clock.set(START)

    # -- invoking the functions as Lambda does -------------------------------------------

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        return invoke(spec, self.handlers, event)

    def tick(self) -> Any:
        return self.invoke(SCHEDULER, scheduled_event(SCHEDULER, self.clock.now()))

    def receive(self, queue: str) -> list[dict[str, Any]]:
        """Up to ten messages, kept invisible as the function's poller keeps them."""
        messages: list[dict[str, Any]] = (
            self.client("sqs")
            .receive_message(
                QueueUrl=self.resources.queue_urls[queue],
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=IN_FLIGHT_S,
            )
            .get("Messages", [])
        )
        return messages

    def sqs_records(self, queue: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PREFIX}-{queue}"
        return [sqs_record(m, arn) for m in messages]

    def delete(self, queue: str, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.client("sqs").delete_message(
                QueueUrl=self.resources.queue_urls[queue], ReceiptHandle=record["receiptHandle"]
            )

    def drain_sends(self, rounds: int = 5) -> None:
        """The sender works off the send queue, as its poller would."""
        for _ in range(rounds):
            records = self.sqs_records(SEND_QUEUE.name, self.receive(SEND_QUEUE.name))
            if not records:
                return
            result = self.invoke(SENDER, {"Records": records})
            failed = reported_failures(result, [r["messageId"] for r in records])
            if failed is not None:
                self.delete(SEND_QUEUE.name, [r for r in records if r["messageId"] not in failed])

    def handoff_records(self) -> list[dict[str, Any]]:
        """The table stream's records that pass the hand-off function's filter, as Lambda
        hands them over."""
        streams = self.client("dynamodbstreams")
        table = self.client("dynamodb").describe_table(TableName=self.resources.table_name)
        arn = table["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        response = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = [stream_record(r, arn) for r in response["Records"]]
        wanted = HANDOFF.stream_filter
        assert wanted is not None
        return [r for r in records if wanted.matches(r)]

    def table_items(self) -> list[dict[str, Any]]:
        """Every item of the table, as a Scan returns them (read from moto's table: a
        Scan's response costs moto more than most runs of a path)."""
        table = dynamodb_backends[ACCOUNT][REGION].tables[self.resources.table_name]
        return [item.to_json()["Attributes"] for item in table.all_items()]

    def sales_inbox(self) -> list[dict[str, Any]]:
        """What sales received (SNS envelopes from the inbox queue), taken off the queue."""
        sqs, url = self.client("sqs"), self.resources.sales_inbox_url
        envelopes: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return envelopes

    def unsubscribe_token(self, lead_id: str) -> str:
        return UnsubscribeTokens(SIGNING_SECRET.encode()).sign(lead_id)

    def cancel_token(self, lead_id: str, event_id: str) -> str:
        return UnsubscribeTokens(SIGNING_SECRET.encode()).cancellations().sign(lead_id, event_id)


@cache
def _system() -> System:
    """Provision (in the caller's ``mock_aws``) and build every function once."""
    reader = boto3.Session(region_name=REGION)
    config = DeploymentConfig()
    resources = provision_all(reader, prefix=PREFIX, from_domain=config.sender.from_domain)
    deployed = Resources(
        table_name=resources.table_name,
        api_url=API_URL,
        configuration_set=resources.configuration_set,
        queue_urls=resources.queue_urls,
        topic_arns=resources.topic_arns,
        signing_secret=SIGNING_SECRET,
    )
    merged: dict[str, str] = {}
    for spec in FUNCTIONS:  # one process hosts them all, as in the local stack
        merged.update(function_environment(spec, config, deployed))
    # Errors only: a faulted run logs its exception, which pytest shows on failure.
    merged["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    injector = Injector()
    functions = boto3.Session(region_name=REGION)
    injector.install(functions._session)  # botocore's session takes the hooks
    clock = FixedClock(START)
    # Each build() makes its clients from this session (shared/adapters/clients.py).
    original = use_session(functions._session)
    try:
        with environment(merged):
            handlers = build_handlers(FUNCTIONS, clock)
    finally:
        use_session(original)
    return System(injector, clock, handlers, resources, reader, functions, config)


def provisioned_system() -> System:
    """The process's system, provisioned afresh in the current ``mock_aws``, at START."""
    built = _system.cache_info().currsize > 0
    system = _system()
    if built:
        system.provision()
    system.clock.set(START)
    return system


# The moto backends the system uses (sesv2 keeps its emails in ses's backend).
BACKENDS: dict[str, Any] = {
    "dynamodb": dynamodb_backends,
    "sqs": sqs_backends,
    "sns": sns_backends,
    "ses": ses_backends,
    "sesv2": sesv2_backends,
}
Backends = dict[str, dict[str, dict[str, Any]]]  # service -> account -> region -> backend


@dataclass(frozen=True)
class MotoState:
    """A copy of moto's backends of ``BACKENDS``, to start runs from.

    Relies on moto's ``BackendDict`` (account -> region -> backend) and on its SQS queues'
    ``_messages_lock`` (a ``threading.Condition``, which cannot be copied: each copy gets
    a new one). A moto upgrade that changes either shows here first.
    """

    backends: Backends

    @classmethod
    def save(cls) -> MotoState:
        live = {
            name: {account: dict(regions) for account, regions in backends.items()}
            for name, backends in BACKENDS.items()
        }
        return cls(_copied(live))

    def restore(self) -> None:
        """Into the current ``mock_aws``. Backends that refer to each other (sesv2 to
        ses) are copied together, so the copies still do."""
        for name, accounts in _copied(self.backends).items():
            for account, regions in accounts.items():
                for region, backend in regions.items():
                    BACKENDS[name][account][region] = backend


def _copied(backends: Backends) -> Backends:
    memo: dict[int, Any] = {
        id(queue._messages_lock): Condition()
        for regions in backends["sqs"].values()
        for backend in regions.values()
        for queue in backend.queues.values()
    }
    return copy.deepcopy(backends, memo)


def restored_system(state: MotoState, at: datetime) -> System:
    """The process's system on a saved state (in the current ``mock_aws``), at ``at``."""
    system = _system()
    state.restore()
    system.clock.set(at)
    return system

"""A nurture world on moto: table, send queue, SES, and the real handlers wired together.

Time only moves when a test moves the clock; the scheduler and the sender run through
their Lambda handlers with real-shaped events (an EventBridge scheduled event, SQS
batches), so what is tested is what runs on AWS.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.observability import build_logger
from functions.scheduler.handler import lambda_handler as scheduler_handler
from functions.sender.handler import SenderApp
from functions.sender.handler import lambda_handler as sender_handler
from infra.local.runtime import sqs_record
from shared.adapters.counters import CachedVariantResults, DynamoCounterReader
from shared.adapters.due import DynamoDueIndex
from shared.adapters.leads import DynamoLeadRepository
from shared.adapters.ledgers import DynamoSendLedger
from shared.adapters.ses import SesMailer
from shared.adapters.sqs import SqsJobQueue
from shared.domain.clock import FixedClock
from shared.domain.customers import load_customers
from shared.domain.email import EmailRenderer, SenderProfile
from shared.domain.events import EventCatalog
from shared.domain.funnel import business_day
from shared.domain.programs import ProgramCatalog, load_programs
from shared.domain.tokens import UnsubscribeTokens
from shared.services.due_scheduling import DueScheduler
from shared.services.sending import DeliverySettings, NurtureSender

CONFIGURATION_SET = "lead-nurture"
FROM = "株式会社サンプル <news@example.co.jp>"
UNSUBSCRIBE_URL = "https://api.example.co.jp/v1/unsubscribe"
SECRET = b"test-signing-secret-0123456789abcdef"
SENDER = SenderProfile(
    company_name="株式会社サンプル",
    from_address=FROM,
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contact_email="marketing@example.co.jp",
    site_url="https://www.example.co.jp",
    privacy_url="https://www.example.co.jp/privacy",
)
FIXTURES = Path(__file__).parent / "fixtures"
DRAIN_VISIBILITY_TIMEOUT = 600  # seconds of real time


@dataclass
class SentEmail:
    """One SES SendEmail call as the service accepted it."""

    params: dict[str, Any]
    message_id: str | None = None

    @property
    def message(self) -> EmailMessage:
        raw = self.params["Content"]["Raw"]["Data"]
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def tags(self) -> dict[str, str]:
        return {t["Name"]: t["Value"] for t in self.params.get("EmailTags", [])}

    @property
    def to(self) -> str:
        return str(self.params["Destination"]["ToAddresses"][0])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None
        return str(body.get_content())


@dataclass
class SesRecorder:
    """Records every SendEmail call made through a client, and can inject SES errors.

    Safe for concurrent sends: a call's parameters travel in its own request context.
    """

    sent: list[SentEmail] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # error codes for the next calls
    # Run once each just before the next SendEmail goes out (e.g. a concurrent duplicate job)
    during_send: list[Callable[[], object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.sesv2.SendEmail", self._params)
        client.meta.events.register("before-call.sesv2.SendEmail", self._before)
        client.meta.events.register("after-call.sesv2.SendEmail", self._after)

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["ses_recorder_params"] = params

    def _before(self, **_: Any) -> Any:
        while hook := self._next(self.during_send):
            hook()
        code = self._next(self.failures)
        if code is not None:
            status = STATUS.get(code, 400)
            error = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {}}
            return (SimpleNamespace(status_code=status, headers={}, content=b""), error)
        return None

    def _next(self, pending: list[Any]) -> Any:
        with self._lock:
            return pending.pop(0) if pending else None

    def _after(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        # Only what the service accepted counts as sent (an injected or a real error does not).
        if http_response.status_code < 300:
            params = context["ses_recorder_params"]
            self.sent.append(SentEmail(params, parsed.get("MessageId")))


# The HTTP status SES answers with per error code (400 for the others).
STATUS = {"TooManyRequestsException": 429, "InternalFailure": 500, "ServiceUnavailable": 503}


@dataclass
class NurtureWorld:
    clock: FixedClock
    dynamodb: Any
    sqs: Any
    ses: SesRecorder
    queue_url: str
    repository: DynamoLeadRepository
    ledger: DynamoSendLedger
    scheduler: DueScheduler
    sender: NurtureSender
    tokens: UnsubscribeTokens
    programs: ProgramCatalog
    context: Any

    def tick(self) -> dict[str, int]:
        """One scheduled invocation of the scheduler, as EventBridge sends it."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "ap-northeast-1",
            "resources": ["arn:aws:events:ap-northeast-1:123456789012:rule/scheduler"],
            "detail": {},
        }
        return scheduler_handler(event, self.context, self.scheduler)

    def receive(self, max_messages: int = 10, visibility_timeout: int = 0) -> list[dict[str, Any]]:
        """Receive without deleting; by default the messages stay visible (to redeliver them)."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            VisibilityTimeout=visibility_timeout,
        )
        return list(response.get("Messages", []))

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        arn = "arn:aws:sqs:ap-northeast-1:123456789012:send"
        return {"Records": [sqs_record(m, arn) for m in messages]}

    def deliver(self, messages: list[dict[str, Any]], concurrency: int = 1) -> dict[str, Any]:
        """One SQS batch through the sender handler, ``concurrency`` jobs at once;
        successful messages are deleted."""
        app = SenderApp(self.sender, build_logger("sender"), concurrency=concurrency)
        try:
            response = sender_handler(self.sqs_event(messages), self.context, app)
        except BatchProcessingError:
            # Every record failed: Powertools fails the invocation and SQS keeps the whole
            # batch, which is what reporting every message as failed does.
            ids = [m["MessageId"] for m in messages]
            response = {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
            response["invocation_failed"] = True
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return response

    def drain(self) -> int:
        """Deliver every queued job; return how many messages were handled.

        As on SQS, a message the sender reports as failed stays in the queue, invisible
        until its visibility timeout (real time, longer than any test) runs out, so a
        poison message cannot keep the drain busy forever.
        """
        handled = 0
        while messages := self.receive(visibility_timeout=DRAIN_VISIBILITY_TIMEOUT):
            self.deliver(messages)
            handled += len(messages)
        return handled

    def run(self) -> int:
        """A tick followed by the sender working off the queue; returns emails sent."""
        before = len(self.ses.sent)
        self.tick()
        self.drain()
        return len(self.ses.sent) - before

    def advance(self, by: timedelta) -> None:
        self.clock.advance(by)


def build_world(
    clock: FixedClock,
    dynamodb: Any,
    table: str,
    context: Any,
    programs: ProgramCatalog | None = None,
    frequency_cap: int = 3,
    make_ses: Callable[[], Any] | None = None,
    events: EventCatalog | None = None,
) -> NurtureWorld:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="send")["QueueUrl"]
    ses_client = make_ses() if make_ses else boto3.client("sesv2")
    ses_client.create_email_identity(EmailIdentity="example.co.jp")
    ses_client.create_configuration_set(ConfigurationSetName=CONFIGURATION_SET)
    recorder = SesRecorder()
    recorder.attach(ses_client)
    repository = DynamoLeadRepository(dynamodb, table)
    ledger = DynamoSendLedger(dynamodb, table)
    programs = programs or load_programs()
    tokens = UnsubscribeTokens(SECRET)
    sender = NurtureSender(
        repository,
        ledger,
        SesMailer(ses_client, CONFIGURATION_SET),
        programs,
        EmailRenderer(SENDER, events=events),
        tokens,
        clock,
        DeliverySettings(
            from_address=FROM, unsubscribe_url=UNSUBSCRIBE_URL, frequency_cap=frequency_cap
        ),
        # No caching: a test sees each send's count at once.
        CachedVariantResults(
            DynamoCounterReader(dynamodb, table), lambda: business_day(clock.now()), ttl=0
        ),
        events,
        load_customers(),
    )
    scheduler = DueScheduler(DynamoDueIndex(dynamodb, table), SqsJobQueue(sqs, queue_url), clock)
    return NurtureWorld(
        clock=clock,
        dynamodb=dynamodb,
        sqs=sqs,
        ses=recorder,
        queue_url=queue_url,
        repository=repository,
        ledger=ledger,
        scheduler=scheduler,
        sender=sender,
        tokens=tokens,
        programs=programs,
        context=context,
    )


def job_bodies(world: NurtureWorld) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in world.receive()]

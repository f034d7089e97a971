"""Send jobs from SQS: each becomes at most one email; failures are reported per message.

A batch's jobs run on up to ``send_concurrency`` threads at once, and their SES sends
keep to ``send_rate`` per second between them (``SendPace``). Everything the jobs share
is thread-safe: botocore clients, the renderer (Jinja's template cache is locked; the
subject cache at worst compiles a subject twice), the clock, the tokens and the
programs (read-only). Two jobs for the same step in one batch cannot both send: the
step's claim (a conditional Put) lets one through; the other finds the step being sent
and fails, to be retried by SQS, or finds it sent, or reads the lead moved on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

# Before pydantic: imported after it, Powertools' batch utility also imports its pydantic
# event models (for BatchProcessor(model=...), which this function does not use).
import aws_lambda_powertools.utilities.batch  # noqa: F401
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, field_validator

from functions.observability import build_logger, emit_counts, logged
from shared.adapters.batch import DeadLetters, process_batch
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.customers import load_customers
from shared.domain.email import EmailRenderer, SenderProfile
from shared.domain.events import load_events
from shared.domain.funnel import business_day
from shared.domain.jobs import SendJob
from shared.domain.metrics import EMAILS_SENT, SENDS_REJECTED, SENDS_THROTTLED, SENDS_UNCERTAIN
from shared.domain.programs import load_programs
from shared.domain.tokens import UnsubscribeTokens
from shared.services.sending import DeliverySettings, NurtureSender, Outcome
from shared.settings import EnvSettings

# The metric each outcome of a send job counts in; other outcomes are not counted.
METRICS = {
    Outcome.SENT: EMAILS_SENT,
    Outcome.THROTTLED: SENDS_THROTTLED,
    Outcome.REJECTED: SENDS_REJECTED,
    Outcome.UNCERTAIN: SENDS_UNCERTAIN,
}


class SenderSettings(EnvSettings):
    table_name: str
    configuration_set: str
    from_address: str
    sender_company_name: str
    sender_product_name: str = Field(min_length=1)
    sender_postal_address: str
    sender_contact_email: str
    site_url: str
    privacy_url: str = ""
    unsubscribe_url: str
    frequency_cap: int = Field(default=3, ge=1)
    dormant_after_days: int = Field(default=90, ge=1)
    # Jobs of a batch handled at once (a batch has at most 10).
    send_concurrency: int = Field(default=4, ge=1, le=10)
    # SES sends per second of one function instance, 0 for no limit. The default keeps
    # two instances (the send queue's maximum concurrency) within 14 per second, the
    # sending rate SES starts a production account with; raise it with the account's.
    send_rate: float = Field(default=7.0, ge=0)
    # Where a message that is not a send job goes at once (the queue's own DLQ).
    send_dead_letter_queue_url: str | None = None

    @field_validator("send_rate")
    @classmethod
    def _batch_in_time(cls, rate: float) -> float:
        # A job waits for its turn holding its step's claim: a batch of ten must go out
        # well inside the function's timeout (at 1 per second, ten seconds).
        if 0 < rate < 1:
            raise ValueError("send_rate must be 0 (no limit) or at least 1 per second")
        return rate

    def profile(self) -> SenderProfile:
        return SenderProfile(
            company_name=self.sender_company_name,
            product_name=self.sender_product_name,
            from_address=self.from_address,
            postal_address=self.sender_postal_address,
            contact_email=self.sender_contact_email,
            site_url=self.site_url,
            privacy_url=self.privacy_url,
        )


@dataclass(frozen=True)
class SenderApp:
    sender: NurtureSender
    logger: Logger
    # Jobs of a batch handled at once (``SenderSettings.send_concurrency``).
    concurrency: int = 1
    dead_letters: DeadLetters | None = None


def build(clock: Clock | None = None) -> SenderApp:
    from botocore.config import Config

    from shared.adapters.counters import CachedVariantResults, DynamoCounterReader
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.ledgers import DynamoSendLedger
    from shared.adapters.secrets import signing_secret
    from shared.adapters.ses import PacedMailer, SendPace, SesMailer
    from shared.adapters.sqs import SqsDeadLetters

    settings = SenderSettings.from_env()
    # A connection per concurrent job (the default pool has 10).
    pool = max(10, settings.send_concurrency)
    aws = AwsClients()
    dynamodb = aws.client("dynamodb", config=Config(max_pool_connections=pool))
    # No retries of SES's own: a SendEmail retried after a lost answer could mail twice.
    ses = aws.client(
        "sesv2",
        config=Config(max_pool_connections=pool, retries={"total_max_attempts": 1}),
    )
    clock = clock or SystemClock()
    # A bandit step reads its variants' results from the report counters, cached.
    results = CachedVariantResults(
        DynamoCounterReader(dynamodb, settings.table_name), lambda: business_day(clock.now())
    )
    events = load_events()
    sender = NurtureSender(
        DynamoLeadRepository(dynamodb, settings.table_name),
        DynamoSendLedger(dynamodb, settings.table_name),
        PacedMailer(SesMailer(ses, settings.configuration_set), SendPace(settings.send_rate)),
        load_programs(),
        EmailRenderer(settings.profile(), events=events),
        UnsubscribeTokens(signing_secret(clients=aws)),
        clock,
        DeliverySettings(
            from_address=settings.from_address,
            unsubscribe_url=settings.unsubscribe_url,
            frequency_cap=settings.frequency_cap,
            throttle_backoff=timedelta(minutes=5),
            dormant_after=timedelta(days=settings.dormant_after_days),
        ),
        results,
        events,
        load_customers(),
    )
    url = settings.send_dead_letter_queue_url
    return SenderApp(
        sender,
        build_logger("sender"),
        concurrency=settings.send_concurrency,
        dead_letters=SqsDeadLetters(lambda: aws.client("sqs"), url) if url else None,
    )


@cache
def _default() -> SenderApp:
    return build()


@logged("sender")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: SenderApp | None = None
) -> dict[str, Any]:
    app = app or _default()

    outcomes: list[Outcome] = []  # appended from the batch's worker threads

    def handle(record: SQSRecord) -> str:
        job = SendJob.from_json(record.body)
        outcome = app.sender.process(job)
        app.logger.info(
            "send job", extra={"lead_id": job.lead_id, "step_id": job.step_id, "outcome": outcome}
        )
        outcomes.append(outcome)
        return outcome.value

    try:
        return process_batch(
            event,
            context,
            handle,
            logger=app.logger,
            workers=app.concurrency,
            dead_letters=app.dead_letters,
        )
    finally:
        counted = Counter(METRICS[o] for o in outcomes if o in METRICS)
        emit_counts("sender", counted)

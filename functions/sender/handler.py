"""Send jobs from SQS: each becomes at most one email; failures are reported per message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from shared.adapters.batch import process_batch
from shared.clock import Clock, SystemClock
from shared.delivery import DeliverySettings, NurtureSender, Outcome, SendJob
from shared.email import EmailRenderer, SenderProfile
from shared.metrics import NAMESPACE, SENDS_UNCERTAIN
from shared.programs import load_programs
from shared.settings import EnvSettings
from shared.tokens import UnsubscribeTokens


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
    metrics: Metrics = field(default_factory=lambda: Metrics(namespace=NAMESPACE, service="sender"))


def build(clock: Clock | None = None) -> SenderApp:
    import boto3
    from botocore.config import Config

    from shared.adapters.dynamodb import (
        DynamoLeadRepository,
        DynamoSendLedger,
    )
    from shared.adapters.secrets import signing_secret
    from shared.adapters.ses import SesMailer

    settings = SenderSettings.from_env()
    dynamodb = boto3.client("dynamodb")
    sender = NurtureSender(
        DynamoLeadRepository(dynamodb, settings.table_name),
        DynamoSendLedger(dynamodb, settings.table_name),
        # No retries inside the client: a SendEmail retried after a lost answer could mail
        # the lead twice (shared.adapters.ses says how each answer is handled).
        SesMailer(
            boto3.client("sesv2", config=Config(retries={"total_max_attempts": 1})),
            settings.configuration_set,
        ),
        load_programs(),
        EmailRenderer(settings.profile()),
        UnsubscribeTokens(signing_secret()),
        clock or SystemClock(),
        DeliverySettings(
            from_address=settings.from_address,
            unsubscribe_url=settings.unsubscribe_url,
            frequency_cap=settings.frequency_cap,
            throttle_backoff=timedelta(minutes=5),
            dormant_after=timedelta(days=settings.dormant_after_days),
        ),
    )
    return SenderApp(sender, Logger(service="sender"))


@cache
def _default() -> SenderApp:
    return build()


def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: SenderApp | None = None
) -> dict[str, Any]:
    app = app or _default()

    uncertain = 0

    def handle(record: SQSRecord) -> str:
        nonlocal uncertain
        job = SendJob.from_json(record.body)
        outcome = app.sender.process(job)
        app.logger.info(
            "send job", extra={"lead_id": job.lead_id, "step_id": job.step_id, "outcome": outcome}
        )
        if outcome is Outcome.UNCERTAIN:
            uncertain += 1
        return outcome.value

    try:
        return process_batch(event, context, handle, logger=app.logger)
    finally:
        if uncertain:
            app.metrics.add_metric(name=SENDS_UNCERTAIN, unit=MetricUnit.Count, value=uncertain)
            app.metrics.flush_metrics()

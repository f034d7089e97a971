"""Table stream → sales topic: each lead that just became an MQL is published once.

The stage change is written to DynamoDB first; the stream (retried, bisected on error,
with an on-failure destination) makes the hand-off survive a failed publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.metrics import emit_counts
from functions.observability import build_logger, logged
from shared.adapters.batch import DeadLetters, process_batch
from shared.adapters.clients import AwsClients
from shared.clock import Clock, SystemClock
from shared.handoff import SalesMessage, build_sales_message, qualified_score
from shared.leads import Lead, Stage
from shared.malformed import MalformedRecord
from shared.metrics import HANDOFFS_PUBLISHED
from shared.repository import LeadRepository
from shared.scoring import ScoringRules, load_scoring
from shared.settings import EnvSettings


class HandoffSettings(EnvSettings):
    table_name: str
    sales_leads_topic_arn: str
    # Where a record that can never be handed off is described at once (the stream's
    # on-failure queue).
    handoff_stream_failure_queue_url: str | None = None


class Publisher(Protocol):
    def publish(self, message: SalesMessage) -> str: ...


class HandoffLedger(Protocol):
    def published(self, lead_id: str, handoff_id: str) -> bool: ...

    def mark_published(self, lead_id: str, handoff_id: str, message_id: str) -> None: ...


@dataclass(frozen=True)
class HandoffApp:
    leads: LeadRepository
    ledger: HandoffLedger
    publisher: Publisher
    rules: ScoringRules
    clock: Clock
    logger: Logger
    dead_letters: DeadLetters | None = None

    def hand_off(self, image: dict[str, Any] | None, old: dict[str, Any] | None) -> str:
        if not image or image.get("sk") != "PROFILE" or image.get("stage") != Stage.MQL:
            return "skipped"
        if old is not None and old.get("stage") == Stage.MQL:
            return "skipped"  # already an MQL: another change to the same lead
        lead_id = image.get("lead_id")
        if not isinstance(lead_id, str) or not lead_id:
            raise MalformedRecord("lead profile without a lead_id")
        lead = self.leads.get(lead_id)
        if lead is None or lead.stage is not Stage.MQL:
            return "skipped"  # erased, or moved on since
        message = self._message(lead)
        if self.ledger.published(lead.lead_id, message.handoff_id):
            return "duplicate"
        message_id = self.publisher.publish(message)
        self.ledger.mark_published(lead.lead_id, message.handoff_id, message_id)
        self.logger.info("lead handed off", extra={"lead_id": lead.lead_id})
        return "published"

    def _message(self, lead: Lead) -> SalesMessage:
        score = qualified_score(lead, self.rules, self.clock.now())
        temperature = self.rules.temperature(score.score, score.grade)
        return build_sales_message(lead, score, temperature, self.leads.timeline(lead.lead_id))


def build(clock: Clock | None = None) -> HandoffApp:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.ledgers import DynamoHandoffLedger
    from shared.adapters.sns import SnsSalesPublisher
    from shared.adapters.sqs import SqsDeadLetters

    settings = HandoffSettings.from_env()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
    failures = settings.handoff_stream_failure_queue_url
    return HandoffApp(
        DynamoLeadRepository(dynamodb, settings.table_name),
        DynamoHandoffLedger(dynamodb, settings.table_name),
        SnsSalesPublisher(aws.client("sns"), settings.sales_leads_topic_arn),
        load_scoring(),
        clock or SystemClock(),
        build_logger("handoff"),
        SqsDeadLetters(lambda: aws.client("sqs"), failures) if failures else None,
    )


@cache
def _default() -> HandoffApp:
    return build()


@logged("handoff")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: HandoffApp | None = None
) -> dict[str, Any]:
    app = app or _default()
    published = 0

    def handle(record: DynamoDBRecord) -> str:
        nonlocal published
        stream = record.dynamodb
        if stream is None:
            return "skipped"
        outcome = app.hand_off(stream.new_image, stream.old_image)
        published += outcome == "published"
        return outcome

    try:
        return process_batch(
            event,
            context,
            handle,
            EventType.DynamoDBStreams,
            logger=app.logger,
            dead_letters=app.dead_letters,
        )
    finally:
        emit_counts("handoff", {HANDOFFS_PUBLISHED: published})

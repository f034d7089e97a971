"""Table stream → sales topic: each lead that just became an MQL is published once.

The stage change is written to DynamoDB first; the stream (retried, bisected on error,
with an on-failure destination) makes the hand-off survive a failed publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.observability import build_logger, emit_counts, logged
from shared.adapters.batch import DeadLetters, process_batch
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.metrics import HANDOFFS_PUBLISHED
from shared.domain.scoring import load_scoring
from shared.services.handoff import SalesHandoff
from shared.settings import EnvSettings


class HandoffSettings(EnvSettings):
    table_name: str
    sales_leads_topic_arn: str
    # Where a record that can never be handed off is described at once (the stream's
    # on-failure queue).
    handoff_stream_failure_queue_url: str | None = None


@dataclass(frozen=True)
class HandoffApp:
    handoff: SalesHandoff
    logger: Logger
    dead_letters: DeadLetters | None = None


def build(clock: Clock | None = None) -> HandoffApp:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.ledgers import DynamoHandoffLedger
    from shared.adapters.sns import SnsSalesPublisher
    from shared.adapters.sqs import SqsDeadLetters

    settings = HandoffSettings.from_env()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
    failures = settings.handoff_stream_failure_queue_url
    handoff = SalesHandoff(
        DynamoLeadRepository(dynamodb, settings.table_name),
        DynamoHandoffLedger(dynamodb, settings.table_name),
        SnsSalesPublisher(aws.client("sns"), settings.sales_leads_topic_arn),
        load_scoring(),
        clock or SystemClock(),
    )
    return HandoffApp(
        handoff,
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
        outcome = app.handoff.hand_off(stream.new_image, stream.old_image)
        if outcome == "published":
            published += 1
            app.logger.info("lead handed off", extra={"lead_id": stream.new_image.get("lead_id")})
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

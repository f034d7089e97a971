"""SES engagement events (SNS → SQS): record, score, suppress; failures per message."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

# Before pydantic: imported after it, Powertools' batch utility also imports its pydantic
# event models (for BatchProcessor(model=...), which this function does not use).
import aws_lambda_powertools.utilities.batch  # noqa: F401
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from shared.adapters.batch import process_batch
from shared.adapters.clients import AwsClients
from shared.clock import Clock, SystemClock
from shared.engagement import EngagementOutcome, EngagementRecorder
from shared.machine_engagement import load_engagement_rules
from shared.programs import load_programs
from shared.qualification import ScoreKeeper
from shared.scoring import load_scoring
from shared.ses_events import EmailEvent, NotAnEmailEvent, parse_event
from shared.settings import EnvSettings


class EngagementSettings(EnvSettings):
    table_name: str
    transient_bounce_limit: int = Field(default=3, ge=1)


@dataclass(frozen=True)
class EngagementApp:
    recorder: EngagementRecorder
    logger: Logger


def build(clock: Clock | None = None) -> EngagementApp:
    from shared.adapters.dynamodb import DynamoLeadRepository

    settings = EngagementSettings.from_env()
    dynamodb = AwsClients().client("dynamodb")
    clock = clock or SystemClock()
    leads = DynamoLeadRepository(dynamodb, settings.table_name)
    recorder = EngagementRecorder(
        leads,
        ScoreKeeper(load_scoring()),
        load_programs(),
        clock,
        transient_bounce_limit=settings.transient_bounce_limit,
        machines=load_engagement_rules(),
    )
    return EngagementApp(recorder, Logger(service="engagement"))


@cache
def _default() -> EngagementApp:
    return build()


def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: EngagementApp | None = None
) -> dict[str, Any]:
    app = app or _default()
    batch = _readable(event)

    def handle(record: SQSRecord) -> str:
        # An unreadable body raises: it is retried, then lands in the DLQ (alarmed).
        email_event = parse_event(record.body)
        outcome = app.recorder.record(email_event, peers=batch)
        if outcome is EngagementOutcome.UNKNOWN_LEAD:
            # No lead to update (erased, or mail not sent by us): drop, never retry.
            app.logger.warning(
                "event for an unknown lead dropped",
                extra={"event_type": email_event.type.value, "message_id": email_event.message_id},
            )
        return outcome.value

    return process_batch(event, context, handle, logger=app.logger)


def _readable(event: dict[str, Any]) -> list[EmailEvent]:
    """The batch's events, so that a scanner's clicks on one email, which arrive together,
    are each known for a machine's from the first (an unreadable one fails on its own)."""
    events = []
    for record in event.get("Records", []):
        try:
            events.append(parse_event(str(record.get("body", ""))))
        except NotAnEmailEvent:
            continue
    return events

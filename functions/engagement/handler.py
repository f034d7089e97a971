"""SES engagement events (SNS → SQS): record, score, suppress; failures per message."""

from __future__ import annotations

from collections import Counter
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

from functions.observability import build_logger, emit_counts, logged
from shared.adapters.batch import DeadLetters, process_batch
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.machine_engagement import load_engagement_rules
from shared.domain.metrics import (
    COMPLAINTS,
    EMAILS_DELIVERED,
    HARD_BOUNCES,
    HUMAN_CLICKS,
    HUMAN_OPENS,
    LEADS_QUALIFIED,
    MACHINE_CLICKS,
    MACHINE_OPENS,
    OPT_OUTS,
    SOFT_BOUNCES,
)
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from shared.domain.ses_events import (
    EmailEvent,
    EmailEventType,
    NotAnEmailEvent,
    SetupNotice,
    parse_event,
)
from shared.services.engagement import EngagementOutcome, EngagementRecorder, Recorded
from shared.services.qualification import ScoreKeeper
from shared.settings import EnvSettings

# Opens and clicks by who made them: (a person's, a machine's).
ENGAGEMENT_METRICS = {
    EmailEventType.OPEN: (HUMAN_OPENS, MACHINE_OPENS),
    EmailEventType.CLICK: (HUMAN_CLICKS, MACHINE_CLICKS),
}


class EngagementSettings(EnvSettings):
    table_name: str
    transient_bounce_limit: int = Field(default=3, ge=1)
    # Where an event that can never be recorded goes at once (the queue's own DLQ).
    engagement_dead_letter_queue_url: str | None = None


@dataclass(frozen=True)
class EngagementApp:
    recorder: EngagementRecorder
    logger: Logger
    dead_letters: DeadLetters | None = None


def build(clock: Clock | None = None) -> EngagementApp:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.sqs import SqsDeadLetters

    settings = EngagementSettings.from_env()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
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
    url = settings.engagement_dead_letter_queue_url
    dead_letters = SqsDeadLetters(lambda: aws.client("sqs"), url) if url else None
    return EngagementApp(recorder, build_logger("engagement"), dead_letters)


@cache
def _default() -> EngagementApp:
    return build()


@logged("engagement")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: EngagementApp | None = None
) -> dict[str, Any]:
    app = app or _default()
    batch = _readable(event)
    counted: Counter[str] = Counter()

    def handle(record: SQSRecord) -> str:
        # An unreadable body raises: it goes to the dead-letter queue (alarmed).
        try:
            email_event = parse_event(record.body)
        except SetupNotice as notice:
            return _acknowledged(notice, app.logger)
        recorded = app.recorder.record(email_event, peers=batch)
        if recorded.outcome is EngagementOutcome.UNKNOWN_LEAD:
            # No lead to update (erased, or mail not sent by us): drop, never retry.
            app.logger.warning(
                "event for an unknown lead dropped",
                extra={"event_type": email_event.type.value, "message_id": email_event.message_id},
            )
        counted.update(_metrics(email_event, recorded))
        return recorded.outcome.value

    try:
        return process_batch(
            event, context, handle, logger=app.logger, dead_letters=app.dead_letters
        )
    finally:
        emit_counts("engagement", counted)


def _acknowledged(notice: SetupNotice, logger: Logger) -> str:
    """A set-up message is about no email: nothing to record, nothing to retry. Only a
    subscription that waits for its confirmation asks something of the operator."""
    if notice.kind == "SubscriptionConfirmation":
        logger.warning(
            "a subscription of the queue waits for confirmation: confirm it on the topic",
            extra={"notice": notice.kind, "topic_arn": notice.topic},
        )
    else:
        logger.info("set-up notice acknowledged", extra={"notice": notice.kind})
    return "notice"


def _metrics(event: EmailEvent, recorded: Recorded) -> list[str]:
    """The metrics an event counts in: none unless it was recorded now (a redelivery
    counts nothing)."""
    if recorded.outcome is not EngagementOutcome.RECORDED:
        return []
    names = []
    if recorded.qualified:
        names.append(LEADS_QUALIFIED)
    if recorded.opted_out:
        names.append(OPT_OUTS)
    if event.type in ENGAGEMENT_METRICS and recorded.machine is not None:
        human, machine = ENGAGEMENT_METRICS[event.type]
        names.append(machine if recorded.machine else human)
    elif event.type is EmailEventType.DELIVERY:
        names.append(EMAILS_DELIVERED)
    elif event.type is EmailEventType.BOUNCE:
        names.append(HARD_BOUNCES if event.permanent_bounce else SOFT_BOUNCES)
    elif event.type is EmailEventType.COMPLAINT:
        names.append(COMPLAINTS)
    return names


def _readable(event: dict[str, Any]) -> list[EmailEvent]:
    """The batch's events, so that a scanner's clicks on one email, which arrive together,
    are each known for a machine's from the first (an unreadable one fails on its own)."""
    events = []
    for record in event.get("Records", []):
        try:
            events.append(parse_event(str(record.get("body", ""))))
        except (NotAnEmailEvent, SetupNotice):
            continue
    return events

"""Lambda batch event sources (SQS, DynamoDB streams) with partial batch failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.typing import LambdaContext


def process_batch(
    event: dict[str, Any],
    context: LambdaContext,
    handle: Callable[[Any], str],
    source: EventType = EventType.SQS,
) -> dict[str, Any]:
    """Run ``handle`` on each record; the failed ones are reported for redelivery."""
    response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
        event=event,
        record_handler=handle,
        processor=BatchProcessor(event_type=source),
        context=context,
    )
    return response

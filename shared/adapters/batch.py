"""Lambda batch event sources (SQS, DynamoDB streams) with partial batch failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
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
    logger: Logger | None = None,
) -> dict[str, Any]:
    """Run ``handle`` on each record; the failed ones are reported for redelivery."""

    def logged(record: Any) -> str:
        try:
            return handle(record)
        except Exception:
            # The batch processor keeps the error to itself: say what failed, then retry.
            if logger is not None:
                logger.exception("record failed; it will be retried")
            raise

    response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
        event=event,
        record_handler=logged,
        processor=BatchProcessor(event_type=source),
        context=context,
    )
    return response

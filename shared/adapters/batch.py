"""Lambda batch event sources (SQS, DynamoDB streams) with partial batch failures."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.typing import LambdaContext


class ConcurrentBatchProcessor(BatchProcessor):
    """Powertools' ``BatchProcessor`` with the records handled on up to ``workers``
    threads at once. Each record's result is recorded by Powertools as in a sequential
    batch (its success and failure handlers only append to lists), so the response is
    the same: the failed records as ``batchItemFailures`` (in no particular order), or
    ``BatchProcessingError`` when every record failed.

    Only for a standard SQS queue: a FIFO queue or a stream needs its records in order.
    The record handler and whatever it shares must be thread-safe.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        super().__init__(event_type=EventType.SQS)
        self.workers = workers

    def process(self) -> list[tuple[Any, ...]]:
        workers = min(self.workers, len(self.records))
        if workers <= 1:
            return super().process()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="record") as pool:
            return list(pool.map(self._process_record, self.records))


def process_batch(
    event: dict[str, Any],
    context: LambdaContext,
    handle: Callable[[Any], str],
    source: EventType = EventType.SQS,
    logger: Logger | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run ``handle`` on each record; the failed ones are reported for redelivery.

    ``workers`` > 1 handles the records of a standard SQS batch concurrently
    (``ConcurrentBatchProcessor``); ``handle`` must then be thread-safe.
    """

    def logged(record: Any) -> str:
        try:
            return handle(record)
        except Exception:
            # The batch processor keeps the error to itself: say what failed, then retry.
            if logger is not None:
                logger.exception("record failed; it will be retried")
            raise

    if workers > 1 and source is not EventType.SQS:
        raise ValueError("only a standard SQS batch may be handled concurrently")
    processor = ConcurrentBatchProcessor(workers) if workers > 1 else BatchProcessor(source)
    response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
        event=event,
        record_handler=logged,
        processor=processor,
        context=context,
    )
    return response

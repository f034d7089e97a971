"""Lambda batch event sources (SQS, DynamoDB streams) with partial batch failures.

A record that fails is reported for redelivery, except one that can never be
processed (``MalformedRecord``, or a pydantic ``ValidationError``): retrying it would
only fail again, log again and hold its queue's alarm back until SQS gives up on it.
It is put on the function's dead-letter queue at once and reported as processed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from shared.domain.malformed import MalformedRecord

# What no retry can fix. A ValidationError is raised on the same input every time: a
# message that is not what the model expects, or a stored item that no longer is.
UNPROCESSABLE: tuple[type[Exception], ...] = (MalformedRecord, ValidationError)
DEAD_LETTERED = "dead_lettered"


class DeadLetters(Protocol):
    """Where a consumer puts the records it can never process (its dead-letter queue)."""

    def put(self, body: str, attributes: Mapping[str, str]) -> None: ...


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
    dead_letters: DeadLetters | None = None,
) -> dict[str, Any]:
    """Run ``handle`` on each record; the failed ones are reported for redelivery, the
    malformed ones put on ``dead_letters`` (without it, they are retried like the others
    until the event source gives up on them).

    ``workers`` > 1 handles the records of a standard SQS batch concurrently
    (``ConcurrentBatchProcessor``); ``handle`` must then be thread-safe.
    """

    def logged(record: Any) -> str:
        try:
            return handle(record)
        except UNPROCESSABLE as exc:
            if dead_letters is not None:
                return _dead_letter(record, exc, source, dead_letters, logger)
            if logger is not None:
                logger.error("malformed record; it will be retried", extra=_about(record, exc))
            raise
        except Exception:
            # The batch processor keeps the error to itself: say what failed, then retry.
            if logger is not None:
                logger.exception("record failed; it will be retried")
            raise

    if workers > 1 and source is not EventType.SQS:
        raise ValueError("only a standard SQS batch may be handled concurrently")
    processor = ConcurrentBatchProcessor(workers) if workers > 1 else BatchProcessor(source)
    try:
        response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
            event=event,
            record_handler=logged,
            processor=processor,
            context=context,
        )
    except BatchProcessingError:
        # Its text carries every record's traceback and Lambda logs it as it is, past
        # any redaction; each record's error was logged above, redacted.
        raise BatchProcessingError("every record of the batch failed") from None
    return response


def _dead_letter(
    record: Any,
    error: Exception,
    source: EventType,
    dead_letters: DeadLetters,
    logger: Logger | None,
) -> str:
    about = _about(record, error)
    try:
        dead_letters.put(_letter(record, source), about)
    except Exception:
        if logger is not None:
            logger.exception("malformed record not dead-lettered; it will be retried")
        raise
    if logger is not None:
        logger.warning("malformed record moved to the dead-letter queue", extra=about)
    return DEAD_LETTERED


def _letter(record: Any, source: EventType) -> str:
    """What the dead-letter queue keeps: an SQS message's body, as a redrive would; for
    a stream record, where to find it (its item stays in the table)."""
    if source is EventType.SQS:
        return str(record.body)
    raw = record.raw_event
    return json.dumps(
        {
            "eventID": raw.get("eventID"),
            "eventName": raw.get("eventName"),
            "eventSourceARN": raw.get("eventSourceARN"),
            "SequenceNumber": (raw.get("dynamodb") or {}).get("SequenceNumber"),
            "Keys": (raw.get("dynamodb") or {}).get("Keys"),
        }
    )


def _about(record: Any, error: Exception) -> dict[str, str]:
    """Why a record is malformed, in words that hold none of its values."""
    raw = record.raw_event
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in e['loc']) or 'record'}: {e['type']}"
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        problem = "; ".join(problems)
    else:
        problem = str(error)
    return {
        "record_id": str(raw.get("messageId") or raw.get("eventID") or ""),
        "source_arn": str(raw.get("eventSourceARN") or ""),
        "error": type(error).__name__,
        "problem": problem[:500],
    }

"""What the functions tell about themselves, in one module: their logs (Powertools'
structured JSON, without personal data, each line carrying the invocation's Lambda
context) and their metrics (``emit_counts``).

Every function builds its logger here, and every handler is ``logged``: Powertools'
``inject_lambda_context`` puts the function's name, memory, ARN, request id and
``cold_start`` on every line of the invocation, which is what ties a line to its request
(API Gateway's access log has the same request id).

Tracing is off (no X-Ray): Powertools' Tracer needs the X-Ray SDK, and importing
``aws_xray_sdk.core`` alone took about 200 ms here, about a whole cold start's floor
(``import boto3`` and one client), for subsegments of calls each function already logs
and counts in its metrics. Each line is redacted as a whole just before it
is written (``shared.domain.redaction``): the message, the extra keys at any depth, the keys
appended to the logger, the exception's text, its traceback and the stack trace, so a
line is clean whichever of those a caller or a library put the data in.

Powertools' data masking utility (``aws_lambda_powertools.utilities.data_masking``) is
not used: it masks the fields of a payload named by JSONPath, while a log line needs
keys matched at any depth and patterns matched inside free text (exception texts,
tracebacks), and it would add jsonpath-ng and the AWS Encryption SDK to the layer.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from shared.domain.metrics import NAMESPACE
from shared.domain.redaction import redact
from shared.web.media_types import JSON_TYPE

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
    from aws_lambda_powertools.logging.types import LogRecord


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with the whole line redacted before it is written."""

    def serialize(self, log: LogRecord) -> str:
        return super().serialize(redact(log))


def build_logger(service: str) -> Logger:
    """The logger of the function ``service`` (``POWERTOOLS_LOG_LEVEL`` sets its level)."""
    logger = Logger(service=service, logger_formatter=RedactingFormatter())
    handler = logger.registered_handler
    if not isinstance(handler.formatter, RedactingFormatter):
        # Powertools keeps the first handler of a name: one made before, elsewhere in
        # the process, without this formatter, redacts from now on too.
        formatter = RedactingFormatter()
        formatter.append_keys(service=service)
        handler.setFormatter(formatter)
    return logger


Handler = TypeVar("Handler", bound=Callable[..., Any])


def logged(service: str) -> Callable[[Handler], Handler]:
    """The handler with ``inject_lambda_context`` on the function's logger, built on the
    first invocation (nothing is built at import)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            injected = build_logger(service).inject_lambda_context(handler)
            return injected(event, context, *args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


class InvocationFailed(Exception):
    """The invocation failed; why is in the function's log."""


@contextmanager
def failures_logged(logger: Logger) -> Iterator[None]:
    """Lambda logs an error that leaves the handler with its text as it is: log it here,
    redacted, and let a bare one of its name leave instead (the invocation still fails)."""
    try:
        yield
    except Exception as error:
        logger.exception("invocation failed")
        raise InvocationFailed(type(error).__name__) from None


def answer_unexpected_errors(app: APIGatewayRestResolver, logger: Logger) -> None:
    """Log any error a route lets through (redacted) and answer 500, as API Gateway
    does for a failed function; Lambda would log the error's text unredacted."""
    from aws_lambda_powertools.event_handler import Response  # routed functions have it
    from aws_lambda_powertools.event_handler.exceptions import ServiceError

    def unexpected(error: Exception) -> Response[str]:
        logger.exception("request failed")
        body = json.dumps({"message": "Internal server error"})
        return Response(500, JSON_TYPE, body)

    def answered(error: ServiceError) -> Response[str]:
        # The resolver's own answers (404 for an unknown route, ...) stay what they are:
        # the handler for Exception would otherwise take them too.
        body = json.dumps({"message": error.msg})
        return Response(error.status_code, JSON_TYPE, body)

    app.exception_handler(ServiceError)(answered)
    app.exception_handler(Exception)(unexpected)


def emit_counts(service: str, counts: Mapping[str, int]) -> None:
    """What an invocation counted, as CloudWatch metrics with the dimension ``service``:
    one embedded metric format (EMF) document on stdout, which Lambda's log group turns
    into metrics. Zeros are left out; nothing is written when every count is zero.

    Each call builds its own ``EphemeralMetrics``: Powertools' ``Metrics`` keeps its
    metrics in class attributes shared by every instance in the process, so where several
    functions run in one process (the local stack, the tests) one would flush another's
    counts. ``aws_lambda_powertools.metrics`` costs about 3 ms to import, and the
    package's own ``__init__`` (which every Powertools import runs) imports it already.
    """
    counted = {name: int(value) for name, value in counts.items() if value}
    if not counted:
        return
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=service)
    for name, value in counted.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()

"""Every minute (EventBridge): lease due leads and queue their send jobs."""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.clients import AwsClients
from shared.clock import Clock, SystemClock
from shared.scheduling import DueScheduler
from shared.settings import EnvSettings


class SchedulerSettings(EnvSettings):
    table_name: str
    send_queue_url: str


def build(clock: Clock | None = None) -> DueScheduler:
    from shared.adapters.dynamodb import DynamoDueIndex
    from shared.adapters.sqs import SqsJobQueue

    settings = SchedulerSettings.from_env()
    aws = AwsClients()
    return DueScheduler(
        DynamoDueIndex(aws.client("dynamodb"), settings.table_name),
        SqsJobQueue(aws.client("sqs"), settings.send_queue_url),
        clock or SystemClock(),
    )


@cache
def _default() -> DueScheduler:
    return build()


@cache
def _logger() -> Logger:
    return Logger(service="scheduler")


def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: DueScheduler | None = None
) -> dict[str, int]:
    result = asdict((app or _default()).tick())
    _logger().info("tick", extra=result)
    return result

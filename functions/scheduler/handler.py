"""Every minute (EventBridge): lease due leads and queue their send jobs."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from fractions import Fraction
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.observability import build_logger, emit_counts, failures_logged, logged
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.guard import GuardLimits, Warmup
from shared.domain.metrics import SENDING_PAUSED
from shared.services.due_scheduling import DueScheduler, SendingPolicy
from shared.settings import EnvSettings


class SchedulerSettings(EnvSettings):
    table_name: str
    send_queue_url: str
    # The sending guard's limits: the reputation alarms' own (cdk.json ``reputation``).
    bounce_rate_percent: float = Field(default=4.0, gt=0, lt=5)
    complaint_rate_percent: float = Field(default=0.08, gt=0, lt=0.1)
    guard_min_sends: int = Field(default=500, ge=1)
    # A new domain's warm-up (cdk.json ``warmup``): emails a day in each week from start.
    warmup_start: date | None = None
    warmup_daily: tuple[int, ...] = ()

    def policy(self) -> SendingPolicy:
        return SendingPolicy(
            GuardLimits(
                bounce_rate=Fraction(str(self.bounce_rate_percent)) / 100,
                complaint_rate=Fraction(str(self.complaint_rate_percent)) / 100,
                min_sends=self.guard_min_sends,
            ),
            Warmup(self.warmup_start, self.warmup_daily),
        )


def build(clock: Clock | None = None) -> DueScheduler:
    from shared.adapters.due import DynamoDueIndex
    from shared.adapters.guard import DynamoSendingSwitch
    from shared.adapters.sqs import SqsJobQueue

    settings = SchedulerSettings.from_env()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
    return DueScheduler(
        DynamoDueIndex(dynamodb, settings.table_name),
        SqsJobQueue(aws.client("sqs"), settings.send_queue_url),
        clock or SystemClock(),
        switch=DynamoSendingSwitch(dynamodb, settings.table_name),
        policy=settings.policy(),
    )


@cache
def _default() -> DueScheduler:
    return build()


@cache
def _logger() -> Logger:
    return build_logger("scheduler")


@logged("scheduler")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: DueScheduler | None = None
) -> dict[str, Any]:
    with failures_logged(_logger()):
        ticked = (app or _default()).tick()
    result = asdict(ticked)
    if ticked.paused:
        _logger().warning("sending paused by the guard", extra=result)
        emit_counts("scheduler", {SENDING_PAUSED: 1})
    _logger().info("tick", extra=result)
    return result

"""The job queues of ``wiring.QUEUES``: each with its dead-letter queue and an alarm on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.wiring import QueueSpec

# The longest SQS keeps a message: time to find and fix the cause of a poison message.
DEAD_LETTER_RETENTION = Duration.days(14)


@dataclass(frozen=True)
class JobQueue:
    spec: QueueSpec
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    dead_letter_alarm: cloudwatch.Alarm


class JobQueues(Construct):
    """One SQS queue per spec, encrypted (SQS-managed keys) and reachable over TLS only.

    The messages are job references (lead, program and step ids), no email content,
    so SQS-managed encryption suffices and producers and consumers need no KMS grants.
    """

    def __init__(self, scope: Construct, construct_id: str, *, specs: Sequence[QueueSpec]) -> None:
        super().__init__(scope, construct_id)
        self.by_name: dict[str, JobQueue] = {spec.name: self._queue(spec) for spec in specs}

    def queue(self, spec: QueueSpec) -> sqs.Queue:
        return self.by_name[spec.name].queue

    def _queue(self, spec: QueueSpec) -> JobQueue:
        scope = Construct(self, spec.name)
        dead_letter_queue = sqs.Queue(
            scope,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        queue = sqs.Queue(
            scope,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dead_letter_queue, max_receive_count=spec.max_receive_count
            ),
        )
        # A message lands here only after max_receive_count failed attempts: one is
        # already worth a look (an email that was never sent).
        alarm = cloudwatch.Alarm(
            scope,
            "DeadLetterAlarm",
            alarm_description=(
                f"Messages of the {spec.name} queue failed {spec.max_receive_count} times "
                "and wait in its dead-letter queue"
            ),
            metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return JobQueue(spec, queue, dead_letter_queue, alarm)

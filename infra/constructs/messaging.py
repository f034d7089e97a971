"""The job queues of ``wiring.QUEUES``: each with its dead-letter queue and an alarm on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.wiring import QueueSpec

# The longest SQS keeps a message: time to find and fix the cause of a poison message.
DEAD_LETTER_RETENTION = Duration.days(14)


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """A queue for what failed for good: encrypted, TLS only, kept as long as SQS allows."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )


def dead_letter_alarm(
    scope: Construct, construct_id: str, *, queue: sqs.IQueue, description: str
) -> cloudwatch.Alarm:
    """Alarms on the first message: one is already worth a look."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


@dataclass(frozen=True)
class JobQueue:
    spec: QueueSpec
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    dead_letter_alarm: cloudwatch.Alarm


class JobQueues(Construct):
    """One SQS queue per spec, encrypted (SQS-managed keys) and reachable over TLS only.

    The messages are job references (lead, program and step ids) and SES engagement
    events, no email content, so SQS-managed encryption suffices: producers and
    consumers need no KMS grants, and SNS can deliver to the queues without a key policy.
    """

    def __init__(self, scope: Construct, construct_id: str, *, specs: Sequence[QueueSpec]) -> None:
        super().__init__(scope, construct_id)
        self.by_name: dict[str, JobQueue] = {spec.name: self._queue(spec) for spec in specs}

    def queue(self, spec: QueueSpec) -> sqs.Queue:
        return self.by_name[spec.name].queue

    def subscribe(self, spec: QueueSpec, topic: sns.ITopic) -> None:
        """Deliver the topic's messages to the queue as published (raw, no SNS envelope).

        Also adds the queue policy statement that lets SNS, for this topic only, send.
        """
        topic.add_subscription(
            subscriptions.SqsSubscription(self.queue(spec), raw_message_delivery=True)
        )

    def _queue(self, spec: QueueSpec) -> JobQueue:
        scope = Construct(self, spec.name)
        dlq = dead_letter_queue(scope, "DeadLetterQueue")
        queue = sqs.Queue(
            scope,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dlq, max_receive_count=spec.max_receive_count
            ),
        )
        # A message lands here only after max_receive_count failed attempts.
        alarm = dead_letter_alarm(
            scope,
            "DeadLetterAlarm",
            queue=dlq,
            description=(
                f"Messages of the {spec.name} queue failed {spec.max_receive_count} times "
                "and wait in its dead-letter queue"
            ),
        )
        return JobQueue(spec, queue, dlq, alarm)

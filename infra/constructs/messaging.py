"""The job queues of ``wiring.QUEUES``: each with its dead-letter queue and an alarm on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.keys import PRODUCER_KEY_ACTIONS, data_key
from infra.wiring import QueueSpec

# The longest SQS keeps a message: time to find and fix the cause of a poison message.
DEAD_LETTER_RETENTION = Duration.days(14)


# A queue's data key is reused this long: fewer KMS calls (and their cost) per message.
DATA_KEY_REUSE = Duration.hours(1)
SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")


def dead_letter_queue(
    scope: Construct, construct_id: str, key: kms.IKey | None = None
) -> sqs.Queue:
    """A queue for what failed for good: encrypted (with ``key`` when it may hold personal
    data), TLS only, kept as long as SQS allows."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS if key else sqs.QueueEncryption.SQS_MANAGED,
        encryption_master_key=key,
        data_key_reuse=DATA_KEY_REUSE if key else None,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )


def grant_send(grantee: iam.IGrantable, queue: sqs.IQueue) -> None:
    """sqs:SendMessage on the queue, and on its key (if any) what SQS needs to encrypt."""
    iam.Grant.add_to_principal(
        grantee=grantee, actions=list(SEND_ACTIONS), resource_arns=[queue.queue_arn]
    )
    if queue.encryption_master_key is not None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(PRODUCER_KEY_ACTIONS),
            resource_arns=[queue.encryption_master_key.key_arn],
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
    """One SQS queue per spec, with its dead-letter queue, encrypted with a key of their
    own and reachable over TLS only.

    The messages hold personal data: SES engagement events carry the recipient's address
    and headers, and send jobs name a lead. A customer-managed key (rather than SQS's
    own) puts every read under the key's policy and in CloudTrail, and lets an
    operator disable it; producers and consumers are granted on it, and SNS may use it
    only for the topics subscribed here.
    """

    def __init__(self, scope: Construct, construct_id: str, *, specs: Sequence[QueueSpec]) -> None:
        super().__init__(scope, construct_id)
        self.key = data_key(
            self, "Key", "Encrypts the job queues and their dead-letter queues (personal data)"
        )
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
        # SNS encrypts what it delivers with the queue's key, for this topic only.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                actions=list(PRODUCER_KEY_ACTIONS),
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"ArnEquals": {"aws:SourceArn": topic.topic_arn}},
            )
        )

    def _queue(self, spec: QueueSpec) -> JobQueue:
        scope = Construct(self, spec.name)
        dlq = dead_letter_queue(scope, "DeadLetterQueue", self.key)
        queue = sqs.Queue(
            scope,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            data_key_reuse=DATA_KEY_REUSE,
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

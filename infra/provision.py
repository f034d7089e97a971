"""Create the wiring's resources through plain boto3 (moto in tests and the local stack).

The CDK app is the source of truth on AWS; this reads the same declaration
(``infra.wiring``) so the local resources have the same keys, indexes, streams,
queues, topics, subscriptions and email setup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.wiring import (
    CONFIGURATION_SET,
    EMAIL_EVENTS_TOPIC,
    ENGAGEMENT_QUEUE,
    FUNCTIONS,
    QUEUES,
    SALES_TOPIC,
    TABLE,
    TOPICS,
    FunctionSpec,
    QueueSpec,
    TableSpec,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        GlobalSecondaryIndexTypeDef,
    )
    from mypy_boto3_sesv2.client import SESV2Client
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

# As on AWS (infra/constructs/messaging.py): the longest SQS keeps a message.
DEAD_LETTER_RETENTION_S = 14 * 24 * 60 * 60
# Stands in for the sales systems and people subscribed to the sales topic on AWS.
SALES_INBOX = "sales-inbox"


@dataclass(frozen=True)
class Provisioned:
    """What ``provision_all`` created: the names and addresses the functions need."""

    table_name: str
    queue_urls: dict[str, str]  # by QueueSpec.name
    dead_letter_queue_urls: dict[str, str]  # by QueueSpec.name
    topic_arns: dict[str, str]  # by wiring topic name (wiring.TOPICS)
    # A queue subscribed to the sales topic with the SNS envelope (Subject and
    # MessageAttributes included), where a local run reads what sales would receive.
    sales_inbox_url: str
    configuration_set: str
    from_domain: str
    # The stream consumers' on-failure destinations, by function name.
    stream_failure_queue_urls: dict[str, str]

    @property
    def email_events_topic_arn(self) -> str:
        return self.topic_arns[EMAIL_EVENTS_TOPIC]


def provision_all(session: boto3.session.Session, *, prefix: str, from_domain: str) -> Provisioned:
    """Everything the wiring declares: table, queues, topics and their subscriptions,
    SES identity and configuration set, plus a sales inbox queue on the sales topic.

    ``prefix`` names the table and prefixes queue and topic names (e.g.
    ``lead-nurture-local``); ``from_domain`` is the sender's domain
    (``DeploymentConfig().sender.from_domain``), which the customer verifies on AWS.
    """
    create_table(session.client("dynamodb"), prefix)
    sqs = session.client("sqs")
    sns = session.client("sns")
    queue_urls, dead_letter_queue_urls = create_queues(sqs, prefix)
    topic_arns = {name: create_topic(sns, f"{prefix}-{name}") for name in TOPICS}
    # As on AWS (infra/stack.py): SES events reach the engagement queue as published.
    subscribe_queue(
        sns,
        sqs,
        topic_arn=topic_arns[EMAIL_EVENTS_TOPIC],
        queue_url=queue_urls[ENGAGEMENT_QUEUE.name],
        raw_message_delivery=True,
    )
    sales_inbox_url = sqs.create_queue(QueueName=f"{prefix}-{SALES_INBOX}")["QueueUrl"]
    subscribe_queue(
        sns,
        sqs,
        topic_arn=topic_arns[SALES_TOPIC],
        queue_url=sales_inbox_url,
        raw_message_delivery=False,
    )
    create_email(session.client("sesv2"), from_domain=from_domain)
    # On AWS the configuration set publishes its events to this topic. moto 5.2.5 does
    # not implement sesv2 create_configuration_set_event_destination (NotImplementedError)
    # and publishes no configuration-set events on a send, so no destination is made
    # here: whatever stands in for SES events locally publishes to the topic itself.
    return Provisioned(
        table_name=prefix,
        queue_urls=queue_urls,
        dead_letter_queue_urls=dead_letter_queue_urls,
        topic_arns=topic_arns,
        sales_inbox_url=sales_inbox_url,
        configuration_set=CONFIGURATION_SET,
        from_domain=from_domain,
        stream_failure_queue_urls=create_stream_failure_queues(sqs, prefix),
    )


def create_table(client: DynamoDBClient, name: str, spec: TableSpec = TABLE) -> None:
    attributes: dict[str, str] = {
        spec.partition_key.name: spec.partition_key.type,
        spec.sort_key.name: spec.sort_key.type,
    }
    indexes: list[GlobalSecondaryIndexTypeDef] = []
    for index in spec.indexes:
        attributes[index.partition_key.name] = index.partition_key.type
        attributes[index.sort_key.name] = index.sort_key.type
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key.name, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key.name, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(index.projected),
                }
                if index.projected
                else {"ProjectionType": "KEYS_ONLY"},
            }
        )
    definitions: list[AttributeDefinitionTypeDef] = [
        {"AttributeName": n, "AttributeType": t}  # type: ignore[typeddict-item]
        for n, t in attributes.items()
    ]
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": spec.partition_key.name, "KeyType": "HASH"},
            {"AttributeName": spec.sort_key.name, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=definitions,
        GlobalSecondaryIndexes=indexes,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": spec.stream},
    )
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
    )


def create_queues(
    client: SQSClient, prefix: str, specs: Sequence[QueueSpec] = QUEUES
) -> tuple[dict[str, str], dict[str, str]]:
    """Each queue with its dead-letter queue; returns (queue URLs, DLQ URLs) by name."""
    queue_urls: dict[str, str] = {}
    dead_letter_queue_urls: dict[str, str] = {}
    for spec in specs:
        dlq_url = client.create_queue(
            QueueName=f"{prefix}-{spec.name}-dlq",
            Attributes={"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_S)},
        )["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}
        queue_urls[spec.name] = client.create_queue(
            QueueName=f"{prefix}-{spec.name}",
            Attributes={
                "VisibilityTimeout": str(spec.visibility_timeout_s),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        dead_letter_queue_urls[spec.name] = dlq_url
    return queue_urls, dead_letter_queue_urls


def create_stream_failure_queues(
    client: SQSClient, prefix: str, functions: Sequence[FunctionSpec] = FUNCTIONS
) -> dict[str, str]:
    """The on-failure queue of each function fed by the table's stream, by function name
    (``<prefix>-<function>-<failure_queue>``, kept as long as a dead-letter queue)."""
    return {
        spec.name: client.create_queue(
            QueueName=f"{prefix}-{spec.name}-{spec.stream.failure_queue}",
            Attributes={"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_S)},
        )["QueueUrl"]
        for spec in functions
        if spec.stream is not None
    }


def create_topic(client: SNSClient, name: str) -> str:
    return client.create_topic(Name=name)["TopicArn"]


def subscribe_queue(
    sns: SNSClient,
    sqs: SQSClient,
    *,
    topic_arn: str,
    queue_url: str,
    raw_message_delivery: bool,
) -> str:
    """Subscribe the queue to the topic; returns the subscription ARN.

    Raw delivery passes the message as published (its attributes become SQS message
    attributes); without it the queue receives SNS's JSON envelope (Type, Subject,
    Message, MessageAttributes, ...). Also sets the queue policy that lets the topic
    send, as on AWS, though moto does not check it.
    """
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    return sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true" if raw_message_delivery else "false"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]


def create_email(
    client: SESV2Client, *, from_domain: str, configuration_set: str = CONFIGURATION_SET
) -> None:
    """The sending identity (verified at once in moto) and the configuration set."""
    client.create_email_identity(EmailIdentity=from_domain)
    client.create_configuration_set(
        ConfigurationSetName=configuration_set,
        ReputationOptions={"ReputationMetricsEnabled": True},
        SendingOptions={"SendingEnabled": True},
        DeliveryOptions={"TlsPolicy": "REQUIRE"},
        SuppressionOptions={"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
    )

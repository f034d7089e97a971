"""Provisioning the wiring into moto: what the local stack and the tests run against."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from infra.config import DeploymentConfig, Resources, function_environment
from infra.provision import DEAD_LETTER_RETENTION_S, SALES_INBOX, Provisioned, provision_all
from infra.wiring import (
    CONFIGURATION_SET,
    EMAIL_EVENTS_TOPIC,
    ENGAGEMENT_QUEUE,
    HANDOFF,
    QUEUES,
    SALES_TOPIC,
    SCHEDULER,
    TABLE,
    TOPICS,
    QueueSpec,
)

PREFIX = "lead-nurture-test"
DOMAIN = "example.co.jp"


@pytest.fixture
def session(aws: None) -> boto3.session.Session:
    return boto3.session.Session(region_name="ap-northeast-1")


@pytest.fixture
def provisioned(session: boto3.session.Session) -> Provisioned:
    return provision_all(session, prefix=PREFIX, from_domain=DOMAIN)


def queue_attributes(session: boto3.session.Session, url: str) -> dict[str, str]:
    attributes = session.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return {str(name): value for name, value in attributes.items()}


def test_creates_the_table_with_its_stream_and_indexes(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    table = session.client("dynamodb").describe_table(TableName=provisioned.table_name)["Table"]
    assert provisioned.table_name == PREFIX
    assert table["StreamSpecification"]["StreamViewType"] == TABLE.stream
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [
        index.name for index in TABLE.indexes
    ]


@pytest.mark.parametrize("queue", QUEUES, ids=lambda queue: queue.name)
def test_creates_each_queue_with_a_redrive_policy_to_its_dead_letter_queue(
    session: boto3.session.Session, provisioned: Provisioned, queue: QueueSpec
) -> None:
    attributes = queue_attributes(session, provisioned.queue_urls[queue.name])
    dlq = queue_attributes(session, provisioned.dead_letter_queue_urls[queue.name])
    assert attributes["VisibilityTimeout"] == str(queue.visibility_timeout_s)
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": queue.max_receive_count,
    }
    assert dlq["MessageRetentionPeriod"] == str(DEAD_LETTER_RETENTION_S)
    assert provisioned.queue_urls[queue.name].endswith(f"/{PREFIX}-{queue.name}")


def test_returns_a_url_for_every_queue_of_the_wiring(provisioned: Provisioned) -> None:
    assert set(provisioned.queue_urls) == {queue.name for queue in QUEUES}
    assert set(provisioned.dead_letter_queue_urls) == {queue.name for queue in QUEUES}


def test_each_stream_consumer_gets_its_on_failure_queue(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    assert HANDOFF.stream is not None
    assert set(provisioned.stream_failure_queue_urls) == {HANDOFF.name}
    url = provisioned.stream_failure_queue_urls[HANDOFF.name]
    assert url.endswith(f"/{PREFIX}-{HANDOFF.name}-{HANDOFF.stream.failure_queue}")
    assert queue_attributes(session, url)["MessageRetentionPeriod"] == str(DEAD_LETTER_RETENTION_S)


def test_creates_every_topic_of_the_wiring(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    topics = {t["TopicArn"] for t in session.client("sns").list_topics()["Topics"]}
    assert set(provisioned.topic_arns) == set(TOPICS)
    assert topics == set(provisioned.topic_arns.values())
    for name, arn in provisioned.topic_arns.items():
        assert arn.endswith(f":{PREFIX}-{name}")
    assert provisioned.email_events_topic_arn == provisioned.topic_arns[EMAIL_EVENTS_TOPIC]


def receive_all(session: boto3.session.Session, url: str) -> list[dict[str, Any]]:
    messages = (
        session.client("sqs")
        .receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        .get("Messages", [])
    )
    return [dict(message) for message in messages]


def test_email_events_reach_the_engagement_queue_as_published(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    # Given an SES event as the configuration set publishes it
    event = {
        "eventType": "Open",
        "mail": {"messageId": "0100018c-example", "destination": ["lead@example.com"]},
        "open": {"timestamp": "2026-11-23T01:00:00.000Z", "userAgent": "Mozilla/5.0"},
    }
    # When it is published to the events topic
    session.client("sns").publish(
        TopicArn=provisioned.topic_arns[EMAIL_EVENTS_TOPIC], Message=json.dumps(event)
    )
    # Then the engagement queue holds exactly that document, no SNS envelope around it
    (message,) = receive_all(session, provisioned.queue_urls[ENGAGEMENT_QUEUE.name])
    assert json.loads(message["Body"]) == event


def test_the_engagement_subscription_is_raw_and_the_sales_inbox_one_is_not(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    sns = session.client("sns")
    sqs = session.client("sqs")

    def endpoint_of(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    raw_by_endpoint = {}
    for name in TOPICS:
        for subscription in sns.list_subscriptions_by_topic(TopicArn=provisioned.topic_arns[name])[
            "Subscriptions"
        ]:
            attributes = sns.get_subscription_attributes(
                SubscriptionArn=subscription["SubscriptionArn"]
            )["Attributes"]
            raw_by_endpoint[name, subscription["Endpoint"]] = attributes["RawMessageDelivery"]
    assert raw_by_endpoint == {
        (EMAIL_EVENTS_TOPIC, endpoint_of(provisioned.queue_urls[ENGAGEMENT_QUEUE.name])): "true",
        (SALES_TOPIC, endpoint_of(provisioned.sales_inbox_url)): "false",
    }


def test_sales_topic_reaches_the_inbox_in_the_sns_envelope(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    assert provisioned.sales_inbox_url.endswith(f"/{PREFIX}-{SALES_INBOX}")
    # Given a hand-off as a publisher sends it: subject and attributes for subscribers' filters
    lead = {"lead_id": "9f1c", "company": "株式会社サンプル", "score": 120}
    session.client("sns").publish(
        TopicArn=provisioned.topic_arns[SALES_TOPIC],
        Subject="MQL: 株式会社サンプル",
        Message=json.dumps(lead, ensure_ascii=False),
        MessageAttributes={"stage": {"DataType": "String", "StringValue": "mql"}},
    )
    # Then the inbox sees the envelope with the subject, attributes and message
    (message,) = receive_all(session, provisioned.sales_inbox_url)
    envelope = json.loads(message["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"] == provisioned.topic_arns[SALES_TOPIC]
    assert envelope["Subject"] == "MQL: 株式会社サンプル"
    assert envelope["MessageAttributes"] == {"stage": {"Type": "String", "Value": "mql"}}
    assert json.loads(envelope["Message"]) == lead
    # And nothing of it reached the engagement queue
    assert receive_all(session, provisioned.queue_urls[ENGAGEMENT_QUEUE.name]) == []


def test_creates_the_sending_identity_and_configuration_set(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    sesv2 = session.client("sesv2")
    assert sesv2.get_email_identity(EmailIdentity=DOMAIN)["IdentityType"] == "DOMAIN"
    assert provisioned.configuration_set == CONFIGURATION_SET
    configuration_set = sesv2.get_configuration_set(ConfigurationSetName=CONFIGURATION_SET)
    assert configuration_set["ReputationOptions"]["ReputationMetricsEnabled"] is True
    assert configuration_set["DeliveryOptions"]["TlsPolicy"] == "REQUIRE"


def test_the_sender_can_send_through_the_configuration_set(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    sent = session.client("sesv2").send_email(
        FromEmailAddress=DeploymentConfig().sender.from_address,
        Destination={"ToAddresses": ["lead@example.com"]},
        Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
        ConfigurationSetName=provisioned.configuration_set,
    )
    assert sent["MessageId"]


def test_function_environments_point_at_the_provisioned_resources(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    resources = Resources(
        table_name=provisioned.table_name,
        api_url="http://127.0.0.1:3000/v1/",
        configuration_set=provisioned.configuration_set,
        queue_urls=provisioned.queue_urls,
        topic_arns=provisioned.topic_arns,
        signing_secret="local-development-signing-secret-0123456789",
    )
    environment = function_environment(SCHEDULER, DeploymentConfig(), resources)
    sqs = session.client("sqs")
    sqs.send_message(QueueUrl=environment["SEND_QUEUE_URL"], MessageBody="{}")
    received = sqs.receive_message(QueueUrl=provisioned.queue_urls["send"])
    assert [message["Body"] for message in received["Messages"]] == ["{}"]

    handoff = function_environment(HANDOFF, DeploymentConfig(), resources)
    session.client("sns").publish(TopicArn=handoff["SALES_LEADS_TOPIC_ARN"], Message="{}")
    (message,) = receive_all(session, provisioned.sales_inbox_url)
    assert json.loads(message["Body"])["Message"] == "{}"

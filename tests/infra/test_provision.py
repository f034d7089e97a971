"""Provisioning the wiring into moto: what the local stack and the tests run against."""

from __future__ import annotations

import json

import boto3
import pytest

from infra.config import DeploymentConfig, Resources, function_environment
from infra.provision import DEAD_LETTER_RETENTION_S, Provisioned, provision_all
from infra.wiring import (
    CONFIGURATION_SET,
    EMAIL_EVENTS_TOPIC,
    QUEUES,
    SCHEDULER,
    TABLE,
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


def test_creates_the_email_events_topic(
    session: boto3.session.Session, provisioned: Provisioned
) -> None:
    topics = [t["TopicArn"] for t in session.client("sns").list_topics()["Topics"]]
    assert topics == [provisioned.email_events_topic_arn]
    assert provisioned.email_events_topic_arn.endswith(f":{PREFIX}-{EMAIL_EVENTS_TOPIC}")


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
        signing_secret="local-development-signing-secret-0123456789",
    )
    environment = function_environment(SCHEDULER, DeploymentConfig(), resources)
    sqs = session.client("sqs")
    sqs.send_message(QueueUrl=environment["SEND_QUEUE_URL"], MessageBody="{}")
    received = sqs.receive_message(QueueUrl=provisioned.queue_urls["send"])
    assert [message["Body"] for message in received["Messages"]] == ["{}"]

"""Publishing to the sales topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.handoff import SalesMessage

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient


class SnsSalesPublisher:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic = topic_arn

    def publish(self, message: SalesMessage) -> str:
        attributes: Any = message.attributes
        response = self._client.publish(
            TopicArn=self._topic,
            Subject=message.subject,
            Message=message.message,
            MessageStructure="json",
            MessageAttributes=attributes,
        )
        return response["MessageId"]

"""Publishing to the sales topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.services.handoff import SalesMessage

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient


class SnsSalesPublisher:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic = topic_arn

    def publish(self, message: SalesMessage) -> str:
        # The hand-off's id rides along, so that a program subscribed to the topic can
        # drop a message published twice (a crash between Publish and its marker).
        attributes: Any = {
            **message.attributes,
            "handoff_id": {"DataType": "String", "StringValue": message.handoff_id},
        }
        extra: dict[str, Any] = {}
        if self._topic.endswith(".fifo"):
            # A FIFO topic (queues only, no email) drops the repeat itself, within 5 minutes.
            extra = {
                "MessageDeduplicationId": message.handoff_id.replace(":", "-")[:128],
                "MessageGroupId": message.handoff_id.split(":", 1)[0],
            }
        response = self._client.publish(
            TopicArn=self._topic,
            Subject=message.subject,
            Message=message.message,
            MessageStructure="json",
            MessageAttributes=attributes,
            **extra,
        )
        return response["MessageId"]

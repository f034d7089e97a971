"""Ledgers that make a side effect happen once: the send record claimed before SES is
called, and the hand-off's mark after SNS published."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.adapters.codecs import (
    send_item,
    without_keys,
)
from shared.adapters.items import (
    condition_failed,
    deserialize,
    lead_pk,
    serialize,
)
from shared.domain.leads import (
    SendRecord,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


# Tries of a write whose loss would repeat a message (a hand-off's marker after its
# publish) or lose one (a send's claim before SES), when the table fails to answer.
MARK_ATTEMPTS = 4


class DynamoSendLedger:
    """Send records (``SEND#<key>`` under the lead) with conditional creation."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, lead_id: str, key: str, at: datetime) -> SendRecord | None:
        """A claim carries its own id: when the table fails to answer, the claim is tried
        again in place, and a record found with that id is this caller's own claim (its
        answer was lost), not another run's."""
        record = SendRecord(lead_id=lead_id, key=key, status="sending", at=at)
        claim_id = uuid.uuid4().hex
        attempt = 0
        while True:
            try:
                return self._claim_once(record, claim_id)
            except (ClientError, BotoCoreError):
                attempt += 1
                if attempt == MARK_ATTEMPTS:
                    raise
                time.sleep(0.05 * 2**attempt)

    def _claim_once(self, record: SendRecord, claim_id: str) -> SendRecord | None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize({**send_item(record), "claim_id": claim_id}),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old: Any = exc.response.get("Item")
            found = without_keys(deserialize(old)) if old else {}
            if found.get("claim_id") == claim_id and found.get("status") == "sending":
                return None  # our own claim, whose first answer was lost
            return SendRecord.model_validate({**record.model_dump(), **found})
        return None

    def release(self, lead_id: str, key: str) -> None:
        self._client.delete_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": f"SEND#{key}"}),
            ConditionExpression="#status = :sending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialize({":sending": "sending"}),
        )


class DynamoHandoffLedger:
    """One marker per qualification, so a retried stream batch does not publish twice."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, lead_id: str, handoff_id: str) -> dict[str, Any]:
        return serialize({"pk": lead_pk(lead_id), "sk": f"HANDOFF#{handoff_id}"})

    def published(self, lead_id: str, handoff_id: str) -> bool:
        response = self._client.get_item(
            TableName=self._table, Key=self._key(lead_id, handoff_id), ConsistentRead=True
        )
        return "Item" in response

    def mark_published(self, lead_id: str, handoff_id: str, message_id: str) -> None:
        """Tried again here when the table fails to answer (the Put is idempotent): a
        stream retry after a published message would reach sales a second time."""
        for attempt in range(MARK_ATTEMPTS):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **self._key(lead_id, handoff_id),
                        **serialize({"message_id": message_id}),
                    },
                )
                return
            except (ClientError, BotoCoreError):
                if attempt + 1 == MARK_ATTEMPTS:
                    raise
                time.sleep(0.05 * 2**attempt)

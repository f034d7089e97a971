"""The scheduler's due index: the sparse, sharded ``due`` GSI of the table."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from shared.adapters.items import (
    DUE_INDEX,
    DUE_SHARDS,
    PROFILE,
    condition_failed,
    deserialize,
    lead_pk,
    serialize,
)
from shared.domain.clock import to_iso
from shared.domain.jobs import DueLead

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class DynamoDueIndex:
    """The sparse, sharded ``due`` GSI: Query per shard, conditional lease on the profile."""

    shards = DUE_SHARDS

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def due(self, shard: int, now: datetime, limit: int) -> list[DueLead]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :shard AND due_at <= :now",
            ExpressionAttributeValues=serialize({":shard": shard, ":now": to_iso(now)}),
            PaginationConfig={"MaxItems": limit, "PageSize": limit},
        )
        return [
            DueLead(
                lead_id=str(item["lead_id"]),
                due_at=str(item["due_at"]),
                program_id=str(item["program_id"]),
                step_id=item.get("step_id"),
            )
            for page in pages
            for item in map(deserialize, page.get("Items", []))
        ]

    def lease(self, lead: DueLead, until: datetime) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=serialize({"pk": lead_pk(lead.lead_id), "sk": PROFILE}),
                # Bump the version too, so a writer holding an older copy re-reads.
                UpdateExpression="SET due_at = :until ADD version :one",
                ConditionExpression="due_at = :seen",
                ExpressionAttributeValues=serialize(
                    {":until": to_iso(until), ":seen": lead.due_at, ":one": 1}
                ),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

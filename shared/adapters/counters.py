"""Reading the daily report counters (``COUNTER#<day>`` items): one Query per day."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import TYPE_CHECKING, Any

from shared.adapters.dynamodb import counter_key, counter_pk, deserialize, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class DynamoCounterReader:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def day(self, day: date) -> list[tuple[str, dict[str, int]]]:
        """The day's counters as (counter key, numeric metrics), each the sum of its
        shards."""
        found: dict[str, Counter[str]] = {}
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": serialize({":pk": counter_pk(day)}),
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._client.query(**kwargs)
            for raw in response.get("Items", []):
                item = deserialize(raw)
                metrics = {
                    k: int(v)
                    for k, v in item.items()
                    if k not in ("pk", "sk") and isinstance(v, int | float)
                }
                found.setdefault(counter_key(str(item["sk"])), Counter()).update(metrics)
            start = response.get("LastEvaluatedKey")
            if not start:
                return [(key, dict(metrics)) for key, metrics in found.items()]

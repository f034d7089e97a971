"""Reading the daily report counters (``COUNTER#<day>`` items): one Query per day."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from shared.adapters.items import counter_pk, deserialize, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class DynamoCounterReader:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def day(self, day: date) -> list[tuple[str, dict[str, int]]]:
        """The day's counter items as (sort key, numeric metrics)."""
        found: list[tuple[str, dict[str, int]]] = []
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
                found.append((str(item["sk"]), metrics))
            start = response.get("LastEvaluatedKey")
            if not start:
                return found

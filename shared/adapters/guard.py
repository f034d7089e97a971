"""The sending guard's switch (``SENDING`` / ``GUARD``), the send jobs queued per
Japanese day (``SENDING`` / ``QUEUED#<day>``, for the warm-up cap), and each day's email
counters added up over every email."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.counters import DynamoCounterReader
from shared.adapters.items import condition_failed, deserialize, serialize
from shared.domain.clock import from_iso, to_iso
from shared.domain.funnel import EMAIL_PREFIX
from shared.domain.guard import GuardState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

SENDING_PK = "SENDING"
GUARD_SK = "GUARD"


def queued_sk(day: date) -> str:
    return f"QUEUED#{day.isoformat()}"


class DynamoSendingSwitch:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._counters = DynamoCounterReader(client, table_name)

    def _key(self, sk: str) -> dict[str, Any]:
        return serialize({"pk": SENDING_PK, "sk": sk})

    def state(self) -> GuardState:
        response = self._client.get_item(
            TableName=self._table, Key=self._key(GUARD_SK), ConsistentRead=True
        )
        raw = response.get("Item")
        if not raw:
            return GuardState()
        item = deserialize(raw)
        changed = item.get("changed_at")
        return GuardState(
            paused=bool(item.get("paused")),
            reason=item.get("reason"),
            changed_at=from_iso(str(changed)) if changed else None,
            by=item.get("by"),
            baseline={
                str(day): {k: int(v) for k, v in counts.items()}
                for day, counts in (item.get("baseline") or {}).items()
            },
        )

    def pause(self, reason: str, at: datetime, by: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(GUARD_SK),
                UpdateExpression=(
                    "SET paused = :true, reason = :reason, changed_at = :at, #by = :by"
                ),
                # Paused once: a second tick (or operator) finds it paused already.
                ConditionExpression="attribute_not_exists(paused) OR paused = :false",
                ExpressionAttributeNames={"#by": "by"},
                ExpressionAttributeValues=serialize(
                    {
                        ":true": True,
                        ":false": False,
                        ":reason": reason,
                        ":at": to_iso(at),
                        ":by": by,
                    }
                ),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def resume(self, at: datetime, by: str, baseline: Mapping[str, Mapping[str, int]]) -> None:
        item = {
            "pk": SENDING_PK,
            "sk": GUARD_SK,
            "paused": False,
            "changed_at": to_iso(at),
            "by": by,
            "baseline": {day: dict(counts) for day, counts in baseline.items()},
        }
        self._client.put_item(TableName=self._table, Item=serialize(item))

    def counts(self, days: Sequence[date]) -> dict[date, dict[str, int]]:
        found: dict[date, dict[str, int]] = {}
        for day in days:
            total: Counter[str] = Counter()
            for key, metrics in self._counters.day(day):
                if key.startswith(EMAIL_PREFIX):
                    total.update(metrics)
            found[day] = dict(total)
        return found

    def queued(self, day: date) -> int:
        response = self._client.get_item(
            TableName=self._table, Key=self._key(queued_sk(day)), ConsistentRead=True
        )
        item = deserialize(response["Item"]) if response.get("Item") else {}
        return int(item.get("jobs", 0))

    def add_queued(self, day: date, jobs: int) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(queued_sk(day)),
            UpdateExpression="ADD jobs :n",
            ExpressionAttributeValues=serialize({":n": jobs}),
        )

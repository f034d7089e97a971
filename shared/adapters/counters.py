"""Reading the daily report counters (``COUNTER#<day>`` items): one Query per day."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING

from shared.adapters.items import counter_key, counter_pk, deserialize, serialize
from shared.domain.funnel import email_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class DynamoCounterReader:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def day(self, day: date | None) -> list[tuple[str, dict[str, int]]]:
        """The day's counters (None: the running totals) as (counter key, numeric
        metrics), each the sum of its shards."""
        found: dict[str, Counter[str]] = {}
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=serialize({":pk": counter_pk(day)}),
        )
        for page in pages:
            for raw in page.get("Items", []):
                item = deserialize(raw)
                metrics = {
                    k: int(v)
                    for k, v in item.items()
                    if k not in ("pk", "sk") and isinstance(v, int | float)
                }
                found.setdefault(counter_key(str(item["sk"])), Counter()).update(metrics)
        return [(key, dict(metrics)) for key, metrics in found.items()]


class CachedVariantResults:
    """A step's variant results from the daily counters (one Query per day), kept for
    ``ttl`` seconds: a bandit needs its results, not the latest to the second, and a
    batch of sends then reads them once."""

    def __init__(
        self,
        reader: DynamoCounterReader,
        today: Callable[[], date],
        ttl: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._today = today
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str, date], tuple[float, dict[str, dict[str, int]]]] = {}

    def of(self, program_id: str, step_id: str, since: date) -> Mapping[str, Mapping[str, int]]:
        key = (program_id, step_id, since)
        cached = self._cache.get(key)
        if cached is not None and self._monotonic() - cached[0] < self._ttl:
            return cached[1]
        prefix = email_key(program_id, step_id, "")
        found: dict[str, Counter[str]] = {}
        day, today = since, self._today()
        while day <= today:
            for counter, metrics in self._reader.day(day):
                if counter.startswith(prefix):
                    found.setdefault(counter.removeprefix(prefix), Counter()).update(metrics)
            day += timedelta(days=1)
        results = {label: dict(metrics) for label, metrics in found.items()}
        self._cache[key] = (self._monotonic(), results)
        return results

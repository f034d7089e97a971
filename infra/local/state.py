"""``--state DIR``: what of a local run survives to the next one.

moto server keeps everything in memory and 5.2.5 has no persistence (its
``/moto-api/data.json`` is a view, not something it can load back). So the local stack
saves what matters itself when it stops: the table's items (leads, timelines, due
index, ledgers) and the clock's offset. Messages in flight, sent emails and stream
records do not survive; leased leads become due again when their lease runs out.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

FILE = "local-state.json"
BATCH = 25  # BatchWriteItem's maximum


def save(directory: Path, client: DynamoDBClient, table: str, offset: timedelta) -> int:
    """Write the table's items and the clock's offset; the number of items.

    As JSON in DynamoDB's typed form (the table holds no binary attributes).
    """
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    directory.mkdir(parents=True, exist_ok=True)
    state = {"clock_offset_s": offset.total_seconds(), "items": items}
    temporary = directory / f"{FILE}.tmp"
    temporary.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    temporary.replace(directory / FILE)  # a crash mid-write keeps the previous state
    return len(items)


def load(directory: Path, client: DynamoDBClient, table: str) -> timedelta | None:
    """Put the saved items back; the saved clock offset, or None if nothing was saved."""
    path = directory / FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    items = state["items"]
    for start in range(0, len(items), BATCH):
        requests: list[Any] = [{"PutRequest": {"Item": i}} for i in items[start : start + BATCH]]
        pending: Any = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
    return timedelta(seconds=float(state["clock_offset_s"]))

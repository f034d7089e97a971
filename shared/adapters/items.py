"""The table's keys, and its items to and from Python values (``shared/adapters/dynamodb.py``
documents the table). A module of its own, so that an adapter that needs no more (the
scheduler's due index) does not import the lead repository and the models it reads.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from shared.adapters.attributes import TypeDeserializer, TypeSerializer
from shared.normalize import email_key

DUE_SHARDS = 16
DUE_INDEX = "due"
PROFILE = "PROFILE"
COUNTER_SHARDS = 8

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


RUNNING_TOTALS = "total"


def counter_pk(day: date | None) -> str:
    """A day's report counters (``COUNTER#<JST day>``), or the running totals
    (``COUNTER#total``: what stands now, such as each customer segment's size)."""
    return f"COUNTER#{day.isoformat() if day is not None else RUNNING_TOTALS}"


def counter_sk(key: str, lead_id: str) -> str:
    """The shard of counter ``key`` a lead's changes add to (``<key>@<n>``).

    Every change of a lead writes its counts in its own transaction, and DynamoDB cancels
    transactions that touch one item at the same moment: one item per counter would
    make every concurrent form post or SES event of a send conflict. Spread over
    COUNTER_SHARDS items (by lead, so one lead's counts stay together), concurrent
    changes rarely meet; readers add the shards up (``counter_key``).
    """
    return f"{key}@{zlib.crc32(lead_id.encode()) % COUNTER_SHARDS}"


def counter_key(sk: str) -> str:
    """The counter a counter item's sort key belongs to (a shard's, or an unsharded one)."""
    return sk.partition("@")[0]


def lead_pk(lead_id: str) -> str:
    return f"LEAD#{lead_id}"


def email_pk(email: str) -> str:
    return f"EMAIL#{email_key(email)}"


def erased_pk(email: str) -> str:
    # Only a hash of the address survives an erasure: enough to refuse it, not to read it.
    return "ERASED#" + hashlib.sha256(email_key(email).encode()).hexdigest()


def mail_sk(message_id: str) -> str:
    """One email's record under its lead (``MAIL#<SES message id>``)."""
    return f"MAIL#{message_id}"


def seats_pk(event_id: str) -> str:
    """An event's seats (``EVENT#<event id>``, sk ``SEATS``)."""
    return f"EVENT#{event_id}"


SEATS_SK = "SEATS"


def due_shard(lead_id: str) -> int:
    # Lead ids are random hex, so their leading digits spread leads evenly.
    return int(lead_id[:8], 16) % DUE_SHARDS


def _numbers(value: Any) -> Any:
    """DynamoDB numbers are decimals: floats (scores in details) go in as their text."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(v) for v in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_numbers(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """Decimals back to int or float, so details read as they were written."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# Kept as Decimal: the score units need their full precision.
_EXACT = frozenset({"score_units"})


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return {k: v if k in _EXACT else _plain(v) for k, v in values.items()}


def condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"

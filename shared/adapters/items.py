"""The table's keys, and its items to and from Python values: one DynamoDB table
(single-table design). A module of its own, so that an adapter that needs no more (the
scheduler's due index) does not import the lead repository and the models it reads.

Items and access patterns:

| item           | pk              | sk                     | access pattern             |
| -------------- | --------------- | ---------------------- | -------------------------- |
| lead profile   | ``LEAD#<id>``   | ``PROFILE``            | lead by id: GetItem        |
| email claim    | ``EMAIL#<key>`` | ``EMAIL``              | lead by email: 2 GetItems  |
| activity       | ``LEAD#<id>``   | ``ACT#<at>#<id>``      | timeline: Query, newest 1st|
| consent record | ``LEAD#<id>``   | ``CONSENT#<at>#<id>``  | consent history: Query     |
| report counter | ``COUNTER#<d>`` | ``<kind>@<shard>``     | a day's counters: Query    |
| running total  | ``COUNTER#total``| ``customers@<shard>`` | what stands now: Query     |
| email record   | ``LEAD#<id>``   | ``MAIL#<message id>``  | one email's opens: GetItem |
| outcome        | ``OUTCOME#<m>`` | ``<at>#<lead id>``     | a month's outcomes: Query  |
| visitor link   | ``VISITOR#<v>`` | ``LINK``               | visitor's lead: GetItem    |
| page view      | ``VISITOR#<v>`` | ``VISIT#<view id>``    | recent views: Query (TTL)  |
| revisit alert  | ``LEAD#<id>``   | ``ALERT#revisit``      | once per period: cond. Set |
| send record    | ``LEAD#<id>``   | ``SEND#<job key>``     | claim: conditional Put     |
| request marker | ``LEAD#<id>``   | ``EVENT#<key>``        | read with the lead (TTL)   |
| hand-off mark  | ``LEAD#<id>``   | ``HANDOFF#<id>``       | once per qualification     |
| erased address | ``ERASED#<h>``  | ``ERASED``             | read with the email claim  |
| sending guard  | ``SENDING``     | ``GUARD``              | each tick: GetItem         |
| jobs queued    | ``SENDING``     | ``QUEUED#<d>``         | warm-up cap: ADD per tick  |
| event seats    | ``EVENT#<e>``   | ``SEATS``              | with the lead: cond. Put   |

An event with a capacity (``<e>``: its id in events.yaml) keeps who holds its places
(``holders``, a string set of lead ids) and who waits (``waiting``, lead id -> since when)
on one item, read with the lead whose registration changes it and written in the same
transaction, conditional on its ``version``.

Page views are kept under the anonymous visitor (``<v>``: the snippet's random id) for
the attribution window (``expires_at``); no IP address is stored. The link names the
lead the visitor is (a form post or a signed email reference); the lead profile's
``page_groups`` string set is added to with ``ADD`` in the scoring transaction.

Report counters are per Japanese day ``<d>``, one numeric attribute per metric, added
to atomically (``ADD``): under ``stage`` the stage transitions (``new>lead``, ``lead>mql``,
``lead>dormant``, ``dormant>lead``, ...); under ``list`` the leads that stopped being
mailable (``unsubscribed``, ``suppressed:bounce``, ``suppressed:complaint``,
``suppressed:rejected``, ``sunset:<stage>``), apart from ``stage`` so that stage maths
never sees them; under ``email#<program>#<step>#<variant>`` the SES events. Every count
is written in the transaction of the change that caused it (``revise``), so a retried or
duplicate request counts once (names and rules: ``shared.domain.funnel``). Each counter is kept
in COUNTER_SHARDS items (``<kind>@<n>``, by lead) so that concurrent transactions rarely
touch the same item; readers add them up.

The ``due`` GSI is sparse and sharded: only a profile with a pending nurture step
carries ``due_shard`` (0..DUE_SHARDS-1, from the lead id) and ``due_at`` (fixed-width
UTC ISO text), so the scheduler's Query per shard touches due leads only. No request
or schedule path scans the table.

A disclosure (``holdings``) reads the lead's whole partition with one paged Query, and
the items about it kept elsewhere (the address's claim and erasure mark, its outcomes)
with one BatchGetItem.

Every change of a lead goes through ``DynamoLeadRepository.revise``
(``shared.adapters.leads``): one read (the profile, with the email's record and the
request's marker in one BatchGetItem), one
write conditional on the profile's ``version`` (optimistic locking) that SETs or REMOVEs
only the attributes that changed, with everything the change records in the same
transaction. The email claim is created in the same transaction as the lead, so two
concurrent first posts for one address cannot make two leads.
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
from shared.domain.normalize import email_key

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

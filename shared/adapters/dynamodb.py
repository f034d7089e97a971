"""Leads in one DynamoDB table (single-table design).

Items and access patterns:

| item           | pk              | sk                     | access pattern             |
| -------------- | --------------- | ---------------------- | -------------------------- |
| lead profile   | ``LEAD#<id>``   | ``PROFILE``            | lead by id: GetItem        |
| email claim    | ``EMAIL#<key>`` | ``EMAIL``              | lead by email: 2 GetItems  |
| activity       | ``LEAD#<id>``   | ``ACT#<at>#<id>``      | timeline: Query, newest 1st|
| consent record | ``LEAD#<id>``   | ``CONSENT#<at>#<id>``  | consent history: Query     |
| report counter | ``COUNTER#<d>`` | the counter's kind     | a day's counters: Query    |
| email record   | ``LEAD#<id>``   | ``MAIL#<message id>``  | one email's opens: GetItem |
| outcome        | ``OUTCOME#<m>`` | ``<at>#<lead id>``     | a month's outcomes: Query  |
| visitor link   | ``VISITOR#<v>`` | ``LINK``               | visitor's lead: GetItem    |
| page view      | ``VISITOR#<v>`` | ``VISIT#<view id>``    | recent views: Query (TTL)  |
| revisit alert  | ``LEAD#<id>``   | ``ALERT#revisit``      | once per period: cond. Set |

Page views are kept under the anonymous visitor (``<v>``: the snippet's random id) for
the attribution window (``expires_at``); no IP address is stored. The link names the
lead the visitor is (a form post or a signed email reference); the lead profile's
``page_groups`` string set is added to with ``ADD`` in the scoring transaction.

Report counters are per Japanese day ``<d>``, one numeric attribute per metric, added
to atomically (``ADD``): under ``stage`` the stage transitions (``new>lead``, ``lead>mql``,
``lead>dormant``, ``dormant>lead``, ...); under ``list`` the leads that stopped being
mailable (``unsubscribed``, ``suppressed:bounce``, ``suppressed:complaint``,
``suppressed:rejected``, ``sunset:<stage>``), apart from ``stage`` so that stage maths
never sees them; under ``email#<program>#<step>#<variant>`` the SES events. Each stage
or list count follows the version-checked write that changed the lead, so a retried or
duplicate event counts once (names: ``shared.funnel``).

The ``due`` GSI is sparse and sharded: only a profile with a pending nurture step
carries ``due_shard`` (0..DUE_SHARDS-1, from the lead id) and ``due_at`` (fixed-width
UTC ISO text), so the scheduler's Query per shard touches due leads only. No request
or schedule path scans the table.

Every write to a profile is conditional on its ``version`` (optimistic locking), and
the email claim is created in the same transaction as the lead, so two concurrent
first posts for one address cannot make two leads.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.attributes import TypeDeserializer, TypeSerializer
from shared.clock import from_iso, to_iso
from shared.leads import Activity, Consent, Lead, Outcome, SendRecord
from shared.machine_engagement import MailRecord
from shared.normalize import email_key
from shared.repository import REVIEW, DueLead, EmailTaken, Record, VersionConflict
from shared.visits import PageView

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from shared.qualification import EventCommit

DUE_SHARDS = 16
# How long an email's record of opens and clicks is kept (time to live).
MAIL_RECORD_DAYS = 400
DUE_INDEX = "due"
PROFILE = "PROFILE"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def counter_pk(day: date) -> str:
    """A day's report counters (``COUNTER#<JST day>``)."""
    return f"COUNTER#{day.isoformat()}"


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


def lead_item(lead: Lead) -> dict[str, Any]:
    item: dict[str, Any] = lead.model_dump(mode="json", exclude_none=True)
    # A number, not the JSON string: engagement events ADD to it atomically.
    item.update(pk=lead_pk(lead.lead_id), sk=PROFILE, entity="lead", score_units=lead.score_units)
    # A string set, so a page view adds its group atomically (``ADD``); never empty.
    item.pop("page_groups", None)
    if lead.page_groups:
        item["page_groups"] = set(lead.page_groups)
    enrolment = lead.enrolment
    if enrolment is not None and enrolment.completed_at is None:
        item["program_id"] = enrolment.program_id
        if enrolment.step_id:
            item["step_id"] = enrolment.step_id
        if enrolment.due_at is not None and lead.mailable:
            item["due_shard"] = due_shard(lead.lead_id)
            item["due_at"] = to_iso(enrolment.due_at)
    elif lead.review_at is not None and lead.mailable:
        item["program_id"] = REVIEW
        item["due_shard"] = due_shard(lead.lead_id)
        item["due_at"] = to_iso(lead.review_at)
    return item


def activity_item(activity: Activity) -> dict[str, Any]:
    item: dict[str, Any] = activity.model_dump(mode="json", exclude_none=True)
    item.update(
        pk=lead_pk(activity.lead_id),
        sk=f"ACT#{to_iso(activity.at)}#{activity.activity_id}",
        entity="activity",
    )
    return item


def send_item(record: SendRecord) -> dict[str, Any]:
    item: dict[str, Any] = record.model_dump(mode="json", exclude_none=True)
    item.update(pk=lead_pk(record.lead_id), sk=f"SEND#{record.key}", entity="send")
    return item


def outcome_pk(month: date) -> str:
    """The outcomes recorded in a UTC month (``OUTCOME#<yyyy-mm>``)."""
    return f"OUTCOME#{month.strftime('%Y-%m')}"


def outcome_item(record: Outcome) -> dict[str, Any]:
    item: dict[str, Any] = record.model_dump(mode="json")
    item.update(
        pk=outcome_pk(record.at.astimezone(UTC).date()),
        sk=f"{to_iso(record.at)}#{record.lead_id}",
        entity="outcome",
    )
    return item


def record_item(lead_id: str, record: Record) -> dict[str, Any]:
    if isinstance(record, Consent):
        return consent_item(lead_id, record)
    if isinstance(record, SendRecord):
        return send_item(record)
    if isinstance(record, Outcome):
        return outcome_item(record)
    return activity_item(record)


def consent_item(lead_id: str, consent: Consent) -> dict[str, Any]:
    item: dict[str, Any] = consent.model_dump(mode="json", exclude_none=True)
    item.update(
        pk=lead_pk(lead_id),
        sk=f"CONSENT#{to_iso(consent.at)}#{consent.consent_id}",
        entity="consent",
        lead_id=lead_id,
    )
    return item


def _lead_of(record: Record) -> str:
    if isinstance(record, Consent):
        raise TypeError("a consent record is written with its lead (replace or create)")
    return record.lead_id


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _without_keys(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "entity")}


class DynamoLeadRepository:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- reads -------------------------------------------------------------------------

    def get(self, lead_id: str) -> Lead | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": PROFILE}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Lead.model_validate(_without_keys(deserialize(item))) if item else None

    def find_by_email(self, email: str) -> Lead | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": email_pk(email), "sk": "EMAIL"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        return self.get(str(deserialize(item)["lead_id"]))

    def timeline(self, lead_id: str, limit: int = 100) -> list[Activity]:
        return [
            Activity.model_validate(_without_keys(item))
            for item in self._query_prefix(lead_id, "ACT#", limit)
        ]

    def history(self, lead_id: str) -> list[Activity]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id), ":prefix": "ACT#"}),
        )
        return [
            Activity.model_validate(_without_keys(deserialize(item)))
            for page in pages
            for item in page.get("Items", [])
        ]

    def outcomes(self, start: date, end: date) -> list[Outcome]:
        found: list[Outcome] = []
        month = start.replace(day=1)
        while month <= end:
            pages = self._client.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues=serialize(
                    {
                        ":pk": outcome_pk(month),
                        ":from": start.isoformat(),
                        ":to": (end + timedelta(days=1)).isoformat(),
                    }
                ),
            )
            found.extend(
                Outcome.model_validate(_without_keys(deserialize(item)))
                for page in pages
                for item in page.get("Items", [])
            )
            month = (month + timedelta(days=32)).replace(day=1)
        return found

    def consents(self, lead_id: str) -> list[Consent]:
        return [
            Consent.model_validate(_without_keys(item))
            for item in self._query_prefix(lead_id, "CONSENT#", 100)
        ]

    def _query_prefix(self, lead_id: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id), ":prefix": prefix}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [deserialize(item) for item in response.get("Items", [])]

    # -- writes ------------------------------------------------------------------------

    def create(self, lead: Lead, records: Sequence[Record]) -> None:
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(
                        {
                            "pk": email_pk(lead.email),
                            "sk": "EMAIL",
                            "entity": "email",
                            "lead_id": lead.lead_id,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(lead_item(lead)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            *self._record_puts(lead.lead_id, records),
        ]
        if not self._transact(items):
            raise EmailTaken(lead.lead_id)

    def replace(self, lead: Lead, expected_version: int, records: Sequence[Record]) -> None:
        if not records:
            # One item: a conditional Put does it without a transaction's double cost.
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=serialize(lead_item(lead)),
                    ConditionExpression="version = :expected",
                    ExpressionAttributeValues=serialize({":expected": expected_version}),
                )
            except ClientError as exc:
                if _condition_failed(exc):
                    raise VersionConflict(lead.lead_id) from exc
                raise
            return
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(lead_item(lead)),
                    "ConditionExpression": "version = :expected",
                    "ExpressionAttributeValues": serialize({":expected": expected_version}),
                }
            },
            *self._record_puts(lead.lead_id, records),
        ]
        if not self._transact(items):
            raise VersionConflict(lead.lead_id)

    def append(self, records: Sequence[Record]) -> None:
        self._batch_write(
            [{"PutRequest": {"Item": serialize(record_item(_lead_of(r), r))}} for r in records]
        )

    def _batch_write(self, requests: list[Any]) -> None:
        """BatchWriteItem in chunks of 25, retrying what DynamoDB left unprocessed."""
        pending, throttled = list(requests), 0
        while pending:
            batch, pending = pending[:25], pending[25:]
            response = self._client.batch_write_item(RequestItems={self._table: batch})
            unprocessed = list(response.get("UnprocessedItems", {}).get(self._table, []))
            if unprocessed:
                throttled += 1
                if throttled > 10:
                    raise RuntimeError(f"{len(unprocessed)} writes were not done (throttled)")
                time.sleep(min(0.05 * 2**throttled, 1.0))  # the table is throttling: back off
            pending = unprocessed + pending

    def erase(self, lead_id: str) -> bool:
        lead = self.get(lead_id)
        if lead is None:
            return False
        # The suppression first: if the deletion stops half-way, the address is safe.
        self._client.put_item(
            TableName=self._table,
            Item=serialize({"pk": erased_pk(lead.email), "sk": "ERASED", "entity": "erased"}),
        )
        keys: list[dict[str, Any]] = [{"pk": email_pk(lead.email), "sk": "EMAIL"}]
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": serialize({":pk": lead_pk(lead_id)}),
                "ProjectionExpression": "pk, sk",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._client.query(**kwargs)
            keys.extend(deserialize(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        self._batch_write([{"DeleteRequest": {"Key": serialize(k)}} for k in keys])
        return True

    def is_erased(self, email: str) -> bool:
        response = self._client.get_item(
            TableName=self._table, Key=serialize({"pk": erased_pk(email), "sk": "ERASED"})
        )
        return "Item" in response

    def _record_puts(
        self, lead_id: str, records: Sequence[Record]
    ) -> list[TransactWriteItemTypeDef]:
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(record_item(lead_id, r)),
                }
            }
            for r in records
        ]

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> bool:
        """Write all or nothing; False when a condition failed or a transaction collided."""
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                retryable = {"ConditionalCheckFailed", "TransactionConflict", "None"}
                if all(r.get("Code", "None") in retryable for r in reasons):
                    return False
            if code == "TransactionConflictException":
                return False
            raise
        return True


class DynamoSendLedger:
    """Send records (``SEND#<key>`` under the lead) with conditional creation."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, lead_id: str, key: str, at: datetime) -> bool:
        record = SendRecord(lead_id=lead_id, key=key, status="sending", at=at)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(send_item(record)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def release(self, lead_id: str, key: str) -> None:
        self._client.delete_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": f"SEND#{key}"}),
            ConditionExpression="#status = :sending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialize({":sending": "sending"}),
        )


class DynamoDueIndex:
    """The sparse, sharded ``due`` GSI: Query per shard, conditional lease on the profile."""

    shards = DUE_SHARDS

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def due(self, shard: int, now: datetime, limit: int) -> list[DueLead]:
        found: list[DueLead] = []
        start: dict[str, Any] | None = None
        while len(found) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "due_shard = :shard AND due_at <= :now",
                "ExpressionAttributeValues": serialize({":shard": shard, ":now": to_iso(now)}),
                "Limit": limit - len(found),
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._client.query(**kwargs)
            for raw in response.get("Items", []):
                item = deserialize(raw)
                found.append(
                    DueLead(
                        lead_id=str(item["lead_id"]),
                        due_at=str(item["due_at"]),
                        program_id=str(item["program_id"]),
                        step_id=item.get("step_id"),
                    )
                )
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return found

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
            if _condition_failed(exc):
                return False
            raise
        return True


class DynamoScoreStore:
    """Atomic score units on the profile, daily-cap allowances and report counters."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def count(self, day: date, key: str, metric: str, by: int = 1) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=serialize({"pk": counter_pk(day), "sk": key}),
            UpdateExpression="ADD #metric :by",
            ExpressionAttributeNames={"#metric": metric},
            ExpressionAttributeValues=serialize({":by": by}),
        )

    def commit_event(self, commit: EventCommit) -> str:
        expires = int(commit.at.timestamp()) + 30 * 86400
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(
                        {
                            "pk": lead_pk(commit.lead_id),
                            "sk": f"EVENT#{commit.key}",
                            "award": commit.award,
                            "expires_at": expires,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if commit.units or commit.engaged_at is not None or commit.page_groups:
            expression = "ADD score_units :units, version :one"
            values: dict[str, Any] = {":units": commit.units, ":one": 1}
            if commit.page_groups:
                expression += ", page_groups :groups"
                values[":groups"] = set(commit.page_groups)
            if commit.engaged_at is not None:
                expression += " SET last_engaged_at = :at"
                values[":at"] = to_iso(commit.engaged_at)
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": serialize({"pk": lead_pk(commit.lead_id), "sk": PROFILE}),
                        "UpdateExpression": expression,
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": serialize(values),
                    }
                }
            )
        elif commit.mail is not None:
            # An email record only beside its lead: never one left after an erasure.
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": serialize({"pk": lead_pk(commit.lead_id), "sk": PROFILE}),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            )
        profile_at = len(items) - 1 if len(items) > 1 else None
        allowances_at = len(items)
        for rule, day, points, cap in commit.allowances:
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": serialize(
                            {"pk": lead_pk(commit.lead_id), "sk": f"CAP#{day.isoformat()}#{rule}"}
                        ),
                        "UpdateExpression": "ADD used :points SET expires_at = :expires",
                        "ConditionExpression": "attribute_not_exists(used) OR used <= :room",
                        "ExpressionAttributeValues": serialize(
                            {":points": points, ":room": cap - points, ":expires": expires}
                        ),
                    }
                }
            )
        if commit.counter is not None:
            metrics = sorted(commit.counter.metrics.items())
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": serialize(
                            {"pk": counter_pk(commit.counter.day), "sk": commit.counter.key}
                        ),
                        "UpdateExpression": "ADD "
                        + ", ".join(f"#m{i} :m{i}" for i in range(len(metrics))),
                        "ExpressionAttributeNames": {
                            f"#m{i}": name for i, (name, _) in enumerate(metrics)
                        },
                        "ExpressionAttributeValues": serialize(
                            {f":m{i}": by for i, (_, by) in enumerate(metrics)}
                        ),
                    }
                }
            )
        mail_at = None
        if commit.mail is not None:
            mail_at = len(items)
            items.append({"Put": self._mail_put(commit.mail, commit.at)})
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons", [])
            failed = [r.get("Code", "None") == "ConditionalCheckFailed" for r in reasons]
            if failed and failed[0]:
                return "duplicate"
            for index, (rule, *_rest) in enumerate(commit.allowances):
                if len(failed) > allowances_at + index and failed[allowances_at + index]:
                    return f"cap:{rule}"
            if mail_at is not None and len(failed) > mail_at and failed[mail_at]:
                return "conflict"
            if profile_at is not None and len(failed) > profile_at and failed[profile_at]:
                return "duplicate"  # the lead is gone (erased): nothing left to score
            raise
        return "committed"

    def _mail_put(self, record: MailRecord, at: datetime) -> Any:
        item = {
            "pk": lead_pk(record.lead_id),
            "sk": mail_sk(record.message_id),
            **record.model_dump(mode="json", exclude={"lead_id"}),
            # Kept a little longer than anything that reads it: late clicks, reports.
            "expires_at": int(at.timestamp()) + MAIL_RECORD_DAYS * 86400,
        }
        put: dict[str, Any] = {"TableName": self._table, "Item": serialize(item)}
        if record.version <= 1:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :seen"
            put["ExpressionAttributeValues"] = serialize({":seen": record.version - 1})
        return put

    def mail_record(self, lead_id: str, message_id: str) -> MailRecord | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": mail_sk(message_id)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return MailRecord.model_validate({**deserialize(item), "lead_id": lead_id})

    def recorded_award(self, lead_id: str, key: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": f"EVENT#{key}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        award: dict[str, Any] = deserialize(item).get("award") or {}
        return award


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
        self._client.put_item(
            TableName=self._table,
            Item={**self._key(lead_id, handoff_id), **serialize({"message_id": message_id})},
        )


def visitor_pk(visitor_id: str) -> str:
    """An anonymous website visitor (``VISITOR#<id>``): its link to a lead and its views."""
    return f"VISITOR#{visitor_id}"


VISITOR_LINK = "LINK"
# How long a visitor's link to its lead is kept after it was last made.
VISITOR_LINK_DAYS = 400
REVISIT_ALERT = "ALERT#revisit"


class DynamoVisitStore:
    """Page views under the visitor (``VISIT#<view id>``, with a TTL), the visitor's link
    to its lead, and the lead's revisit-alert claim. An anonymous view is one GetItem
    (the link, eventually consistent) and one PutItem."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def linked_lead(self, visitor_id: str) -> str | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": visitor_pk(visitor_id), "sk": VISITOR_LINK}),
            ProjectionExpression="lead_id",
        )
        item = response.get("Item")
        return str(deserialize(item)["lead_id"]) if item else None

    def put_view(self, view: PageView, expires_at: datetime) -> bool:
        item = {
            "pk": visitor_pk(view.visitor_id),
            "sk": f"VISIT#{view.view_id}",
            "entity": "visit",
            **view.as_item(),
            "expires_at": int(expires_at.timestamp()),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def view(self, visitor_id: str, view_id: str) -> PageView | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": visitor_pk(visitor_id), "sk": f"VISIT#{view_id}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _page_view(deserialize(item)) if item else None

    def views_since(self, visitor_id: str, since: datetime) -> list[PageView]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :visit)",
            ExpressionAttributeValues=serialize(
                {":pk": visitor_pk(visitor_id), ":visit": "VISIT#"}
            ),
            ConsistentRead=True,
        )
        views = [_page_view(deserialize(item)) for page in pages for item in page.get("Items", [])]
        # TTL deletes lazily: an expired view may still be read, never attributed.
        return [v for v in views if v.at >= since]

    def link(self, visitor_id: str, lead_id: str, at: datetime, via: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=serialize(
                {
                    "pk": visitor_pk(visitor_id),
                    "sk": VISITOR_LINK,
                    "entity": "visitor",
                    "lead_id": lead_id,
                    "linked_at": to_iso(at),
                    "via": via,
                    "expires_at": int(at.timestamp()) + VISITOR_LINK_DAYS * 86400,
                }
            ),
        )

    def claim_alert(
        self, lead_id: str, at: datetime, period: timedelta
    ) -> tuple[bool, datetime | None]:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=serialize({"pk": lead_pk(lead_id), "sk": REVISIT_ALERT}),
                UpdateExpression="SET last_at = :at, expires_at = :expires",
                ConditionExpression="attribute_not_exists(last_at) OR last_at <= :cutoff",
                ExpressionAttributeValues=serialize(
                    {
                        ":at": to_iso(at),
                        ":cutoff": to_iso(at - period),
                        ":expires": int((at + period).timestamp()) + 86400,
                    }
                ),
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False, None
            raise
        previous = deserialize(response.get("Attributes") or {}).get("last_at")
        return True, from_iso(previous) if previous else None

    def release_alert(self, lead_id: str, at: datetime, previous: datetime | None) -> None:
        key = serialize({"pk": lead_pk(lead_id), "sk": REVISIT_ALERT})
        try:
            if previous is None:
                self._client.delete_item(
                    TableName=self._table,
                    Key=key,
                    ConditionExpression="last_at = :at",
                    ExpressionAttributeValues=serialize({":at": to_iso(at)}),
                )
            else:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET last_at = :previous",
                    ConditionExpression="last_at = :at",
                    ExpressionAttributeValues=serialize(
                        {":at": to_iso(at), ":previous": to_iso(previous)}
                    ),
                )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise


def _page_view(item: Mapping[str, Any]) -> PageView:
    return PageView(
        visitor_id=str(item["visitor_id"]),
        view_id=str(item["view_id"]),
        url=str(item["url"]),
        path=str(item["path"]),
        title=str(item.get("title", "")),
        seconds=int(item.get("seconds", 0)),
        at=from_iso(str(item["at"])),
        referrer=item.get("referrer"),
    )

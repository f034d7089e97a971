"""Leads in one DynamoDB table (single-table design).

Items and access patterns:

| item           | pk              | sk                     | access pattern             |
| -------------- | --------------- | ---------------------- | -------------------------- |
| lead profile   | ``LEAD#<id>``   | ``PROFILE``            | lead by id: GetItem        |
| email claim    | ``EMAIL#<key>`` | ``EMAIL``              | lead by email: 2 GetItems  |
| activity       | ``LEAD#<id>``   | ``ACT#<at>#<id>``      | timeline: Query, newest 1st|
| consent record | ``LEAD#<id>``   | ``CONSENT#<at>#<id>``  | consent history: Query     |

The ``due`` GSI is sparse and sharded: only a profile with a pending nurture step
carries ``due_shard`` (0..DUE_SHARDS-1, from the lead id) and ``due_at`` (fixed-width
UTC ISO text), so the scheduler's Query per shard touches due leads only. No request
or schedule path scans the table.

Every write to a profile is conditional on its ``version`` (optimistic locking), and
the email claim is created in the same transaction as the lead, so two concurrent
first posts for one address cannot make two leads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shared.clock import to_iso
from shared.leads import Activity, Consent, Lead
from shared.normalize import email_key
from shared.repository import EmailTaken, Record, VersionConflict

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

DUE_SHARDS = 16
DUE_INDEX = "due"
PROFILE = "PROFILE"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def lead_pk(lead_id: str) -> str:
    return f"LEAD#{lead_id}"


def email_pk(email: str) -> str:
    return f"EMAIL#{email_key(email)}"


def due_shard(lead_id: str) -> int:
    # Lead ids are random hex, so their leading digits spread leads evenly.
    return int(lead_id[:8], 16) % DUE_SHARDS


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def lead_item(lead: Lead) -> dict[str, Any]:
    item: dict[str, Any] = lead.model_dump(mode="json", exclude_none=True)
    item.update(pk=lead_pk(lead.lead_id), sk=PROFILE, entity="lead")
    enrolment = lead.enrolment
    if enrolment is not None:
        item["program_id"] = enrolment.program_id
        if enrolment.step_id:
            item["step_id"] = enrolment.step_id
        if enrolment.due_at is not None and lead.mailable:
            item["due_shard"] = due_shard(lead.lead_id)
            item["due_at"] = to_iso(enrolment.due_at)
    return item


def activity_item(activity: Activity) -> dict[str, Any]:
    item: dict[str, Any] = activity.model_dump(mode="json", exclude_none=True)
    item.update(
        pk=lead_pk(activity.lead_id),
        sk=f"ACT#{to_iso(activity.at)}#{activity.activity_id}",
        entity="activity",
    )
    return item


def consent_item(lead_id: str, consent: Consent) -> dict[str, Any]:
    item: dict[str, Any] = consent.model_dump(mode="json", exclude_none=True)
    item.update(
        pk=lead_pk(lead_id),
        sk=f"CONSENT#{to_iso(consent.at)}#{consent.consent_id}",
        entity="consent",
        lead_id=lead_id,
    )
    return item


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

    def _record_puts(
        self, lead_id: str, records: Sequence[Record]
    ) -> list[TransactWriteItemTypeDef]:
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(
                        consent_item(lead_id, r) if isinstance(r, Consent) else activity_item(r)
                    ),
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

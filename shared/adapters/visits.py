"""A website visitor's link to its lead, its page views (kept for the attribution
window) and the revisit alert's claim."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.items import (
    condition_failed,
    deserialize,
    lead_pk,
    serialize,
)
from shared.domain.clock import from_iso, to_iso
from shared.services.visits import PageView

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


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

    def linked_lead(self, visitor_id: str, *, consistent: bool = False) -> str | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": visitor_pk(visitor_id), "sk": VISITOR_LINK}),
            ProjectionExpression="lead_id",
            ConsistentRead=consistent,
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
            if condition_failed(exc):
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
            if condition_failed(exc):
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
            if not condition_failed(exc):
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

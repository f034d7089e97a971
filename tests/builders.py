"""Shared test helpers: a lead as a form post makes it, and putting a lead, or report
counts, into the table as a test's starting state."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from shared.adapters.codecs import lead_item
from shared.adapters.items import COUNTER_SHARDS, counter_pk, email_pk, serialize
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.leads import ConsentState, FormType, Lead, Touch, new_id
from shared.ports import LeadRepository, Revision

BUILT_AT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Tokyo


def a_lead(
    *,
    at: datetime = BUILT_AT,
    form_type: FormType = FormType.DOWNLOAD,
    source: str | None = None,
    opted_in: bool = False,
    lead_id: str | None = None,
    email: str = "taro@example.co.jp",
    **fields: Any,
) -> Lead:
    """A lead as one form post made it at ``at`` (a download, unless told; opted in to
    email if ``opted_in``), with ``fields`` over those defaults."""
    touch = Touch(at=at, form_type=form_type, source=source)
    values: dict[str, Any] = {
        "lead_id": lead_id or new_id(),
        "email": email,
        "first_touch": touch,
        "last_touch": touch,
        "created_at": at,
        "updated_at": at,
    }
    if opted_in:
        values["consent"] = ConsentState(opted_in=True, at=at, wording_version="v1")
    return Lead(**{**values, **fields})


def store(repository: DynamoLeadRepository, lead: Lead) -> None:
    """Store a lead and its email claim as they are given: a starting state, so nothing
    is counted or recorded (a capture would count ``new>lead``)."""
    client, table = repository._client, repository._table
    claim = {"pk": email_pk(lead.email), "sk": "EMAIL", "entity": "email", "lead_id": lead.lead_id}
    client.put_item(TableName=table, Item=serialize(claim))
    client.put_item(TableName=table, Item=serialize(lead_item(lead)))


def overwrite(repository: LeadRepository, lead: Lead) -> None:
    """Replace a stored lead's state with ``lead`` (its version is the repository's), as
    another writer would."""
    repository.revise(lead.lead_id, lambda _: Revision(lead))


class DynamoCounters:
    """Report counters added to on their own (every change of a lead writes its counts
    itself): a test's starting figures. Each addition goes to the next shard in turn, as
    the changes of many leads would, so readers are seen adding the shards up."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._next = 0

    def count(self, day: date, key: str, metric: str, by: int = 1) -> None:
        shard, self._next = self._next % COUNTER_SHARDS, self._next + 1
        self._client.update_item(
            TableName=self._table,
            Key=serialize({"pk": counter_pk(day), "sk": f"{key}@{shard}"}),
            UpdateExpression="ADD #metric :by",
            ExpressionAttributeNames={"#metric": metric},
            ExpressionAttributeValues=serialize({":by": by}),
        )

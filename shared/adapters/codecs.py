"""Leads, their records and an event's seats as table items, and back: a module of
its own beside the keys (``shared.adapters.items``), which the scheduler reads without
the models."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from shared.adapters.items import (
    PROFILE,
    due_shard,
    lead_pk,
)
from shared.domain.clock import from_iso, to_iso
from shared.domain.jobs import REVIEW
from shared.domain.leads import (
    Activity,
    Consent,
    Lead,
    Outcome,
    Seats,
    SendRecord,
    earliest_event,
)
from shared.ports import (
    Record,
)

if TYPE_CHECKING:
    pass


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
    elif lead.review_at is not None and lead.reviewed:
        item["program_id"] = REVIEW
        item["due_shard"] = due_shard(lead.lead_id)
        item["due_at"] = to_iso(lead.review_at)
    # An event's enrolment due sooner takes the index: one entry per lead, the earliest
    # (the sender finds it on the lead by its program and step); when it has been sent,
    # the write that moves it on puts the next one here.
    event_enrolment = earliest_event(lead)
    if event_enrolment is not None and event_enrolment.due_at is not None and lead.mailable:
        due_at = to_iso(event_enrolment.due_at)
        # A tie goes to the event: a registration's confirmation answers it at once.
        if "due_at" not in item or due_at <= item["due_at"]:
            item.update(
                program_id=event_enrolment.program_id,
                due_shard=due_shard(lead.lead_id),
                due_at=due_at,
            )
            item.pop("step_id", None)
            if event_enrolment.step_id:
                item["step_id"] = event_enrolment.step_id
    return item


# The attributes of a lead's entry in the due index (``lead_item``).
DUE_KEYS = ("program_id", "step_id", "due_shard", "due_at")


def seats_of(item: Mapping[str, Any]) -> Seats:
    return Seats(
        event_id=str(item["event_id"]),
        holders=frozenset(item.get("holders", ())),
        waiting={k: from_iso(v) for k, v in (item.get("waiting") or {}).items()},
        version=int(item["version"]),
    )


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


def event_sk(key: str) -> str:
    """A request's dedupe marker under its lead (``EVENT#<key>``)."""
    return f"EVENT#{key}"


def without_keys(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "entity")}

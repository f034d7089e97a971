"""Disclosure export (開示請求): everything the table holds about a lead, in one document.

The whole system runs on moto with its production wiring (``tests/faults/system.py``):
a lead is made through the real write paths (website views, form posts, a nurture
email and its SES events, the hand-off to sales, a revisit alert, sales feedback, an
opt-out), and ``GET /leads/{id}/export`` on the admin function must account for every
item under the lead's partition, and for nothing of another lead.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infra.wiring import ADMIN, HANDOFF, UNSUBSCRIBE, VISITS
from shared.adapters.attributes import TypeDeserializer
from shared.adapters.items import lead_pk
from shared.domain.clock import from_iso, to_iso
from shared.domain.leads import ActivityType
from tests.email_events import ses_record
from tests.events import multipart_post, rest_event
from tests.faults.scenarios import ADDRESS, capture, engagement_batch, form, welcome_sent
from tests.faults.system import System, provisioned_system
from tests.faults.triggers import StreamBatch
from tests.integration.test_admin_api import admin_event

SITE = "http://localhost:3000"  # the deployment's default site origin
OTHER = {
    "email": "hanako.suzuki@example.jp",
    "name": "鈴木 花子",
    "company": "株式会社ベツモノ",
    "form_type": "download",
    "consent": "on",
}
TOKYO = ZoneInfo("Asia/Tokyo")
_deserializer = TypeDeserializer()


@pytest.fixture
def system(aws: None) -> System:
    return provisioned_system()


def view(system: System, visitor: str, path: str) -> None:
    """The tracking snippet's beacon for a page read for 30 seconds."""
    beacon = {
        "kind": "view",
        "visitor_id": visitor,
        "view_id": uuid.uuid4().hex,
        "url": f"{SITE}{path}",
        "title": f"{path} | Flowlane",
        "referrer": "https://www.google.com/",
        "seconds": 30,
    }
    event = rest_event(
        "POST",
        "/visits",
        body=json.dumps(beacon),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE},
    )
    assert system.invoke(VISITS, event)["statusCode"] == 204


def admin(system: System, method: str, lead_id: str, action: str = "", body: Any = None) -> Any:
    response = system.invoke(ADMIN, admin_event(method, lead_id, action, body))
    assert response["statusCode"] == 200, response["body"]
    return response


def lead_with_every_kind_of_record(system: System) -> str:
    """A lead whose partition holds one of every item kind, made by the functions."""
    visitor = uuid.uuid4().hex
    # A page read before the visitor was known, attributed when the form names them
    view(system, visitor, "/product")
    lead_id = capture(system, form("download", asset="dx-guide.pdf", visitor_id=visitor))
    # The welcome email (a send record), delivered, opened and clicked (its email record)
    _, sent, at = welcome_sent(system)
    events = [
        ses_record(
            name,
            lead_id=lead_id,
            program=sent["program_id"],
            step=sent["step_id"],
            variant=sent["variant"],
            email=ADDRESS,
            at=at + timedelta(minutes=minutes),
            message_id=sent["message_id"],
            **extra,
        )
        for name, minutes, extra in (
            ("delivery", 0, {}),
            ("open", 5, {}),
            ("click", 6, {"link": f"{SITE}/pricing/", "link_tags": ["pricing"]}),
        )
    ]
    system.clock.advance(timedelta(minutes=10))
    for event in events:
        assert engagement_batch([event]).attempt(system)
    # An inquiry: an MQL at once, handed to sales (a hand-off marker)
    system.clock.advance(timedelta(hours=1))
    assert capture(system, form("inquiry", message="見積もりをお願いします。")) == lead_id
    assert StreamBatch(HANDOFF, system.handoff_records()).attempt(system)
    # Back on the pricing page while with sales (a revisit alert)
    system.clock.advance(timedelta(hours=1))
    view(system, visitor, "/pricing")
    # Sales accept and win it (an outcome, kept outside the partition), then it opts out
    system.clock.advance(timedelta(days=1))
    admin(system, "POST", lead_id, "disposition", {"disposition": "accepted", "by": "alice"})
    admin(system, "POST", lead_id, "disposition", {"disposition": "won", "amount": 1_200_000})
    token = system.unsubscribe_token(lead_id)
    unsubscribe = rest_event(
        "POST",
        "/unsubscribe",
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        query={"t": token},
    )
    assert system.invoke(UNSUBSCRIBE, unsubscribe)["statusCode"] == 200
    return lead_id


def partition(system: System, lead_id: str) -> dict[str, dict[str, Any]]:
    """The lead's items as stored, by sort key (read from moto's table)."""
    return {
        item["sk"]["S"]: {k: _deserializer.deserialize(v) for k, v in item.items()}
        for item in system.table_items()
        if item["pk"]["S"] == lead_pk(lead_id)
    }


def accounted_for(document: dict[str, Any]) -> list[str]:
    """The sort key of every item the document shows, from the identifiers it gives."""
    keys = ["PROFILE"]
    keys += [f"ACT#{to_iso(from_iso(a['at']))}#{a['activity_id']}" for a in document["timeline"]]
    keys += [
        f"CONSENT#{to_iso(from_iso(c['at']))}#{c['consent_id']}"
        for c in document["consent_records"]
    ]
    keys += [f"SEND#{s['key']}" for s in document["sends"]]
    keys += [f"MAIL#{m['message_id']}" for m in document["emails"]]
    keys += [f"HANDOFF#{h['handoff_id']}" for h in document["handoffs"]]
    keys += [f"ALERT#{a['kind']}" for a in document["alerts"]]
    keys += [f"EVENT#{m['key']}" for m in document["request_markers"]]
    keys += [o["sort_key"] for o in document["other_records"]]
    return keys


def test_the_export_accounts_for_every_item_of_the_lead_and_nothing_of_another(
    system: System,
) -> None:
    # Given a lead with one of every kind of record, and another lead beside it
    lead_id = lead_with_every_kind_of_record(system)
    other_id = capture(system, multipart_post(OTHER))
    stored = partition(system, lead_id)
    assert {sk.partition("#")[0] for sk in stored} == {
        "PROFILE",
        "ACT",
        "CONSENT",
        "SEND",
        "MAIL",
        "EVENT",
        "HANDOFF",
        "ALERT",
    }

    # When its data is exported through the admin API, as deployed
    with system.injector.armed_with(None) as calls:
        response = admin(system, "GET", lead_id, "export")

    # Then it is a JSON attachment named after the lead, not to be cached
    headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    assert headers["content-type"] == ["application/json; charset=utf-8"]
    assert headers["content-disposition"] == [f'attachment; filename="lead-{lead_id}-export.json"']
    assert headers["cache-control"] == ["no-store"]
    text = response["body"]
    document = json.loads(text)
    assert (document["schema_version"], document["lead_id"]) == (1, lead_id)
    assert document["exported_at"] == system.clock.now().astimezone(TOKYO).isoformat()
    assert document["exported_at"].endswith("+09:00")
    # read with one Query of its partition and one BatchGetItem of what is kept elsewhere
    assert [str(c) for c in calls] == ["dynamodb.Query#1", "dynamodb.BatchGetItem#1"]
    # and every item under the lead is in it, each once, and nothing else of the partition
    shown = accounted_for(document)
    assert sorted(shown) == sorted(stored)
    assert document["other_records"] == []
    # and each record as stored
    assert document["profile"]["company"] == "株式会社サンプル製作所"
    assert document["profile"]["score_units"] == str(stored["PROFILE"]["score_units"])
    (send,) = document["sends"]
    assert {k: v for k, v in stored[f"SEND#{send['key']}"].items() if k not in ("pk", "sk")} == {
        "entity": "send",
        **send,
    }
    (mail,) = document["emails"]
    assert [e["kind"] for e in mail["events"]] == ["open", "click"]
    assert mail["delivered_at"] is not None
    (handoff,) = document["handoffs"]
    assert handoff["message_id"]
    (alert,) = document["alerts"]
    assert alert["kind"] == "revisit"
    assert {m["key"].partition(":")[0] for m in document["request_markers"]} >= {"post", "view"}
    # and the whole timeline, oldest first, with every activity the paths recorded
    timeline = document["timeline"]
    assert [a["at"] for a in timeline] == sorted(a["at"] for a in timeline)
    assert {
        ActivityType.FORM_SUBMITTED,
        ActivityType.PAGE_VIEWED,
        ActivityType.EMAIL_SENT,
        ActivityType.EMAIL_DELIVERED,
        ActivityType.EMAIL_OPENED,
        ActivityType.EMAIL_CLICKED,
        ActivityType.QUALIFIED,
        ActivityType.STAGE_CHANGED,
        ActivityType.UNSUBSCRIBED,
    } <= {ActivityType(a["type"]) for a in timeline}
    # and both consents, the score with every reason, and the opt-out
    assert [c["form_type"] for c in document["consent_records"]] == ["download", "inquiry"]
    reasons = document["score"]["reasons"]
    ids = {a["activity_id"] for a in timeline}
    assert all(r["activity_id"] in ids for r in reasons)
    assert {"form_submitted", "page_viewed", "email_clicked"} <= {r["activity"] for r in reasons}
    assert document["score"]["grade"] == "A"
    assert document["subscription"] == {
        "mailable": False,
        "opted_in": True,
        "unsubscribed": True,
        "suppressed": False,
        "suppression_reason": None,
        "sunset": False,
    }
    # and what is kept about the lead outside its partition: the address and the outcome
    assert document["address"] == {
        "claim": {"email": ADDRESS, "lead_id": lead_id},
        "on_erasure_list": False,
    }
    assert [(o["lead_id"], o["disposition"]) for o in document["outcomes"]] == [(lead_id, "won")]
    # and nothing of the other lead, in UTF-8 text as written
    for foreign in (other_id, OTHER["email"], "鈴木", "ベツモノ"):
        assert foreign not in text
    assert "株式会社サンプル製作所" in text


def test_an_erased_lead_has_nothing_to_export(system: System) -> None:
    lead_id = capture(system, form("download", asset="dx-guide.pdf"))
    admin(system, "DELETE", lead_id)

    response = system.invoke(ADMIN, admin_event("GET", lead_id, "export"))

    assert (response["statusCode"], json.loads(response["body"])) == (404, {"error": "not_found"})
    # What the erasure kept is a hash of the address, which names no lead
    assert partition(system, lead_id) == {}
    kept = [i for i in system.table_items() if i["pk"]["S"].startswith("ERASED#")]
    assert len(kept) == 1
    assert lead_id not in json.dumps(kept)

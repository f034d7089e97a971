"""The admin API (IAM-authorised) through its handler with API Gateway REST proxy events, on moto.

GET /leads/{lead_id}: profile, score breakdown and timeline.
GET /leads/{lead_id}/export: everything held about the lead (``test_export.py`` checks
that it is complete against every write path).
POST /leads/{lead_id}/disposition: sales feedback moves the lead's stage and program.
DELETE /leads/{lead_id}: erasure that keeps only a hashed suppression of the address.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from functions.admin.handler import AdminSettings, Dependencies, build_app
from functions.admin.handler import lambda_handler as admin_handler
from functions.capture.handler import Dependencies as CaptureDependencies
from functions.capture.handler import build_app as build_capture
from functions.capture.handler import lambda_handler as capture_handler
from functions.capture.settings import CaptureSettings
from functions.observability import build_logger
from shared.adapters.codecs import activity_item
from shared.adapters.items import lead_pk, serialize
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import FixedClock, to_iso
from shared.domain.customers import load_customers
from shared.domain.events import load_events
from shared.domain.leads import Activity, ActivityType, Stage
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from shared.services.disclosure import LeadDisclosure
from shared.services.lifecycle import LifecycleSettings, SalesFeedback
from shared.services.purchases import PurchaseBook
from shared.services.registration import EventDesk
from shared.web.pages import Pages
from tests.email_events import raw, ses_record
from tests.events import form_post, json_post, rest_event
from tests.integration.conftest import TABLE, all_items
from tests.integration.nurture import build_world
from tests.integration.scoring_world import (
    GRADE_A,
    activities,
    capture_with_scores,
    counters,
    engagement,
    indexed_due_at,
    lead_table,
    qualify,
    recorder,
    score_keeper,
    sort_keys,
    store_lead,
    stored,
    table_items,
)

ACCEPT_JSON = {"Accept": "application/json"}
COOLDOWN = timedelta(days=30)
LOST_DORMANT_AFTER = timedelta(days=60)
IAM_CALLER = {
    "accessKey": "ASIAXAMPLEACCESSKEY1",
    "accountId": "123456789012",
    "caller": "AROAEXAMPLEROLEID:alice",
    "user": "AROAEXAMPLEROLEID:alice",
    "userArn": "arn:aws:sts::123456789012:assumed-role/sales-ops/alice",
}
FORM = {
    "email": "taro.yamada@sample-seisakusho.co.jp",
    "company": "株式会社サンプル製作所",
    "name": "山田 太郎",
    "job_title": "情報システム部 部長",
    "industry": "製造業",
    "company_size": "300-999",
    "pref": "大阪府",
    "interests": "AI,IoT",
    "consent": "on",
}


@pytest.fixture
def dynamodb(aws: None) -> Any:
    """The conftest's table, through a client from the run's one session (much faster)."""
    return lead_table()


def admin_event(method: str, lead_id: str, action: str = "", body: Any = None) -> dict[str, Any]:
    """A REST API proxy event for /leads/{lead_id}[/action], signed with SigV4 (IAM)."""
    resource = "/leads/{lead_id}" + (f"/{action}" if action else "")
    text = body if isinstance(body, str) or body is None else json.dumps(body, ensure_ascii=False)
    event = rest_event(
        method,
        resource.replace("{lead_id}", lead_id),
        body=text,
        headers={
            "Content-Type": "application/json",
            "Authorization": "AWS4-HMAC-SHA256 Credential=ASIAXAMPLEACCESSKEY1/20261123/"
            "ap-northeast-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, "
            "Signature=0123456789abcdef",
            "X-Amz-Date": "20261123T003000Z",
            "X-Amz-Security-Token": "IQoJb3JpZ2luX2VjEXAMPLE",
        },
    )
    event["resource"] = resource
    event["pathParameters"] = {"lead_id": lead_id}
    event["requestContext"]["resourcePath"] = resource
    event["requestContext"]["identity"].update(IAM_CALLER)
    return event


@pytest.fixture
def admin(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, lambda_context: Any
) -> Callable[..., tuple[int, Any]]:
    """Call the admin API: (status, parsed JSON body)."""
    feedback = SalesFeedback(
        repository,
        load_programs(),
        clock,
        LifecycleSettings(rejected_cooldown=COOLDOWN, lost_dormant_after=LOST_DORMANT_AFTER),
    )
    rules = load_scoring()
    app = build_app(
        Dependencies(
            repository,
            feedback,
            rules,
            clock,
            build_logger("admin"),
            LeadDisclosure(repository, rules, clock),
            PurchaseBook(repository, load_programs(), load_customers(), clock),
            EventDesk(repository, load_programs(), clock),
            load_events(),
        )
    )

    def call(method: str, lead_id: str, action: str = "", body: Any = None) -> tuple[int, Any]:
        response = admin_handler(admin_event(method, lead_id, action, body), lambda_context, app)
        headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
        assert headers["content-type"] == ["application/json; charset=utf-8"]
        return response["statusCode"], json.loads(response["body"])

    return call


@pytest.fixture
def capture(
    dynamodb: Any, clock: FixedClock, lambda_context: Any, capture_settings: CaptureSettings
) -> Callable[[dict[str, Any]], str]:
    """POST /leads with scoring, as deployed; returns the lead id."""
    app = build_capture(
        CaptureDependencies(
            capture_settings, capture_with_scores(dynamodb, clock), Pages(), build_logger("capture")
        )
    )

    def post(fields: dict[str, Any]) -> str:
        response = capture_handler(json_post(fields, headers=ACCEPT_JSON), lambda_context, app)
        assert response["statusCode"] in (200, 201), response["body"]
        return str(json.loads(response["body"])["lead_id"])

    return post


def disposition(admin: Callable[..., tuple[int, Any]], lead_id: str, **body: Any) -> Any:
    status, answer = admin("POST", lead_id, "disposition", body)
    assert status == 200, answer
    return answer


@pytest.fixture
def mql(capture: Callable[[dict[str, Any]], str], repository: DynamoLeadRepository) -> str:
    """A grade A lead that asked for a quote: an MQL, out of its welcome program."""
    lead_id = capture({**FORM, "form_type": "inquiry", "message": "見積もりをお願いします"})
    assert stored(repository, lead_id).stage is Stage.MQL
    return lead_id


# -- GET /leads/{lead_id} -------------------------------------------------------------------


def test_get_returns_the_profile_the_score_breakdown_and_the_timeline(
    admin: Callable[..., tuple[int, Any]],
    capture: Callable[[dict[str, Any]], str],
    dynamodb: Any,
    clock: FixedClock,
    lambda_context: Any,
) -> None:
    # Given a lead that downloaded a guide and, an hour later, clicked the pricing link
    lead_id = capture({**FORM, "form_type": "download", "asset": "dx-guide.pdf"})
    clock.advance(timedelta(hours=1))
    click = ses_record(
        "click",
        lead_id=lead_id,
        email=FORM["email"],
        at=clock.now(),
        link_tags=["pricing"],
        link="https://www.example.co.jp/pricing/",
    )
    assert engagement(recorder(dynamodb, clock), lambda_context)([raw(click)]).failed == []

    # When an admin looks it up
    status, body = admin("GET", lead_id)

    # Then the profile is there (without the internal score units)
    assert status == 200
    lead = body["lead"]
    assert (lead["lead_id"], lead["email"], lead["company"], lead["stage"]) == (
        lead_id,
        FORM["email"],
        "株式会社サンプル製作所",
        "lead",
    )
    assert lead["interests"] == ["AI", "IoT"]
    assert lead["enrolment"]["program_id"] == "welcome"
    assert "score_units" not in lead
    # and the score, explained: decayed points, grade and temperature with their reasons
    score = body["score"]
    assert score["score"] == round(10 * 2 ** (-1 / 24 / 30) + 13, 1)
    assert (score["grade"], score["temperature"]) == ("A", "warm")
    assert score["fit"] == [
        {"rule": "industry:製造業", "points": 20},
        {"rule": "company_size:300-999", "points": 25},
        {"rule": "job_title:部長", "points": 25},
    ]
    assert [(r["activity"], r["points"]) for r in score["top_reasons"]] == [
        ("email_clicked", 13),
        ("form_submitted", 10),
    ]
    assert score["top_reasons"][0]["rules"] == [
        {"rule": "click", "points": 3},
        {"rule": "link:pricing", "points": 10},
    ]
    assert score["at"] == to_iso(clock.now())
    # and the timeline, newest first, each entry with what the score change was for
    timeline = body["timeline"]
    assert timeline[0]["type"] == "email_clicked"
    assert timeline[0]["details"]["link_tags"] == ["pricing"]
    assert {a["type"] for a in timeline[1:]} == {"form_submitted", "enrolled"}
    assert [a["at"] for a in timeline] == sorted((a["at"] for a in timeline), reverse=True)


def test_get_an_unknown_lead_is_404(admin: Callable[..., tuple[int, Any]]) -> None:
    assert admin("GET", "0" * 32) == (404, {"error": "not_found"})


def test_get_shows_the_decayed_score_30_days_later(
    admin: Callable[..., tuple[int, Any]], mql: str, clock: FixedClock
) -> None:
    assert admin("GET", mql)[1]["score"]["score"] == 30

    clock.advance(timedelta(days=30))

    assert admin("GET", mql)[1]["score"]["score"] == 15


# -- GET /leads/{lead_id}/export --------------------------------------------------------------


def test_export_is_the_whole_record_with_a_schema_version_and_the_time_in_japan(
    admin: Callable[..., tuple[int, Any]], mql: str, repository: DynamoLeadRepository
) -> None:
    status, document = admin("GET", mql, "export")

    assert status == 200
    assert (document["schema_version"], document["lead_id"]) == (1, mql)
    assert document["exported_at"] == "2026-11-23T09:30:00+09:00"
    assert list(document["notes"]) == ["ja", "en"]
    assert document["profile"]["email"] == FORM["email"]
    assert len(document["timeline"]) == len(repository.history(mql))
    assert len(document["consent_records"]) == 1
    assert document["score"]["grade"] == "A"
    assert document["subscription"]["mailable"]
    assert document["address"]["claim"] == {"email": FORM["email"], "lead_id": mql}


def test_export_reads_every_page_of_a_long_timeline_in_one_query_and_one_batch_read(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    dynamodb: Any,
    repository: DynamoLeadRepository,
    clock: FixedClock,
) -> None:
    # Given a timeline of over 1 MB: more than one page of a Query
    earlier = len(repository.history(mql))
    views = [
        activity_item(
            Activity(
                lead_id=mql,
                type=ActivityType.PAGE_VIEWED,
                at=clock.now() + timedelta(minutes=i),
                details={"title": "導入事例" * 500, "seconds": 30},
            )
        )
        for i in range(250)
    ]
    for start in range(0, len(views), 25):
        batch = [{"PutRequest": {"Item": serialize(v)}} for v in views[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={TABLE: batch})
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    # When it is exported
    dynamodb.meta.events.register("provide-client-params.dynamodb.*", count)
    try:
        status, document = admin("GET", mql, "export")
    finally:
        dynamodb.meta.events.unregister("provide-client-params.dynamodb.*", count)

    # Then every activity is in it, read page by page, then the address and outcomes at once
    assert status == 200
    assert len(document["timeline"]) == earlier + 250
    assert calls == ["Query", "Query", "BatchGetItem"]


def test_export_shows_an_item_of_a_kind_it_does_not_name_under_other_records(
    admin: Callable[..., tuple[int, Any]], mql: str, dynamodb: Any
) -> None:
    # Given an item under the lead of a kind no section names (one added in the future)
    note = {"pk": lead_pk(mql), "sk": "NOTE#2026-11-23", "text": "展示会で名刺交換", "n": 3}
    dynamodb.put_item(TableName=TABLE, Item=serialize({**note, "tags": {"a", "b"}}))

    status, document = admin("GET", mql, "export")

    # Then it is disclosed as stored, under its sort key
    assert status == 200
    assert document["other_records"] == [
        {"sort_key": "NOTE#2026-11-23", "text": "展示会で名刺交換", "n": 3, "tags": ["a", "b"]}
    ]


def test_export_of_an_unknown_or_erased_lead_is_404(
    admin: Callable[..., tuple[int, Any]], mql: str
) -> None:
    assert admin("GET", "0" * 32, "export") == (404, {"error": "not_found"})
    assert admin("DELETE", mql)[0] == 200
    assert admin("GET", mql, "export") == (404, {"error": "not_found"})


@pytest.mark.parametrize("lead_id", ["abc", "0" * 31, "0" * 33, "G" * 32, "A" * 32, "%00" * 11])
@pytest.mark.parametrize(
    ("method", "action"), [("GET", "export"), ("GET", ""), ("DELETE", ""), ("POST", "disposition")]
)
def test_a_route_given_what_is_not_a_lead_id_answers_a_field_error(
    admin: Callable[..., tuple[int, Any]], lead_id: str, method: str, action: str
) -> None:
    sent = {"disposition": "accepted"} if method == "POST" else None
    status, body = admin(method, lead_id, action, sent)

    assert status == 422
    (error,) = body["errors"]
    assert (error["field"], error["code"]) == ("lead_id", "invalid_lead_id")
    assert error["message"].startswith("リードIDの形式")
    assert error["message_en"].startswith("Not a lead id")


# -- POST /leads/{lead_id}/disposition --------------------------------------------------------


def test_accepted_makes_the_mql_a_sales_qualified_lead_in_no_program(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
) -> None:
    # When sales accept the lead
    clock.advance(timedelta(hours=2))
    answer = disposition(admin, mql, disposition="accepted", by="alice@example.co.jp")

    # Then it is an SQL that no nurture program mails
    assert answer["stage"] == "sql"
    lead = stored(repository, mql)
    assert (lead.stage, lead.stage_changed_at) == (Stage.SQL, clock.now())
    assert lead.enrolment is not None
    assert lead.enrolment.completed_at is not None
    assert indexed_due_at(dynamodb, mql) is None
    # and the change is on the timeline, with who reported it, and counted for reports
    (changed,) = activities(repository, mql, ActivityType.STAGE_CHANGED)
    assert changed.details == {
        "from": "mql",
        "to": "sql",
        "disposition": "accepted",
        "reason": None,
        "by": "alice@example.co.jp",
        "caller": IAM_CALLER["userArn"],
        "program_id": changed.details.get("program_id"),
    }
    assert counters(dynamodb, clock.now())["stage"]["mql>sql"] == 1


def test_accepted_answers_and_records_no_program(
    admin: Callable[..., tuple[int, Any]], mql: str, repository: DynamoLeadRepository
) -> None:
    answer = disposition(admin, mql, disposition="accepted")

    assert answer == {"lead_id": mql, "stage": "sql", "program_id": None}
    (changed,) = activities(repository, mql, ActivityType.STAGE_CHANGED)
    assert changed.details.get("program_id") is None
    # with no "by", the timeline names the IAM principal that made the call
    assert changed.details["by"] == changed.details["caller"] == IAM_CALLER["userArn"]


def test_rejected_returns_the_lead_to_nurturing_after_a_cooldown(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
) -> None:
    # When sales reject the lead, with a reason
    now = clock.now()
    answer = disposition(admin, mql, disposition="rejected", reason="予算が来期のため", by="alice")

    # Then it is a lead again, that may qualify again only after the cool-down
    assert answer == {"lead_id": mql, "stage": "lead", "program_id": "welcome"}
    lead = stored(repository, mql)
    assert lead.stage is Stage.LEAD
    assert lead.requalify_after == now + COOLDOWN
    # and it is back in the welcome program, whose first step waits for the cool-down
    assert lead.enrolment is not None
    assert (lead.enrolment.program_id, lead.enrolment.step_id) == ("welcome", "welcome")
    assert lead.enrolment.enrolled_at == now
    assert lead.enrolment.due_at == now + COOLDOWN
    assert lead.enrolment.completed_at is None
    assert indexed_due_at(dynamodb, mql) == to_iso(now + COOLDOWN)
    # and the reason is on the timeline
    (changed,) = activities(repository, mql, ActivityType.STAGE_CHANGED)
    assert (changed.details["reason"], changed.details["to"]) == ("予算が来期のため", "lead")
    assert counters(dynamodb, now)["stage"]["mql>lead"] == 1


def test_a_rejected_lead_requalifies_only_after_the_cooldown_even_with_a_high_score(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
    lambda_context: Any,
) -> None:
    # Given an MQL that sales rejected (30 days' cool-down)
    disposition(admin, mql, disposition="rejected", reason="時期尚早")
    deliver = engagement(recorder(dynamodb, clock), lambda_context)

    # When, during the cool-down, it clicks enough to score over the threshold
    clock.advance(timedelta(days=2))
    for tag in ("pricing", "trial"):
        click = ses_record(
            "click",
            lead_id=mql,
            email=FORM["email"],
            at=clock.now(),
            link_tags=[tag],
            link=f"https://www.example.co.jp/{tag}/",
        )
        assert deliver([raw(click)]).failed == []
    keeper = score_keeper(dynamodb, clock)
    lead = stored(repository, mql)
    result = keeper.rules.evaluate(lead, clock.now())
    assert keeper.rules.qualifies(result.score, result.grade)

    # Then it stays a lead: even asked to qualify, it does not until the cool-down ends
    assert lead.stage is Stage.LEAD
    assert not qualify(dynamodb, clock, mql, reason="score")
    assert len(activities(repository, mql, ActivityType.QUALIFIED)) == 1

    # When, after the cool-down, its clicks take its (decayed) score over 50 again
    assert lead.requalify_after is not None
    clock.set(lead.requalify_after + timedelta(hours=1))
    for tag in ("pricing", "trial"):
        link = f"https://www.example.co.jp/{tag}/"
        click = ses_record(
            "click", lead_id=mql, email=FORM["email"], at=clock.now(), link_tags=[tag], link=link
        )
        assert deliver([raw(click)]).failed == []

    # Then it qualifies again
    assert stored(repository, mql).stage is Stage.MQL
    assert len(activities(repository, mql, ActivityType.QUALIFIED)) == 2


def test_won_makes_the_lead_a_customer_in_the_customer_program(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
) -> None:
    now = clock.now()

    answer = disposition(admin, mql, disposition="won", reason="年間契約", by="alice")

    assert answer == {"lead_id": mql, "stage": "customer", "program_id": "customer"}
    lead = stored(repository, mql)
    assert lead.stage is Stage.CUSTOMER
    assert lead.enrolment is not None
    assert (lead.enrolment.program_id, lead.enrolment.step_id) == ("customer", "onboarding_tips")
    assert lead.enrolment.due_at == now + timedelta(days=7)  # onboarding tips a week in
    assert indexed_due_at(dynamodb, mql) == to_iso(now + timedelta(days=7))
    assert counters(dynamodb, now)["stage"]["mql>customer"] == 1


def test_a_won_deals_amount_is_the_leads_revenue_and_counted_by_its_source(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
) -> None:
    disposition(admin, mql, disposition="won", amount=1_800_000)

    lead = stored(repository, mql)
    assert lead.revenue == 1_800_000
    found = counters(dynamodb, clock.now())
    assert found["revenue"] == {"deals": 1, "amount": 1_800_000, "customers": 1}
    assert found[f"form#{lead.first_touch.form_type.value}"]["revenue"] == 1_800_000
    assert found["cycle#customer"] == {"d0": 1}


def test_lost_enters_re_engagement_after_the_waiting_period(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
) -> None:
    now = clock.now()

    answer = disposition(admin, mql, disposition="lost", reason="競合に決定")

    assert answer == {"lead_id": mql, "stage": "lost", "program_id": "re_engagement"}
    lead = stored(repository, mql)
    assert lead.stage is Stage.LOST
    assert lead.enrolment is not None
    assert (lead.enrolment.program_id, lead.enrolment.step_id) == ("re_engagement", "reconnect")
    assert lead.enrolment.enrolled_at == now
    # the first re-engagement mail waits for the dormant period, then its own 3 days
    due = now + LOST_DORMANT_AFTER + timedelta(days=3)
    assert lead.enrolment.due_at == due
    assert indexed_due_at(dynamodb, mql) == to_iso(due)


@pytest.mark.parametrize(
    ("then", "stage", "program"),
    [
        ("rejected", "lead", "welcome"),
        ("won", "customer", "customer"),
        ("lost", "lost", "re_engagement"),
    ],
)
def test_an_sql_can_be_rejected_won_or_lost(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    clock: FixedClock,
    then: str,
    stage: str,
    program: str,
) -> None:
    disposition(admin, mql, disposition="accepted")
    clock.advance(timedelta(days=14))

    answer = disposition(admin, mql, disposition=then)

    assert (answer["stage"], answer["program_id"]) == (stage, program)
    assert stored(repository, mql).stage.value == stage
    changes = activities(repository, mql, ActivityType.STAGE_CHANGED)
    assert [(a.details["from"], a.details["to"]) for a in changes] == [
        ("mql", "sql"),
        ("sql", stage),
    ]


@pytest.mark.parametrize(
    ("history", "then"),
    [
        ([], "accepted"),  # a plain lead was never handed to sales
        ([], "rejected"),
        ([], "won"),
        ([], "lost"),
        (["accepted"], "accepted"),
        (["won"], "lost"),
        (["lost"], "won"),
        (["rejected"], "accepted"),
    ],
)
def test_a_disposition_the_stage_does_not_allow_is_409_and_changes_nothing(
    admin: Callable[..., tuple[int, Any]],
    capture: Callable[[dict[str, Any]], str],
    repository: DynamoLeadRepository,
    clock: FixedClock,
    history: list[str],
    then: str,
) -> None:
    # Given a lead (an MQL if it has a disposition history)
    form_type = "inquiry" if history else "download"
    lead_id = capture({**FORM, "form_type": form_type})
    for earlier in history:
        disposition(admin, lead_id, disposition=earlier)
        clock.advance(timedelta(minutes=1))
    before = stored(repository, lead_id)

    # When a disposition its stage does not allow is reported
    status, body = admin("POST", lead_id, "disposition", {"disposition": then})

    # Then it is refused as a conflict, and the lead is unchanged
    assert status == 409
    assert body["error"] == "invalid_transition"
    assert before.stage.value in body["message"]
    assert stored(repository, lead_id) == before


def test_a_disposition_for_an_unknown_lead_is_404(admin: Callable[..., tuple[int, Any]]) -> None:
    status, body = admin("POST", "0" * 32, "disposition", {"disposition": "accepted"})
    assert (status, body) == (404, {"error": "not_found"})


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ("", 400, {"body"}),
        ("{not json", 400, {"body"}),
        ("[]", 422, {"body"}),
        ("null", 422, {"body"}),
        ({}, 422, {"disposition"}),
        ({"disposition": "maybe"}, 422, {"disposition"}),
        ({"disposition": "Accepted"}, 422, {"disposition"}),
        ({"disposition": "accepted", "reason": "x" * 501}, 422, {"reason"}),
        ({"disposition": "accepted", "reason": 42}, 422, {"reason"}),
        ({"disposition": "accepted", "by": "x" * 201}, 422, {"by"}),
        ({"disposition": "accepted", "stage": "customer"}, 422, {"stage"}),
        ({"disposition": "maybe", "reason": ["a"]}, 422, {"disposition", "reason"}),
        ({"disposition": "won", "amount": -1}, 422, {"amount"}),
        ({"disposition": "won", "amount": "1万円"}, 422, {"amount"}),
        ({"disposition": "lost", "amount": 100}, 422, {"amount"}),
    ],
)
def test_a_bad_disposition_body_is_refused_with_field_errors(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    body: Any,
    status: int,
    fields: set[str],
) -> None:
    before = stored(repository, mql)

    answer_status, answer = admin("POST", mql, "disposition", body)

    assert answer_status == status
    assert {e["field"] for e in answer["errors"]} == fields
    assert all(e["code"] for e in answer["errors"])
    assert stored(repository, mql) == before


def test_the_cooldown_and_waiting_period_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("REJECTED_COOLDOWN_DAYS", "45")
    monkeypatch.setenv("LOST_DORMANT_AFTER_DAYS", "90")
    settings = AdminSettings.from_env()
    assert (settings.rejected_cooldown_days, settings.lost_dormant_after_days) == (45, 90)
    monkeypatch.setenv("LOST_DORMANT_AFTER_DAYS", "0")
    with pytest.raises(ValueError, match="lost_dormant_after_days"):
        AdminSettings.from_env()


# -- DELETE /leads/{lead_id} -----------------------------------------------------------------


def test_delete_erases_the_personal_data_and_keeps_a_hashed_suppression(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    dynamodb: Any,
    repository: DynamoLeadRepository,
) -> None:
    # Given an MQL with a profile, a timeline, consents and an email claim
    assert len(sort_keys(dynamodb, mql)) > 3

    # When its erasure is requested
    status, body = admin("DELETE", mql)

    # Then it is gone: nothing under the lead, no email claim, no address anywhere
    assert (status, body) == (200, {"lead_id": mql, "erased": True})
    assert sort_keys(dynamodb, mql) == []
    assert repository.get(mql) is None
    assert repository.find_by_email(FORM["email"]) is None
    everything = json.dumps(table_items(dynamodb), ensure_ascii=False)
    for personal in (FORM["email"], "山田", "サンプル製作所", mql):
        assert personal not in everything
    assert not [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("EMAIL#")]
    # but a hash of the address remains, enough to refuse mailing it again
    digest = hashlib.sha256(FORM["email"].casefold().encode()).hexdigest()
    assert {"pk": {"S": f"ERASED#{digest}"}, "sk": {"S": "ERASED"}, "entity": {"S": "erased"}} in (
        table_items(dynamodb)
    )
    assert repository.lead_of(FORM["email"].upper()) == (None, True)
    # and the lead is unknown to the API from now on
    assert admin("GET", mql) == (404, {"error": "not_found"})
    assert admin("DELETE", mql) == (404, {"error": "not_found"})


def test_a_later_post_with_an_erased_address_makes_a_lead_that_is_never_mailed(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    post: Callable[[dict[str, Any]], dict[str, Any]],
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
    lambda_context: Any,
) -> None:
    # Given an erased lead
    assert admin("DELETE", mql)[0] == 200

    # When the same person (another spelling of the address) downloads a guide, opting in
    clock.advance(timedelta(days=1))
    response = post(
        form_post(
            {
                "email": FORM["email"].upper(),
                "form_type": "download",
                "consent": "on",
                "company": "株式会社サンプル製作所",
            }
        )
    )
    assert response["statusCode"] in (200, 303)
    lead = repository.find_by_email(FORM["email"])
    assert lead is not None

    # Then sales can see the new lead, but it is suppressed for the erasure and in no program
    assert lead.lead_id != mql
    assert (lead.suppressed, lead.suppression_reason) == (True, "erased")
    assert lead.consent.opted_in
    assert lead.enrolment is None
    assert indexed_due_at(dynamodb, lead.lead_id) is None
    # and the scheduler and sender never mail it, whatever time it is
    world = build_world(clock, dynamodb, TABLE, lambda_context)
    for _ in range(3):
        world.run()
        world.advance(timedelta(days=7))
    assert [e.to for e in world.ses.sent] == []


def test_events_for_an_erased_lead_are_dropped(
    admin: Callable[..., tuple[int, Any]],
    repository: DynamoLeadRepository,
    dynamodb: Any,
    clock: FixedClock,
    lambda_context: Any,
) -> None:
    lead = store_lead(repository, clock, **GRADE_A)
    assert admin("DELETE", lead.lead_id)[0] == 200
    before = table_items(dynamodb)

    late = ses_record("open", lead_id=lead.lead_id, email=lead.email, at=clock.now())
    result = engagement(recorder(dynamodb, clock), lambda_context)([raw(late)])

    assert result.failed == []
    assert table_items(dynamodb) == before
    assert lead_pk(lead.lead_id) not in json.dumps(before)


def test_an_unknown_route_is_404_not_a_failure(
    admin: Callable[..., tuple[int, Any]], mql: str
) -> None:
    assert admin("GET", mql, "nope")[0] == 404


# -- POST /leads/{lead_id}/purchases -----------------------------------------------------


PURCHASE = {
    "purchase_id": "SO-2026-0042",
    "amount": "¥1,200,000",  # as a sales system's export writes it
    "date": "2026/11/20",
    "product": "standard",
}


def test_a_purchase_makes_the_lead_a_customer_in_the_customer_program_ranked_new(
    admin: Callable[..., tuple[int, Any]],
    capture: Callable[[dict[str, Any]], str],
    repository: DynamoLeadRepository,
    dynamodb: Any,
) -> None:
    lead_id = capture({**FORM, "form_type": "download", "asset": "dx-guide.pdf"})

    status, answer = admin("POST", lead_id, "purchases", PURCHASE)

    assert status == 201, answer
    assert answer["stage"] == "customer"
    assert answer["duplicate"] is False
    assert answer["rank"]["segment"] == "new"
    assert (answer["rank"]["r"], answer["rank"]["f"], answer["rank"]["m"]) == (5, 1, 4)
    assert answer["purchases"]["total"] == 1_200_000
    assert answer["purchases"]["products"] == ["standard"]
    lead = stored(repository, lead_id)
    assert lead.stage is Stage.CUSTOMER
    assert lead.enrolment is not None
    assert lead.enrolment.program_id == "customer"
    kinds = {a.type: a for a in repository.timeline(lead_id)}
    assert kinds[ActivityType.PURCHASED].details["purchase_id"] == "SO-2026-0042"
    assert kinds[ActivityType.PURCHASED].details["by"] == IAM_CALLER["userArn"]
    assert kinds[ActivityType.STAGE_CHANGED].details["reason"] == "purchase"
    assert kinds[ActivityType.SEGMENT_CHANGED].details == {
        "from": None,
        "to": "new",
        "program_id": None,
    }


def test_the_same_purchase_sent_again_is_recorded_once(
    admin: Callable[..., tuple[int, Any]],
    capture: Callable[[dict[str, Any]], str],
    repository: DynamoLeadRepository,
    dynamodb: Any,
) -> None:
    lead_id = capture({**FORM, "form_type": "download", "asset": "dx-guide.pdf"})
    assert admin("POST", lead_id, "purchases", PURCHASE)[0] == 201
    before = stored(repository, lead_id)
    counters = [i for i in all_items(dynamodb) if i["pk"]["S"].startswith("COUNTER#")]

    # The same order (a retried request, a file imported again), its amount written
    # another way: recorded before, nothing changes
    status, answer = admin("POST", lead_id, "purchases", {**PURCHASE, "amount": 1_200_000})

    assert status == 200
    assert answer["duplicate"] is True
    assert stored(repository, lead_id) == before
    assert [i for i in all_items(dynamodb) if i["pk"]["S"].startswith("COUNTER#")] == counters
    # while another order the same day is a purchase of its own
    status, answer = admin("POST", lead_id, "purchases", {**PURCHASE, "purchase_id": "SO-43"})
    assert status == 201
    assert answer["purchases"]["count"] == 2


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ({**PURCHASE, "amount": "たくさん"}, 422, {"amount"}),
        ({**PURCHASE, "date": "昨日"}, 422, {"date"}),
        ({**PURCHASE, "date": "2026-11-24"}, 422, {"date"}),  # tomorrow in Japan
        ({k: v for k, v in PURCHASE.items() if k != "product"}, 422, {"product"}),
        ({**PURCHASE, "discount": 10}, 422, {"discount"}),
        ("{not json", 400, {"body"}),
    ],
)
def test_a_bad_purchase_is_refused_with_field_errors_and_changes_nothing(
    admin: Callable[..., tuple[int, Any]],
    mql: str,
    repository: DynamoLeadRepository,
    body: Any,
    status: int,
    fields: set[str],
) -> None:
    before = stored(repository, mql)

    answer_status, answer = admin("POST", mql, "purchases", body)

    assert answer_status == status
    assert {e["field"] for e in answer["errors"]} == fields
    assert stored(repository, mql) == before


def test_a_purchase_for_an_unknown_lead_is_404(admin: Callable[..., tuple[int, Any]]) -> None:
    assert admin("POST", "0" * 32, "purchases", PURCHASE)[0] == 404

"""POST /visits and GET /tracker.js through the real handler against moto: beacons,
attribution on a form post and through a signed email reference, page-rule scoring,
the revisit alert, and faults on every DynamoDB call of the write path."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.capture.handler import Dependencies as CaptureDependencies
from functions.capture.handler import build_app as build_capture
from functions.capture.handler import lambda_handler as capture_handler
from functions.capture.settings import CaptureSettings
from functions.observability import build_logger
from functions.visits.handler import SNIPPET, Dependencies, VisitSettings, build_app
from functions.visits.handler import lambda_handler as visits_handler
from shared.adapters.leads import DynamoLeadRepository
from shared.adapters.sns import SnsSalesPublisher
from shared.adapters.visits import DynamoVisitStore
from shared.domain.clock import FixedClock
from shared.domain.leads import ActivityType, Stage
from shared.domain.machine_engagement import load_engagement_rules
from shared.domain.scoring import Signal, load_scoring
from shared.domain.tokens import SiteReferences, UnsubscribeTokens
from shared.services.qualification import ScoreKeeper
from shared.services.visits import VisitTracker
from shared.web.pages import Pages
from tests.emf import metric_counts
from tests.events import json_post, rest_event
from tests.integration.conftest import SITE, TABLE, all_items
from tests.integration.scoring_world import (
    GRADE_A,
    activities,
    award,
    capture_with_scores,
    fail_calls,
    lose_answer,
    qualify,
    score_keeper,
    store_lead,
    stored,
)

SECRET = b"0123456789abcdef0123456789abcdef"
RULES = load_scoring()


def new_id() -> str:
    return uuid.uuid4().hex


class World:
    """The visits and capture functions wired as their ``dependencies()`` wire them."""

    def __init__(self, client: Any, clock: FixedClock, context: Any) -> None:
        self.client = client
        self.clock = clock
        self.context = context
        self.repository = DynamoLeadRepository(client, TABLE)
        self.scores: ScoreKeeper = score_keeper(client, clock)
        sns = boto3.client("sns")
        sqs = boto3.client("sqs")
        self.topic = sns.create_topic(Name="sales-leads")["TopicArn"]
        self.inbox = sqs.create_queue(QueueName="sales-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=self.inbox, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=inbox_arn)
        self.sns, self.sqs = sns, sqs
        self.tracker = VisitTracker(
            DynamoVisitStore(client, TABLE),
            self.repository,
            self.scores,
            clock,
            attribution=timedelta(days=30),
            alert_period=timedelta(hours=24),
            publisher=SnsSalesPublisher(sns, self.topic),
        )
        settings = VisitSettings(table_name=TABLE, cors_origins=(SITE,))
        self.app = build_app(
            Dependencies(
                settings,
                self.tracker,
                SiteReferences(SECRET),
                clock,
                build_logger("visits"),
                SNIPPET.read_text(encoding="utf-8"),
                load_engagement_rules(),
            )
        )
        capture_settings = CaptureSettings(table_name=TABLE, cors_origins=(SITE,))
        self.capture_app = build_capture(
            CaptureDependencies(
                capture_settings,
                capture_with_scores(client, clock),
                Pages(),
                build_logger("capture"),
                self.tracker,
            )
        )

    def send(
        self,
        body: Any,
        *,
        content_type: str = "text/plain;charset=UTF-8",
        user_agent: str | None = None,
        source_ip: str = "203.0.113.10",
    ) -> dict[str, Any]:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        headers = {"Content-Type": content_type, "Origin": SITE}
        if user_agent is not None:
            headers["User-Agent"] = user_agent
        event = rest_event("POST", "/visits", body=text, headers=headers, source_ip=source_ip)
        return visits_handler(event, self.context, self.app)

    def view(
        self, visitor: str, path: str, seconds: int = 30, view_id: str | None = None
    ) -> dict[str, Any]:
        return self.send(
            {
                "kind": "view",
                "visitor_id": visitor,
                "view_id": view_id or new_id(),
                "url": f"{SITE}{path}",
                "title": f"{path} | Flowlane",
                "referrer": "https://www.google.com/",
                "seconds": seconds,
            }
        )

    def post_form(self, visitor: str, email: str) -> str:
        fields = {
            "email": email,
            "name": "山田 太郎",
            "form_type": "download",
            "asset": "dx-whitepaper-2026",
            "consent": True,
            "visitor_id": visitor,
            **{k: v for k, v in GRADE_A.items() if k not in ("interests", "name")},
        }
        response = capture_handler(json_post(fields), self.context, self.capture_app)
        assert response["statusCode"] in (200, 201), response["body"]
        return str(json.loads(response["body"])["lead_id"])

    def inbox_messages(self) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.inbox, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return [json.loads(m["Body"]) for m in response.get("Messages", [])]

    def score(self, lead_id: str) -> float:
        lead = stored(self.repository, lead_id)
        return RULES.score(lead.score_units, self.clock.now())


@pytest.fixture
def world(dynamodb: Any, clock: FixedClock, lambda_context: Any) -> World:
    return World(dynamodb, clock, lambda_context)


def errors_of(response: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in json.loads(response["body"])["errors"]]


def visit_items(client: Any) -> list[dict[str, Any]]:
    return [i for i in all_items(client) if i["sk"]["S"].startswith("VISIT#")]


# -- the endpoint ------------------------------------------------------------------------


def test_the_snippet_is_served_as_javascript_by_the_api(world: World) -> None:
    response = visits_handler(rest_event("GET", "/tracker.js"), world.context, world.app)
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"][0].startswith("text/javascript")
    assert "leadNurture" in response["body"]
    assert "sendBeacon" in response["body"]
    assert "visibilitychange" in response["body"]


def test_an_anonymous_view_is_one_visit_item_without_ip_or_query(world: World) -> None:
    visitor = new_id()
    response = world.send(
        {
            "kind": "view",
            "visitor_id": visitor,
            "view_id": new_id(),
            "url": f"{SITE}/pricing?utm_source=x&email=a@example.com#plans",
            "title": "料金 | Flowlane",
            "seconds": 42,
        }
    )
    assert response["statusCode"] == 204
    items = visit_items(world.client)
    assert len(items) == 1
    item = items[0]
    assert item["pk"]["S"] == f"VISITOR#{visitor}"
    assert item["url"]["S"] == f"{SITE}/pricing"
    assert item["title"]["S"] == "料金 | Flowlane"
    assert int(item["expires_at"]["N"]) > 0
    assert "203.0.113.10" not in json.dumps(item)


def test_repeated_beacons_of_one_view_are_stored_once(world: World) -> None:
    visitor, view = new_id(), new_id()
    for _ in range(3):
        assert world.view(visitor, "/pricing", view_id=view)["statusCode"] == 204
    assert len(visit_items(world.client)) == 1


def test_ignored_pages_are_not_stored(world: World) -> None:
    assert world.view(new_id(), "/careers/engineer")["statusCode"] == 204
    assert visit_items(world.client) == []


BAD_BEACONS: list[tuple[str, Any, tuple[str, str]]] = [
    ("no kind", {"visitor_id": "a" * 32}, ("kind", "required")),
    ("unknown kind", {"kind": "click"}, ("kind", "invalid_kind")),
    (
        "an unknown field",
        {"kind": "identify", "visitor_id": "a" * 32, "ref": "x.y", "email": "a@b.c"},
        ("email", "unknown_field"),
    ),
    (
        "a bad visitor id",
        {"kind": "identify", "visitor_id": "../x", "ref": "r"},
        ("visitor_id", "invalid_id"),
    ),
    (
        "another site's page",
        {"kind": "view", "visitor_id": "a" * 32, "view_id": "b" * 32,
         "url": "https://evil.example/pricing", "seconds": 3},
        ("url", "origin_not_allowed"),
    ),
    (
        "a javascript url",
        {"kind": "view", "visitor_id": "a" * 32, "view_id": "b" * 32,
         "url": "javascript:alert(1)", "seconds": 3},
        ("url", "invalid_url"),
    ),
    (
        "negative seconds",
        {"kind": "view", "visitor_id": "a" * 32, "view_id": "b" * 32,
         "url": f"{SITE}/", "seconds": -1},
        ("seconds", "invalid_seconds"),
    ),
    (
        "a title too long",
        {"kind": "view", "visitor_id": "a" * 32, "view_id": "b" * 32,
         "url": f"{SITE}/", "seconds": 1, "title": "x" * 301},
        ("title", "invalid_title"),
    ),
    ("a list", [1, 2], ("body", "not_an_object")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "error"), BAD_BEACONS, ids=[c[0] for c in BAD_BEACONS])
def test_bad_beacons_get_field_errors(
    world: World, case: str, body: Any, error: tuple[str, str]
) -> None:
    response = world.send(body)
    assert response["statusCode"] == 422, case
    assert error in errors_of(response)
    assert visit_items(world.client) == []


def test_unreadable_oversize_and_foreign_bodies_are_4xx(world: World) -> None:
    assert world.send("{not json")["statusCode"] == 400
    assert world.send({"kind": "view"}, content_type="application/xml")["statusCode"] == 415
    huge = {"kind": "view", "visitor_id": "a" * 32, "title": "x" * 5000}
    response = world.send(huge)
    assert response["statusCode"] == 413
    assert errors_of(response) == [("body", "too_large")]


def test_cors_preflight_and_answer_for_the_site_origin_only(world: World) -> None:
    preflight = rest_event(
        "OPTIONS",
        "/visits",
        headers={"Origin": SITE, "Access-Control-Request-Method": "POST"},
    )
    answer = visits_handler(preflight, world.context, world.app)
    assert answer["statusCode"] == 204
    assert answer["multiValueHeaders"]["Access-Control-Allow-Origin"] == [SITE]
    foreign = rest_event(
        "OPTIONS",
        "/visits",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    refused = visits_handler(foreign, world.context, world.app)
    assert "Access-Control-Allow-Origin" not in (refused.get("multiValueHeaders") or {})


# -- attribution -------------------------------------------------------------------------


def test_a_form_post_attributes_the_visitors_recent_views_to_the_lead(world: World) -> None:
    visitor = new_id()
    # Given pages read anonymously: pricing long enough, product too briefly, careers
    world.view(visitor, "/pricing", seconds=40)
    world.view(visitor, "/product", seconds=2)
    world.view(visitor, "/careers")
    world.clock.advance(timedelta(minutes=5))
    # When the browser posts the whitepaper form with the snippet's visitor id
    lead_id = world.post_form(visitor, f"v-{new_id()[:8]}@example.co.jp")
    # Then the pages are on its timeline, pricing scored and product not (too short)
    viewed = activities(world.repository, lead_id, ActivityType.PAGE_VIEWED)
    by_group = {a.details["page_group"]: a for a in viewed}
    assert set(by_group) == {"pricing", "product"}
    assert by_group["pricing"].details["points"] == 8
    assert "points" not in by_group["product"].details
    assert by_group["pricing"].details["title"] == "/pricing | Flowlane"
    lead = stored(world.repository, lead_id)
    assert lead.page_groups == ("pricing", "product")
    # and the score is the form's 10 and pricing's 8 (decayed over five minutes)
    assert world.score(lead_id) == pytest.approx(18, abs=0.1)
    # and a later view of the now-known visitor is the lead's at once
    world.view(visitor, "/case-studies/acme", seconds=20)
    assert len(activities(world.repository, lead_id, ActivityType.PAGE_VIEWED)) == 3
    # and posting again attributes nothing twice (the same form again within the hour is
    # the same post: answered as the first, scored once)
    world.post_form(visitor, lead.email)
    assert len(activities(world.repository, lead_id, ActivityType.PAGE_VIEWED)) == 3
    assert world.score(lead_id) == pytest.approx(21, abs=0.1)


def test_views_older_than_the_window_are_not_attributed(world: World) -> None:
    visitor = new_id()
    world.view(visitor, "/pricing", seconds=40)
    world.clock.advance(timedelta(days=31))
    lead_id = world.post_form(visitor, f"old-{new_id()[:8]}@example.co.jp")
    assert activities(world.repository, lead_id, ActivityType.PAGE_VIEWED) == []


def test_a_signed_email_reference_attributes_without_a_form(world: World) -> None:
    lead = store_lead(world.repository, world.clock)
    visitor = new_id()
    world.view(visitor, "/case-studies/acme", seconds=30)
    ref = UnsubscribeTokens(SECRET).site_references().sign(lead.lead_id)
    response = world.send({"kind": "identify", "visitor_id": visitor, "ref": ref})
    assert response["statusCode"] == 204
    viewed = activities(world.repository, lead.lead_id, ActivityType.PAGE_VIEWED)
    assert [a.details["page_group"] for a in viewed] == ["case_study"]


@pytest.mark.parametrize(
    "forge",
    [
        lambda lead_id: lead_id,  # unsigned
        lambda lead_id: f"{lead_id}.AAAAAAAAAAAAAAAAAAAAAA",  # a made-up MAC
        lambda lead_id: UnsubscribeTokens(SECRET).sign(lead_id),  # an unsubscribe token
        lambda lead_id: SiteReferences(b"another-secret-of-16+bytes").sign(lead_id),
    ],
    ids=["unsigned", "made-up", "unsubscribe-token", "other-key"],
)
def test_a_forged_reference_is_refused(world: World, forge: Callable[[str], str]) -> None:
    lead = store_lead(world.repository, world.clock)
    visitor = new_id()
    world.view(visitor, "/pricing", seconds=30)
    response = world.send({"kind": "identify", "visitor_id": visitor, "ref": forge(lead.lead_id)})
    assert response["statusCode"] == 422
    assert errors_of(response) == [("ref", "invalid_reference")]
    assert activities(world.repository, lead.lead_id, ActivityType.PAGE_VIEWED) == []
    assert DynamoVisitStore(world.client, TABLE).linked_lead(visitor) is None


# -- scoring -----------------------------------------------------------------------------


def known_visitor(world: World, lead_id: str) -> str:
    visitor = new_id()
    ref = SiteReferences(SECRET).sign(lead_id)
    assert world.send({"kind": "identify", "visitor_id": visitor, "ref": ref})["statusCode"] == 204
    return visitor


def test_page_points_respect_the_daily_cap(world: World) -> None:
    lead = store_lead(world.repository, world.clock)
    visitor = known_visitor(world, lead.lead_id)
    # When it reads pricing three times in a day (8 points each, 16 a day at most)
    for _ in range(3):
        world.clock.advance(timedelta(seconds=1))
        world.view(visitor, "/pricing", seconds=30)
    # Then two views scored and the third is on the timeline without points
    viewed = activities(world.repository, lead.lead_id, ActivityType.PAGE_VIEWED)
    assert [a.details.get("points") for a in viewed] == [8, 8, None]
    assert world.score(lead.lead_id) == pytest.approx(16, abs=0.1)
    # and the next (JST) day has room again
    world.clock.advance(timedelta(days=1))
    world.view(visitor, "/pricing", seconds=30)
    assert world.score(lead.lead_id) == pytest.approx(16 * 2 ** (-1 / 30) + 8, abs=0.1)


def test_a_page_view_that_qualifies_makes_the_lead_an_mql(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a grade A lead at 40 points (seminar registration and attendance)
    lead = store_lead(world.repository, world.clock, **GRADE_A)
    award(world.client, world.clock, lead.lead_id, Signal.SEMINAR_REGISTRATION)
    award(world.client, world.clock, lead.lead_id, Signal.SEMINAR_ATTENDANCE)
    visitor = known_visitor(world, lead.lead_id)
    # When it reads pricing (48), then pricing too briefly (below the minimum: 48)
    world.view(visitor, "/pricing", seconds=30)
    world.clock.advance(timedelta(seconds=1))
    world.view(visitor, "/pricing", seconds=RULES.pages.min_seconds - 1)
    assert stored(world.repository, lead.lead_id).stage is Stage.LEAD
    assert metric_counts(capsys.readouterr().out) == {}
    # and pricing again, long enough (56 >= 50)
    world.clock.advance(timedelta(seconds=1))
    world.view(visitor, "/pricing", seconds=RULES.pages.min_seconds)
    # Then the lead is an MQL, for that page, and the visits function counts it
    assert metric_counts(capsys.readouterr().out) == {("visits", "LeadsQualified"): 1}
    qualified = stored(world.repository, lead.lead_id)
    assert qualified.stage is Stage.MQL
    assert qualified.qualification is not None
    assert qualified.qualification["reason"] == "page:pricing"
    kinds = [a.type for a in activities(world.repository, lead.lead_id)]
    assert ActivityType.QUALIFIED in kinds


def test_views_read_before_the_visitor_was_known_can_qualify_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a grade A lead at 40 points, whose browser read pricing twice anonymously
    lead = store_lead(world.repository, world.clock, **GRADE_A)
    award(world.client, world.clock, lead.lead_id, Signal.SEMINAR_REGISTRATION)
    award(world.client, world.clock, lead.lead_id, Signal.SEMINAR_ATTENDANCE)
    visitor = new_id()
    for _ in range(2):
        world.view(visitor, "/pricing", seconds=30)
        world.clock.advance(timedelta(seconds=1))
    assert metric_counts(capsys.readouterr().out) == {}
    # When an email's signed link tells who the visitor is (40 + 8 + 8 >= 50)
    ref = SiteReferences(SECRET).sign(lead.lead_id)
    assert world.send({"kind": "identify", "visitor_id": visitor, "ref": ref})["statusCode"] == 204
    # Then the lead is an MQL, counted once by the visits function
    assert stored(world.repository, lead.lead_id).stage is Stage.MQL
    assert metric_counts(capsys.readouterr().out) == {("visits", "LeadsQualified"): 1}


def test_a_lead_with_sales_back_on_pricing_alerts_once_per_period(world: World) -> None:
    lead = store_lead(world.repository, world.clock, **GRADE_A)
    assert qualify(world.client, world.clock, lead.lead_id, "test", high_intent=True)
    world.clock.advance(timedelta(hours=1))
    visitor = new_id()
    world.send(
        {
            "kind": "identify",
            "visitor_id": visitor,
            "ref": SiteReferences(SECRET).sign(lead.lead_id),
        }
    )
    # A product page is no news; pricing is, once; pricing again the same day is not
    world.view(visitor, "/product", seconds=30)
    world.view(visitor, "/pricing", seconds=30)
    world.clock.advance(timedelta(hours=3))
    world.view(visitor, "/pricing", seconds=30)
    messages = world.inbox_messages()
    assert len(messages) == 1
    assert messages[0]["MessageAttributes"]["event"]["Value"] == "revisit"
    assert json.loads(messages[0]["Message"])["page_group"] == "pricing"
    # A day later it is news again
    world.clock.advance(timedelta(hours=22))
    world.view(visitor, "/pricing", seconds=30)
    assert len(world.inbox_messages()) == 1


def test_a_failed_alert_is_published_by_the_browsers_retry(world: World) -> None:
    lead = store_lead(world.repository, world.clock, **GRADE_A)
    qualify(world.client, world.clock, lead.lead_id, "test", high_intent=True)
    world.clock.advance(timedelta(hours=1))
    visitor, view = new_id(), new_id()
    world.send(
        {
            "kind": "identify",
            "visitor_id": visitor,
            "ref": SiteReferences(SECRET).sign(lead.lead_id),
        }
    )

    def refuse(**_: Any) -> None:
        error: Any = {"Error": {"Code": "InternalError", "Message": "injected"}}
        raise ClientError(error, "Publish")

    world.sns.meta.events.register("before-call.sns.Publish", refuse)
    assert world.view(visitor, "/pricing", view_id=view)["statusCode"] == 503
    world.sns.meta.events.unregister("before-call.sns.Publish", refuse)
    assert world.view(visitor, "/pricing", view_id=view)["statusCode"] == 204
    assert len(world.inbox_messages()) == 1
    assert len(activities(world.repository, lead.lead_id, ActivityType.PAGE_VIEWED)) == 1


# -- faults on the write path, then the browser's retry ------------------------------------


def _visit_put(params: dict[str, Any]) -> bool:
    return str(params.get("Item", {}).get("sk", {}).get("S", "")).startswith("VISIT#")


def _link_get(params: dict[str, Any]) -> bool:
    return params.get("Key", {}).get("sk", {}).get("S") == "LINK"


ANY: Callable[[dict[str, Any]], bool] = lambda params: True  # noqa: E731
WRITE_PATH = [
    ("GetItem", _link_get),  # is the visitor known?
    ("PutItem", _visit_put),  # the view
    ("BatchGetItem", ANY),  # the lead and the view's marker
    ("TransactWriteItems", ANY),  # marker, score, caps, page group, the page_viewed activity
]


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize(
    ("operation", "when"), WRITE_PATH, ids=[f"{op}-{i}" for i, (op, _) in enumerate(WRITE_PATH)]
)
def test_a_fault_on_any_call_then_the_retry_counts_the_view_once(
    world: World, operation: str, when: Callable[[dict[str, Any]], bool], position: str
) -> None:
    lead = store_lead(world.repository, world.clock, **GRADE_A)
    visitor, view = new_id(), new_id()
    world.send(
        {
            "kind": "identify",
            "visitor_id": visitor,
            "ref": SiteReferences(SECRET).sign(lead.lead_id),
        }
    )
    if position == "before":
        failed = fail_calls(world.client, operation, when=when)
    else:
        failed = lose_answer(world.client, operation, when)
    first = world.view(visitor, "/pricing", seconds=30, view_id=view)
    assert failed, f"{operation} was not called"
    assert first["statusCode"] == 503
    world.clock.advance(timedelta(seconds=3))
    assert world.view(visitor, "/pricing", seconds=30, view_id=view)["statusCode"] == 204
    assert world.view(visitor, "/pricing", seconds=30, view_id=view)["statusCode"] == 204
    viewed = activities(world.repository, lead.lead_id, ActivityType.PAGE_VIEWED)
    assert len(viewed) == 1
    assert viewed[0].details["points"] == 8
    assert world.score(lead.lead_id) == pytest.approx(8, abs=0.05)
    assert stored(world.repository, lead.lead_id).page_groups == ("pricing",)


@pytest.mark.parametrize("position", ["before", "after"])
def test_an_anonymous_view_survives_a_faulty_put_and_is_attributed_once(
    world: World, position: str
) -> None:
    visitor, view = new_id(), new_id()
    if position == "before":
        fail_calls(world.client, "PutItem", when=_visit_put)
    else:
        lose_answer(world.client, "PutItem", _visit_put)
    assert world.view(visitor, "/pricing", seconds=30, view_id=view)["statusCode"] == 503
    assert world.view(visitor, "/pricing", seconds=30, view_id=view)["statusCode"] == 204
    assert len(visit_items(world.client)) == 1
    lead_id = world.post_form(visitor, f"f-{new_id()[:8]}@example.co.jp")
    assert len(activities(world.repository, lead_id, ActivityType.PAGE_VIEWED)) == 1


# -- a mail scanner opening the email's link in a headless browser ---------------------------


@pytest.mark.parametrize(
    ("user_agent", "source_ip"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0.0.0 Safari/537.36", "198.51.100.9"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0", "40.107.74.21"),
    ],
    ids=["a headless browser", "Exchange Online's addresses"],
)
def test_a_scanner_running_the_snippet_is_neither_linked_nor_scored(
    world: World, user_agent: str, source_ip: str
) -> None:
    # Given a lead, and a scanner that opened its email's link (with the signed reference)
    # in a browser that ran the snippet
    lead_id = world.post_form(new_id(), f"scanned-{new_id()[:8]}@example.co.jp")
    before = world.repository.get(lead_id)
    assert before is not None
    scanner = new_id()
    reference = SiteReferences(SECRET).sign(lead_id)

    # When its identify and page-view beacons arrive
    identify = {"kind": "identify", "visitor_id": scanner, "ref": reference}
    answers = [world.send(identify, user_agent=user_agent, source_ip=source_ip)]
    view = {
        "kind": "view",
        "visitor_id": scanner,
        "view_id": new_id(),
        "url": f"{SITE}/pricing",
        "title": "料金 | Flowlane",
        "seconds": 60,
    }
    answers.append(world.send(view, user_agent=user_agent, source_ip=source_ip))

    # Then both are answered as usual, and nothing is linked, stored or scored
    assert [a["statusCode"] for a in answers] == [204, 204]
    assert DynamoVisitStore(world.client, TABLE).linked_lead(scanner) is None
    assert not [i for i in all_items(world.client) if i["pk"]["S"] == f"VISITOR#{scanner}"]
    after = world.repository.get(lead_id)
    assert after is not None
    assert after.score_units == before.score_units
    assert after.page_groups == ()
    # while the same beacons from the reader's own browser are the lead's
    reader = new_id()
    assert world.send({**identify, "visitor_id": reader})["statusCode"] == 204
    assert world.send({**view, "visitor_id": reader, "view_id": new_id()})["statusCode"] == 204
    assert DynamoVisitStore(world.client, TABLE).linked_lead(reader) == lead_id


# -- the form post that links a visitor, under faults ----------------------------------------


@pytest.mark.parametrize(
    ("operation", "what"),
    [("PutItem", "the visitor's link"), ("Query", "the visitor's recent views")],
)
def test_a_form_post_whose_linking_fails_keeps_the_lead_and_the_next_post_links_once(
    world: World, operation: str, what: str
) -> None:
    # Given a visitor who read pricing for a minute before posting the whitepaper form
    visitor = new_id()
    assert world.view(visitor, "/pricing", seconds=60)["statusCode"] == 204
    failed = fail_calls(
        world.client,
        operation,
        when=lambda params: "VISITOR#" in json.dumps(params),
    )
    email = f"linked-{new_id()[:8]}@example.co.jp"

    # When DynamoDB fails the link's write (or the read of its views) during the post
    lead_id = world.post_form(visitor, email)

    # Then the lead is stored all the same, the views not yet its
    assert len(failed) == 1
    assert not activities(world.repository, lead_id, ActivityType.PAGE_VIEWED)
    scored = world.score(lead_id)
    # When the same browser posts a form again (the next visit), the views become its once
    world.clock.advance(timedelta(minutes=5))
    assert world.post_form(visitor, email) == lead_id
    assert world.post_form(visitor, email) == lead_id
    views = activities(world.repository, lead_id, ActivityType.PAGE_VIEWED)
    assert len(views) == 1
    assert views[0].details["points"] == 8
    assert world.score(lead_id) >= scored + 8 - 0.1
    assert DynamoVisitStore(world.client, TABLE).linked_lead(visitor) == lead_id


def test_a_view_stored_while_a_form_post_links_the_visitor_is_the_leads(world: World) -> None:
    visitor, email = new_id(), f"race-{new_id()[:8]}@example.co.jp"
    posted: list[str] = []

    class PostedMeanwhile(DynamoVisitStore):
        """The form post runs after the view read the (missing) link, before it is stored:
        the post links the visitor and finds no view to attribute."""

        def put_view(self, view: Any, expires_at: Any) -> bool:
            if not posted:
                posted.append(world.post_form(visitor, email))
            return super().put_view(view, expires_at)

    world.tracker._store = PostedMeanwhile(world.client, TABLE)
    response = world.view(visitor, "/pricing", seconds=40)

    # Then the view is the lead's all the same, scored once
    assert response["statusCode"] == 204
    (viewed,) = activities(world.repository, posted[0], ActivityType.PAGE_VIEWED)
    assert viewed.details["page_group"] == "pricing"
    assert viewed.details["points"] == 8

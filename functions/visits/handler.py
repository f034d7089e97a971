"""``POST /visits`` (page-view and identify beacons of the snippet) and ``GET /tracker.js``
(the snippet itself): the site's own first-party tracking, no third party involved."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from functions.observability import answer_unexpected_errors, build_logger, emit_counts, logged
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.machine_engagement import EngagementRules, Kind, load_engagement_rules
from shared.domain.metrics import LEADS_QUALIFIED
from shared.domain.tokens import InvalidToken, SiteReferences
from shared.services.visits import PageView, VisitTracker
from shared.settings import EnvSettings
from shared.web.beacon import (
    BeaconError,
    IdentifyBeacon,
    InvalidBeacon,
    decode_beacon,
    parse_beacon,
)
from shared.web.forms import MalformedBody, UnsupportedMediaType
from shared.web.media_types import JSON_TYPE
from shared.web.pages import BodyTooLarge, raw_body

SNIPPET = Path(__file__).with_name("tracker.js")

PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("送信内容を読み取れませんでした。", "The beacon could not be read."),
    413: ("送信内容が大きすぎます。", "The beacon is too large."),
    415: ("この形式の送信には対応していません。", "This kind of body is not supported."),
    503: ("ただいま混み合っています。", "We are busy right now; send it again."),
}


class VisitSettings(EnvSettings):
    table_name: str
    # The site's origins: the only pages whose views are accepted, and CORS.
    cors_origins: tuple[str, ...] = ()
    visit_max_body_bytes: int = Field(default=2048, gt=0)
    # Anonymous views this recent are the lead's when the visitor becomes known.
    visit_attribution_days: int = Field(default=30, ge=1, le=30)
    # At most one revisit alert to sales per lead in this many hours.
    revisit_alert_hours: int = Field(default=24, ge=1)
    sales_leads_topic_arn: str | None = None


@dataclass(frozen=True)
class Dependencies:
    settings: VisitSettings
    tracker: VisitTracker
    references: SiteReferences
    clock: Clock
    logger: Logger
    snippet: str
    # Mail scanners open email links in headless browsers that may run the snippet:
    # their beacons are told apart by the email rules' agents (shared/content/engagement.yaml).
    machines: EngagementRules | None = None


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status, JSON_TYPE, json.dumps(body, ensure_ascii=False))


def _problem(status: int, code: str) -> Response[str]:
    ja, en = PROBLEMS[status]
    error = {"field": "body", "code": code, "message": ja, "message_en": en}
    return _json(status, {"errors": [error]})


def build_app(deps: Dependencies) -> APIGatewayRestResolver:
    settings = deps.settings
    cors = None
    if settings.cors_origins:
        first, *extra = settings.cors_origins
        cors = CORSConfig(
            allow_origin=first, extra_origins=extra, allow_headers=["Content-Type"], max_age=600
        )
    app = APIGatewayRestResolver(cors=cors)
    answer_unexpected_errors(app, deps.logger)

    @app.get("/tracker.js")
    def snippet() -> Response[str]:
        return Response(
            200,
            "text/javascript; charset=utf-8",
            deps.snippet,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.post("/visits", cors=bool(cors))
    def post_visit() -> Response[str]:
        event = app.current_event
        try:
            body = raw_body(
                event.body, bool(event.is_base64_encoded), settings.visit_max_body_bytes
            )
            beacon = parse_beacon(
                decode_beacon(body, event.headers.get("content-type")), settings.cors_origins
            )
        except BodyTooLarge:
            return _problem(413, "too_large")
        except UnsupportedMediaType:
            return _problem(415, "unsupported_media_type")
        except MalformedBody as exc:
            return _problem(400, exc.code)
        except InvalidBeacon as exc:
            return _json(422, {"errors": [e.as_dict() for e in exc.errors]})
        machine = _machine(deps.machines, event.headers.get("user-agent"), event)
        if machine:
            # Accepted (a scanner learns nothing) but never linked, stored or scored.
            deps.logger.info("machine beacon dropped", extra={"reasons": machine})
            return Response(204, JSON_TYPE, "")
        try:
            if isinstance(beacon, IdentifyBeacon):
                try:
                    lead_id = deps.references.verify(beacon.ref)
                except InvalidToken:
                    deps.logger.info("forged or altered lead reference refused")
                    refused = BeaconError("ref", "invalid_reference")
                    return _json(422, {"errors": [refused.as_dict()]})
                identified = deps.tracker.identify(beacon.visitor_id, lead_id, via="email")
                deps.logger.info(
                    "visitor identified", extra={"lead_id": lead_id, "views": identified.views}
                )
                qualified = identified.qualified
            else:
                view = PageView(
                    visitor_id=beacon.visitor_id,
                    view_id=beacon.view_id,
                    url=beacon.url,
                    path=beacon.path,
                    title=beacon.title,
                    seconds=beacon.seconds,
                    at=deps.clock.now(),
                    referrer=beacon.referrer,
                )
                outcome = deps.tracker.record(view)
                deps.logger.debug("page view", extra={"outcome": outcome})
                qualified = outcome == "qualified"
        except (ClientError, BotoCoreError):
            # Nothing half-done that a repeat of the beacon would not finish.
            deps.logger.exception("visit could not be stored")
            return _problem(503, "unavailable")
        emit_counts("visits", {LEADS_QUALIFIED: qualified})
        return Response(204, JSON_TYPE, "")

    return app


def _machine(rules: EngagementRules | None, user_agent: str | None, event: Any) -> list[str]:
    """Why the beacon's browser is a known scanner's or a script's (its address is read
    here and never stored)."""
    if rules is None:
        return []
    source_ip = event.request_context.identity.source_ip
    return list(rules.agent_reasons(Kind.CLICK, user_agent, source_ip))


def dependencies(clock: Clock | None = None) -> Dependencies:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.secrets import signing_secret
    from shared.adapters.sns import SnsSalesPublisher
    from shared.adapters.visits import DynamoVisitStore
    from shared.domain.scoring import load_scoring
    from shared.services.qualification import ScoreKeeper

    settings = VisitSettings.from_env()
    clock = clock or SystemClock()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
    leads = DynamoLeadRepository(dynamodb, settings.table_name)
    scores = ScoreKeeper(load_scoring())
    publisher = None
    if settings.sales_leads_topic_arn:
        publisher = SnsSalesPublisher(aws.client("sns"), settings.sales_leads_topic_arn)
    tracker = VisitTracker(
        DynamoVisitStore(dynamodb, settings.table_name),
        leads,
        scores,
        clock,
        attribution=timedelta(days=settings.visit_attribution_days),
        alert_period=timedelta(hours=settings.revisit_alert_hours),
        publisher=publisher,
    )
    return Dependencies(
        settings,
        tracker,
        SiteReferences(signing_secret(clients=aws)),
        clock,
        build_logger("visits"),
        SNIPPET.read_text(encoding="utf-8"),
        load_engagement_rules(),
    )


def build(clock: Clock | None = None) -> APIGatewayRestResolver:
    """The function as it runs, on the given clock (the local stack moves it)."""
    return build_app(dependencies(clock))


@cache
def _default_app() -> APIGatewayRestResolver:
    return build()


@logged("visits")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: APIGatewayRestResolver | None = None
) -> dict[str, Any]:
    return (app or _default_app()).resolve(event, context)

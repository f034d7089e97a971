"""Admin API (IAM-authorised): lead lookup, sales disposition, data-subject disclosure
and erasure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, ValidationError

from functions.observability import answer_unexpected_errors, build_logger, logged
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock, to_iso
from shared.domain.customers import FutureDate, Purchase, load_customers
from shared.domain.events import EventCatalog, load_events
from shared.domain.leads import is_lead_id
from shared.domain.programs import load_programs
from shared.domain.scoring import ScoringRules, load_scoring
from shared.ports import LeadRepository, UnknownLead
from shared.services.disclosure import LeadDisclosure, as_json, file_name
from shared.services.handoff import top_reasons
from shared.services.lifecycle import (
    DispositionRequest,
    InvalidTransition,
    LifecycleSettings,
    SalesFeedback,
)
from shared.services.purchases import PurchaseBook
from shared.services.registration import EventDesk
from shared.settings import EnvSettings
from shared.web.media_types import JSON_TYPE


class AdminSettings(EnvSettings):
    table_name: str
    rejected_cooldown_days: int = Field(default=30, ge=0)
    lost_dormant_after_days: int = Field(default=60, ge=1)
    dormant_after_days: int = Field(default=90, ge=1)


@dataclass(frozen=True)
class Dependencies:
    leads: LeadRepository
    feedback: SalesFeedback
    rules: ScoringRules
    clock: Clock
    logger: Logger
    disclosure: LeadDisclosure
    purchases: PurchaseBook
    desk: EventDesk
    events: EventCatalog


BAD_LEAD_ID = {
    "field": "lead_id",
    "code": "invalid_lead_id",
    "message": "リードIDの形式が正しくありません（0-9 と a-f の32文字）。",
    "message_en": "Not a lead id (32 characters of 0-9 and a-f).",
}


def _json(status: int, body: Any) -> Response[str]:
    return Response(status, JSON_TYPE, json.dumps(body, ensure_ascii=False, default=str))


FUTURE_DATE = {
    "field": "date",
    "code": "future_date",
    "message": "購入日が未来の日付です。",
    "message_en": "The purchase date is in the future.",
}


Body = TypeVar("Body", bound=BaseModel)


def _body(model: type[Body], text: str | None) -> Body | Response[str]:
    """The request's JSON body as ``model``; else 400 (not JSON) or 422 (each field that
    is wrong, with pydantic's code)."""
    try:
        return model.model_validate(json.loads(text or ""))
    except ValidationError as exc:
        errors = [
            {"field": ".".join(map(str, e["loc"])) or "body", "code": e["type"]}
            for e in exc.errors()
        ]
        return _json(422, {"errors": errors})
    except (ValueError, RecursionError):
        return _json(400, {"errors": [{"field": "body", "code": "malformed_json"}]})


def _not_an_id(lead_id: str) -> Response[str] | None:
    """422 for what cannot be a lead id (every route names one), before any read."""
    return None if is_lead_id(lead_id) else _json(422, {"errors": [BAD_LEAD_ID]})


def build_app(deps: Dependencies) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()
    answer_unexpected_errors(app, deps.logger)

    @app.get("/leads/<lead_id>")
    def get_lead(lead_id: str) -> Response[str]:
        if refused := _not_an_id(lead_id):
            return refused
        lead = deps.leads.get(lead_id)
        if lead is None:
            return _json(404, {"error": "not_found"})
        now = deps.clock.now()
        score = deps.rules.evaluate(lead, now)
        timeline = deps.leads.timeline(lead_id, limit=200)
        body = {
            "lead": lead.model_dump(mode="json", exclude={"score_units"}),
            "score": {
                "score": score.score,
                "grade": score.grade.value,
                "temperature": deps.rules.temperature(score.score, score.grade).value,
                "fit": [{"rule": r, "points": p} for r, p in score.fit],
                "top_reasons": top_reasons(timeline),
                "at": to_iso(now),
            },
            "timeline": [a.model_dump(mode="json") for a in timeline],
        }
        return _json(200, body)

    @app.post("/leads/<lead_id>/disposition")
    def disposition(lead_id: str) -> Response[str]:
        if refused := _not_an_id(lead_id):
            return refused
        request = _body(DispositionRequest, app.current_event.decoded_body)
        if isinstance(request, Response):
            return request
        caller = app.current_event.request_context.identity.user_arn
        try:
            lead = deps.feedback.report(lead_id, request, caller=caller)
        except UnknownLead:
            return _json(404, {"error": "not_found"})
        except InvalidTransition as exc:
            return _json(409, {"error": "invalid_transition", "message": str(exc)})
        deps.logger.info(
            "disposition",
            extra={
                "lead_id": lead_id,
                "disposition": request.disposition.value,
                "caller": caller,
            },
        )
        active = lead.enrolment is not None and lead.enrolment.completed_at is None
        program = lead.enrolment.program_id if active and lead.enrolment else None
        return _json(200, {"lead_id": lead_id, "stage": lead.stage.value, "program_id": program})

    @app.post("/leads/<lead_id>/purchases")
    def purchase(lead_id: str) -> Response[str]:
        if refused := _not_an_id(lead_id):
            return refused
        bought = _body(Purchase, app.current_event.decoded_body)
        if isinstance(bought, Response):
            return bought
        caller = app.current_event.request_context.identity.user_arn
        try:
            recorded = deps.purchases.record(lead_id, bought, caller=caller)
        except UnknownLead:
            return _json(404, {"error": "not_found"})
        except FutureDate:
            return _json(422, {"errors": [FUTURE_DATE]})
        deps.logger.info(
            "purchase recorded",
            extra={"lead_id": lead_id, "duplicate": recorded.duplicate, "caller": caller},
        )
        lead = recorded.lead
        body = {
            "lead_id": lead_id,
            "duplicate": recorded.duplicate,
            "stage": lead.stage.value,
            "purchases": lead.purchases.model_dump(mode="json") if lead.purchases else None,
            "rank": lead.rank.model_dump(mode="json") if lead.rank else None,
        }
        # 201: recorded now; 200: recorded before (a retry, the same order again).
        return _json(200 if recorded.duplicate else 201, body)

    @app.get("/leads/<lead_id>/export")
    def export(lead_id: str) -> Response[str]:
        if refused := _not_an_id(lead_id):
            return refused
        document = deps.disclosure.export(lead_id)
        if document is None:
            return _json(404, {"error": "not_found"})
        caller = app.current_event.request_context.identity.user_arn
        # Who took a copy of a person's data is worth a log line; the data is not.
        deps.logger.info("lead exported", extra={"lead_id": lead_id, "caller": caller})
        headers = {
            "Content-Disposition": f'attachment; filename="{file_name(lead_id)}"',
            "Cache-Control": "no-store",
        }
        return Response(200, JSON_TYPE, as_json(document), headers=headers)

    @app.delete("/leads/<lead_id>")
    def erase(lead_id: str) -> Response[str]:
        if refused := _not_an_id(lead_id):
            return refused
        lead = deps.leads.get(lead_id)
        if lead is None:
            return _json(404, {"error": "not_found"})
        # Its places at events go to those waiting before its id is gone from the lead.
        promoted = deps.desk.withdraw(lead, deps.events)
        if not deps.leads.erase(lead_id):
            return _json(404, {"error": "not_found"})
        caller = app.current_event.request_context.identity.user_arn
        deps.logger.info(
            "lead erased",
            extra={"lead_id": lead_id, "caller": caller, "places_given": len(promoted)},
        )
        return _json(200, {"lead_id": lead_id, "erased": True})

    return app


def dependencies(clock: Clock | None = None) -> Dependencies:
    from shared.adapters.leads import DynamoLeadRepository

    settings = AdminSettings.from_env()
    dynamodb = AwsClients().client("dynamodb")
    clock = clock or SystemClock()
    leads = DynamoLeadRepository(dynamodb, settings.table_name)
    programs = load_programs()
    feedback = SalesFeedback(
        leads,
        programs,
        clock,
        LifecycleSettings(
            rejected_cooldown=timedelta(days=settings.rejected_cooldown_days),
            lost_dormant_after=timedelta(days=settings.lost_dormant_after_days),
            dormant_after=timedelta(days=settings.dormant_after_days),
        ),
    )
    rules = load_scoring()
    disclosure = LeadDisclosure(leads, rules, clock)
    purchases = PurchaseBook(leads, programs, load_customers(), clock)
    desk = EventDesk(leads, programs, clock)
    return Dependencies(
        leads,
        feedback,
        rules,
        clock,
        build_logger("admin"),
        disclosure,
        purchases,
        desk,
        load_events(),
    )


def build(clock: Clock | None = None) -> APIGatewayRestResolver:
    """The function as it runs, on the given clock (the local stack moves it)."""
    return build_app(dependencies(clock))


@cache
def _default_app() -> APIGatewayRestResolver:
    return build()


@logged("admin")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: APIGatewayRestResolver | None = None
) -> dict[str, Any]:
    return (app or _default_app()).resolve(event, context)

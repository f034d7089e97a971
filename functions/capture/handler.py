"""``POST /leads``: website forms post leads here directly (API Gateway REST, proxy)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.capture.settings import CaptureSettings
from functions.observability import answer_unexpected_errors, build_logger, emit_counts, logged
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.events import load_events
from shared.domain.leads import new_id
from shared.domain.lists import load_columns
from shared.domain.metrics import FORM_POSTS, LEADS_CREATED, LEADS_QUALIFIED
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from shared.services.capture import CaptureConflict, CaptureResult, LeadCapture, RequestInfo
from shared.services.qualification import ScoreKeeper
from shared.services.visits import VisitTracker
from shared.web.forms import FormFields, MalformedBody, UnsupportedMediaType, decode_form
from shared.web.media_types import JSON_TYPE
from shared.web.pages import (
    BodyTooLarge,
    Pages,
    allowed_redirect,
    form_body,
    wants_json,
    with_query,
)
from shared.web.submission import (
    LABELS,
    FieldError,
    FieldNames,
    InvalidSubmission,
    parse_submission,
)

VISITOR_ID = re.compile(r"^[0-9a-f]{32}$")
HTML_TYPE = "text/html; charset=utf-8"

# status -> (Japanese, English) for failures that are not about one field
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("送信内容を読み取れませんでした。", "The form data could not be read."),
    413: ("送信内容が大きすぎます。", "The submission is too large."),
    415: ("この形式の送信には対応していません。", "This kind of submission is not supported."),
    503: (
        "ただいま混み合っています。しばらくしてから再度お試しください。",
        "We are busy right now. Please try again in a moment.",
    ),
}
# code -> (Japanese, English) where the status's message would not say what went wrong
CODE_PROBLEMS: dict[str, tuple[str, str]] = {
    "invalid_encoding": (
        "送信内容に、文字コードとして正しくない文字が含まれていました。",
        "The submission has bytes that are not valid in its character encoding.",
    ),
    "unsupported_charset": (
        "この文字コードでの送信には対応していません。",
        "This character encoding is not supported.",
    ),
}


@dataclass(frozen=True)
class Dependencies:
    settings: CaptureSettings
    capture: LeadCapture
    pages: Pages
    logger: Logger
    # Links the snippet's visitor id (hidden field ``visitor_id``) to the lead.
    visits: VisitTracker | None = None
    # What a website's own field names stand for (会社名, your-email, tel1-tel3).
    names: FieldNames = field(default_factory=load_columns)


class _Reply:
    """Builds the response in the form the client asked for: JSON, or HTML for browsers."""

    def __init__(self, deps: Dependencies, as_json: bool, fields: FormFields) -> None:
        self._deps = deps
        self._json = as_json
        origins = deps.settings.redirect_origins
        self._thanks = allowed_redirect(_first(fields, "thanks_url"), origins)
        self._error = allowed_redirect(_first(fields, "error_url"), origins)
        self._back = allowed_redirect(_first(fields, "page_url"), origins)

    def success(
        self, lead_id: str, created: bool, registration: str | None = None
    ) -> Response[str]:
        if self._json:
            body = {"lead_id": lead_id, "status": "created" if created else "updated"}
            if registration is not None:
                body["registration"] = registration  # a page can say "on the waiting list"
            return _json(201 if created else 200, body)
        if self._thanks:
            return Response(303, HTML_TYPE, "", headers={"Location": self._thanks})
        return Response(200, HTML_TYPE, self._deps.pages.render("thanks.html", back_url=self._back))

    def invalid(self, errors: tuple[FieldError, ...]) -> Response[str]:
        if self._json:
            return _json(422, {"errors": [e.as_dict() for e in errors]})
        if self._error:
            fields = ",".join(e.field for e in errors)
            return Response(
                303, HTML_TYPE, "", headers={"Location": with_query(self._error, errors=fields)}
            )
        page = self._deps.pages.render(
            "form_error.html", errors=errors, labels=LABELS, back_url=self._back
        )
        return Response(422, HTML_TYPE, page)

    def problem(self, status: int, code: str, field: str = "body") -> Response[str]:
        ja, en = CODE_PROBLEMS.get(code) or PROBLEMS[status]
        if self._json:
            return _json(
                status,
                {"errors": [{"field": field, "code": code, "message": ja, "message_en": en}]},
            )
        if self._error:
            return Response(
                303, HTML_TYPE, "", headers={"Location": with_query(self._error, errors=code)}
            )
        page = self._deps.pages.render(
            "error.html", message_ja=ja, message_en=en, back_url=self._back
        )
        return Response(status, HTML_TYPE, page)


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status, JSON_TYPE, json.dumps(body, ensure_ascii=False))


def _first(fields: FormFields, name: str) -> str | None:
    values = fields.get(name) or []
    return values[0] if values else None


def build_app(deps: Dependencies) -> APIGatewayRestResolver:
    settings = deps.settings
    cors = None
    if settings.cors_origins:
        first, *extra = settings.cors_origins
        cors = CORSConfig(
            allow_origin=first,
            extra_origins=extra,
            allow_headers=["Content-Type", "Accept"],
            max_age=600,
        )
    app = APIGatewayRestResolver(cors=cors)
    answer_unexpected_errors(app, deps.logger)

    @app.post("/leads", cors=bool(cors))
    def post_lead() -> Response[str]:
        event = app.current_event
        headers = event.headers  # case-insensitive
        content_type = headers.get("content-type")
        as_json = wants_json(content_type, headers.get("accept"))
        reply = _Reply(deps, as_json, {})
        try:
            body = form_body(event.body, bool(event.is_base64_encoded), settings.max_body_bytes)
            fields = decode_form(body, content_type)
        except BodyTooLarge:
            return reply.problem(413, "too_large")
        except UnsupportedMediaType as exc:
            return reply.problem(415, exc.code)
        except MalformedBody as exc:
            return reply.problem(400, exc.code, exc.field)
        except InvalidSubmission as exc:
            return reply.invalid(exc.errors)

        reply = _Reply(deps, as_json, fields)
        honeypot = fields.pop(settings.honeypot_field, [])  # never a lead's field
        if any(value.strip() for value in honeypot):
            # Look exactly like a success so the bot learns nothing; store nothing.
            deps.logger.info("honeypot filled; submission dropped")
            return reply.success(new_id(), created=True)
        try:
            submission = parse_submission(
                fields, consent_required_for=settings.consent_required_forms, names=deps.names
            )
        except InvalidSubmission as exc:
            deps.logger.info("invalid submission", extra={"fields": [e.field for e in exc.errors]})
            return reply.invalid(exc.errors)

        identity = event.request_context.identity
        request = RequestInfo(
            ip=identity.source_ip,
            user_agent=headers.get("user-agent") or identity.user_agent,
            referrer=allowed_referrer(headers.get("referer")),
        )
        try:
            result: CaptureResult = deps.capture.capture(submission, request)
        except (CaptureConflict, ClientError, BotoCoreError):
            deps.logger.exception("lead could not be stored")
            return reply.problem(503, "unavailable")
        deps.logger.info(
            "lead captured",
            extra={
                "lead_id": result.lead_id,
                "lead_created": result.created,
                "form_type": submission.form_type.value,
                "enrolled_in": result.enrolled_in,
                "qualified": result.qualified,
                "registration": result.registration,
            },
        )
        identified = _identify(deps, _first(fields, "visitor_id"), result.lead_id)
        posted = not result.repeat  # the same post again was counted the first time
        emit_counts(
            "capture",
            {
                FORM_POSTS: posted,
                LEADS_CREATED: posted and result.created,
                LEADS_QUALIFIED: (posted and result.qualified) or identified,
            },
        )
        return reply.success(result.lead_id, result.created, result.registration)

    return app


def _identify(deps: Dependencies, visitor_id: str | None, lead_id: str) -> bool:
    """The browser that posted is the lead: its recent page views become the lead's.
    True if they made it an MQL.

    A malformed id (a broken snippet) is ignored, never a reason to lose the lead; so is
    a failure here, after the lead was stored (the next post links it again).
    """
    if deps.visits is None or not visitor_id or not VISITOR_ID.match(visitor_id):
        return False
    try:
        identified = deps.visits.identify(visitor_id, lead_id, via="form")
    except (ClientError, BotoCoreError):
        deps.logger.exception("visitor could not be linked", extra={"lead_id": lead_id})
        return False
    deps.logger.info("visitor linked", extra={"lead_id": lead_id, "views": identified.views})
    return identified.qualified


def allowed_referrer(value: str | None) -> str | None:
    """The Referer header, kept only if it is a plain http(s) URL of sensible length."""
    if not value or len(value) > 2048 or not value.startswith(("http://", "https://")):
        return None
    return value if value.isprintable() else None


def dependencies(clock: Clock | None = None) -> Dependencies:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.visits import DynamoVisitStore

    settings = CaptureSettings.from_env()
    dynamodb = AwsClients().client("dynamodb")
    repository = DynamoLeadRepository(dynamodb, settings.table_name)
    clock = clock or SystemClock()
    scores = ScoreKeeper(load_scoring())
    capture = LeadCapture(
        repository,
        load_programs(),
        clock,
        consent_version=settings.consent_version,
        scores=scores,
        review_after=timedelta(days=settings.dormant_after_days),
        events=load_events(),
    )
    visits = VisitTracker(
        DynamoVisitStore(dynamodb, settings.table_name),
        repository,
        scores,
        clock,
        attribution=timedelta(days=settings.visit_attribution_days),
    )
    return Dependencies(settings, capture, Pages(), build_logger("capture"), visits)


def build(clock: Clock | None = None) -> APIGatewayRestResolver:
    """The function as it runs, on the given clock (the local stack moves it)."""
    return build_app(dependencies(clock))


@cache
def _default_app() -> APIGatewayRestResolver:
    return build()


@logged("capture")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: APIGatewayRestResolver | None = None
) -> dict[str, Any]:
    return (app or _default_app()).resolve(event, context)

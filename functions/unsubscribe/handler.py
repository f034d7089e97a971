"""``GET``/``POST /unsubscribe``: the opt-out page and RFC 8058 one-click unsubscribe.

Mail clients POST ``List-Unsubscribe=One-Click`` to the link in the header; people
open the link (GET), see a confirmation page and press the button (POST). Either way
the lead is opted out at once, idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.metrics import emit_counts
from functions.observability import answer_unexpected_errors, build_logger
from shared.adapters.clients import AwsClients
from shared.clock import Clock, SystemClock
from shared.forms import decode_form
from shared.metrics import OPT_OUTS
from shared.qualification import ScoreKeeper
from shared.repository import LeadRepository, UnknownLead, VersionConflict
from shared.scoring import load_scoring
from shared.settings import EnvSettings
from shared.submission import InvalidSubmission
from shared.subscriptions import unsubscribe
from shared.tokens import InvalidToken, UnsubscribeTokens
from shared.web import Pages, raw_body

HTML_TYPE = "text/html; charset=utf-8"


class UnsubscribeSettings(EnvSettings):
    table_name: str


@dataclass(frozen=True)
class Dependencies:
    repository: LeadRepository
    tokens: UnsubscribeTokens
    clock: Clock
    pages: Pages
    logger: Logger
    scores: ScoreKeeper | None = None


def build_app(deps: Dependencies) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()
    answer_unexpected_errors(app, deps.logger)

    def page(status: int, name: str, **context: Any) -> Response[str]:
        # The token in the URL names a lead: keep it out of caches and Referer headers.
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return Response(status, HTML_TYPE, deps.pages.render(name, **context), headers=headers)

    def token() -> str | None:
        return app.current_event.query_string_parameters.get("t")

    @app.get("/unsubscribe")
    def confirm() -> Response[str]:
        raw = token()
        try:
            deps.tokens.verify(raw)
        except InvalidToken:
            return page(400, "unsubscribe_invalid.html")
        return page(200, "unsubscribe_confirm.html", token=raw)

    @app.post("/unsubscribe")
    def opt_out() -> Response[str]:
        try:
            lead_id = deps.tokens.verify(token())
        except InvalidToken:
            return page(400, "unsubscribe_invalid.html")
        via = "one_click" if _is_one_click(app.current_event) else "page"
        try:
            changed = unsubscribe(deps.repository, deps.clock, lead_id, via, deps.scores)
        except UnknownLead:
            changed = False  # erased already: there is nobody left to mail
        except (VersionConflict, ClientError, BotoCoreError):
            deps.logger.exception("unsubscribe could not be stored")
            return page(503, "unsubscribe_retry.html")
        deps.logger.info("unsubscribe", extra={"lead_id": lead_id, "changed": changed, "via": via})
        emit_counts("unsubscribe", {OPT_OUTS: changed})
        return page(200, "unsubscribe_done.html")

    return app


def _is_one_click(event: APIGatewayProxyEvent) -> bool:
    """RFC 8058: mail clients post List-Unsubscribe=One-Click, urlencoded or multipart."""
    try:
        body = raw_body(event.body, bool(event.is_base64_encoded), 64 * 1024)
        fields = decode_form(body, event.headers.get("content-type"))
    except (ValueError, InvalidSubmission):
        return False
    return "One-Click" in fields.get("List-Unsubscribe", [])


def dependencies(clock: Clock | None = None) -> Dependencies:
    from shared.adapters.dynamodb import DynamoLeadRepository
    from shared.adapters.secrets import signing_secret

    settings = UnsubscribeSettings.from_env()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
    clock = clock or SystemClock()
    repository = DynamoLeadRepository(dynamodb, settings.table_name)
    pages = Pages()
    pages.environment()  # every request answers with a page: Jinja2 is loaded here
    return Dependencies(
        repository,
        UnsubscribeTokens(signing_secret(clients=aws)),
        clock,
        pages,
        build_logger("unsubscribe"),
        ScoreKeeper(load_scoring()),
    )


def build(clock: Clock | None = None) -> APIGatewayRestResolver:
    """The function as it runs, on the given clock (the local stack moves it)."""
    return build_app(dependencies(clock))


@cache
def _default_app() -> APIGatewayRestResolver:
    return build()


def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: APIGatewayRestResolver | None = None
) -> dict[str, Any]:
    return (app or _default_app()).resolve(event, context)

"""The links in emails that change what a lead receives: ``GET``/``POST /unsubscribe``
(the opt-out page and RFC 8058 one-click unsubscribe) and ``GET``/``POST /events/cancel``
(an event registration given up).

Mail clients POST ``List-Unsubscribe=One-Click`` to the link in the header; people
open the link (GET), see a confirmation page and press the button (POST). Either way
the lead is opted out at once, idempotently. A cancellation link opens a confirmation
page too, and only its button (POST) cancels: mail scanners open links, they do not
press buttons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.observability import answer_unexpected_errors, build_logger, emit_counts, logged
from shared.adapters.clients import AwsClients
from shared.domain.clock import Clock, SystemClock
from shared.domain.metrics import OPT_OUTS
from shared.domain.scoring import load_scoring
from shared.domain.tokens import InvalidToken, UnsubscribeTokens
from shared.ports import LeadRepository, UnknownLead, VersionConflict
from shared.services.opt_out import unsubscribe
from shared.services.qualification import ScoreKeeper
from shared.settings import EnvSettings
from shared.web.forms import decode_form
from shared.web.pages import Pages, raw_body
from shared.web.submission import InvalidSubmission

if TYPE_CHECKING:  # imported on the first cancellation link, not at a cold start
    from shared.domain.events import Event, EventCatalog
    from shared.services.registration import EventDesk

HTML_TYPE = "text/html; charset=utf-8"


class UnsubscribeSettings(EnvSettings):
    table_name: str


@dataclass(frozen=True)
class EventLinks:
    """What a cancellation link needs: the events, and the desk that cancels."""

    events: EventCatalog
    desk: EventDesk


@dataclass(frozen=True)
class Dependencies:
    repository: LeadRepository
    tokens: UnsubscribeTokens
    clock: Clock
    pages: Pages
    logger: Logger
    scores: ScoreKeeper | None = None
    # Built on the first cancellation link (rare beside unsubscribes), so a cold start
    # loads no programs or events; None: no cancellation links (404).
    event_links: Callable[[], EventLinks] | None = None


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

    def cancel_page(status: int, state: str, event: Event | None = None) -> Response[str]:
        titles: dict[str, str] = {}
        if event is not None:
            titles = {"title_ja": event.title.ja, "title_en": event.title.en}
        return page(status, "event_cancel.html", state=state, **titles)

    def cancelling() -> tuple[EventLinks, Event, str] | Response[str]:
        """The event and the lead the link names, or the page that says why not."""
        if deps.event_links is None:
            return Response(404, HTML_TYPE, deps.pages.render("error.html"))
        links = deps.event_links()
        query = app.current_event.query_string_parameters
        event = links.events.get(query.get("e") or "")
        try:
            if event is None:
                raise InvalidToken("no such event")  # removed from events.yaml, or altered
            lead_id = deps.tokens.cancellations().verify(token(), event.id)
        except InvalidToken:
            return cancel_page(400, "invalid")
        if deps.clock.now() >= event.start:
            return cancel_page(200, "started", event)
        return links, event, lead_id

    @app.get("/events/cancel")
    def confirm_cancel() -> Response[str]:
        found = cancelling()
        if isinstance(found, Response):
            return found
        _, event, lead_id = found
        lead = deps.repository.get(lead_id)
        registration = lead.registrations.get(event.id) if lead else None
        if registration is None or not registration.pending:
            return cancel_page(200, "nothing", event)
        return page(
            200,
            "event_cancel_confirm.html",
            event_id=event.id,
            token=token(),
            waiting=not registration.holds_place,
            title_ja=event.title.ja,
            title_en=event.title.en,
            when_ja=event.when("ja"),
            when_en=event.when("en"),
        )

    @app.post("/events/cancel")
    def cancel() -> Response[str]:
        found = cancelling()
        if isinstance(found, Response):
            return found
        links, event, lead_id = found
        try:
            done = links.desk.cancel(event, lead_id)
        except UnknownLead:
            return cancel_page(200, "nothing", event)  # erased: nothing is held
        except (VersionConflict, ClientError, BotoCoreError):
            deps.logger.exception("cancellation could not be stored")
            return cancel_page(503, "retry", event)
        deps.logger.info(
            "event cancellation",
            extra={
                "lead_id": lead_id,
                "event_id": event.id,
                "cancelled": done.cancelled,
                "promoted": len(done.promoted),
            },
        )
        return cancel_page(200, "cancelled" if done.cancelled else "nothing", event)

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
    from shared.adapters.leads import DynamoLeadRepository
    from shared.adapters.secrets import signing_secret

    settings = UnsubscribeSettings.from_env()
    aws = AwsClients()
    dynamodb = aws.client("dynamodb")
    clock = clock or SystemClock()
    repository = DynamoLeadRepository(dynamodb, settings.table_name)
    pages = Pages()
    pages.environment()  # every request answers with a page: Jinja2 is loaded here

    @cache
    def event_links() -> EventLinks:
        from shared.domain.events import load_events
        from shared.domain.programs import load_programs
        from shared.services.registration import EventDesk

        return EventLinks(load_events(), EventDesk(repository, load_programs(), clock))

    return Dependencies(
        repository,
        UnsubscribeTokens(signing_secret(clients=aws)),
        clock,
        pages,
        build_logger("unsubscribe"),
        ScoreKeeper(load_scoring()),
        event_links,
    )


def build(clock: Clock | None = None) -> APIGatewayRestResolver:
    """The function as it runs, on the given clock (the local stack moves it)."""
    return build_app(dependencies(clock))


@cache
def _default_app() -> APIGatewayRestResolver:
    return build()


@logged("unsubscribe")
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, app: APIGatewayRestResolver | None = None
) -> dict[str, Any]:
    return (app or _default_app()).resolve(event, context)

"""List health on moto: each lead taken off the mailing list counts once, per JST day.

The unsubscribe function (one click from a mail client, or the button on the page)
and the sender's suppression of an address SES refuses add to the day's ``list``
counter item; opting out again, or a retried job, must not count a second time. (The
SES events that suppress or unsubscribe are in test_engagement.py, dormancy and sunset
in test_dormancy.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from functions.observability import build_logger
from functions.unsubscribe.handler import Dependencies, build_app
from functions.unsubscribe.handler import lambda_handler as unsubscribe_handler
from shared.domain.clock import FixedClock
from shared.domain.leads import ConsentState, FormType, Lead, Touch, new_id
from shared.domain.nurture import start
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from shared.services.qualification import ScoreKeeper
from shared.web.pages import Pages
from tests.builders import store
from tests.events import rest_event
from tests.integration.conftest import TABLE
from tests.integration.nurture import FIXTURES, NurtureWorld, build_world
from tests.integration.scoring_world import counters

JST = ZoneInfo("Asia/Tokyo")
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=JST)  # inside the test programs' window
DAY = timedelta(days=1)
ONE_CLICK = "List-Unsubscribe=One-Click"

Call = Callable[[str, str], dict[str, Any]]


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    clock.set(TUESDAY_10.astimezone(UTC))
    programs = load_programs(FIXTURES / "programs")
    return build_world(clock, dynamodb, TABLE, lambda_context, programs=programs)


@pytest.fixture
def call(world: NurtureWorld, lambda_context: Any) -> Call:
    """POST /unsubscribe through the handler, wired as its dependencies() wires it."""
    keeper = ScoreKeeper(load_scoring())
    app = build_app(
        Dependencies(
            world.repository,
            world.tokens,
            world.clock,
            Pages(),
            build_logger("unsubscribe"),
            keeper,
        )
    )

    def post(lead_id: str, body: str) -> dict[str, Any]:
        event = rest_event(
            "POST",
            "/unsubscribe",
            body=body,
            query={"t": world.tokens.sign(lead_id)},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        return unsubscribe_handler(event, lambda_context, app)

    return post


def enrolled_lead(world: NurtureWorld, program_id: str = "linear") -> str:
    now = world.clock.now()
    program = world.programs.get(program_id)
    assert program is not None
    touch = Touch(at=now, form_type=FormType.DOWNLOAD)
    lead = Lead(
        lead_id=new_id(),
        email=f"lead-{uuid.uuid4().hex[:8]}@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=now, wording_version="2026-04"),
        enrolment=start(program, now),
        created_at=now,
        updated_at=now,
    )
    store(world.repository, lead)
    return lead.lead_id


def list_health(world: NurtureWorld, at: datetime) -> dict[str, int]:
    """The ``list`` counter of ``at``'s Japanese day (its shards added up)."""
    return counters(world.dynamodb, at).get("list", {})


def stage_counter(world: NurtureWorld, at: datetime) -> dict[str, int]:
    return counters(world.dynamodb, at).get("stage", {})


def test_a_repeated_unsubscribe_counts_once(world: NurtureWorld, call: Call) -> None:
    # Given a mailed lead
    lead_id = enrolled_lead(world)
    now = world.clock.now()

    # When its mail client posts one click, retries it, and the person presses the
    # button on the page as well
    responses = [call(lead_id, ONE_CLICK), call(lead_id, ONE_CLICK), call(lead_id, "via=page")]

    # Then every answer is the confirmation, and the day counts one unsubscribe
    assert [r["statusCode"] for r in responses] == [200, 200, 200]
    lead = world.repository.get(lead_id)
    assert lead is not None
    assert lead.unsubscribed
    assert list_health(world, now) == {"unsubscribed": 1}
    # and the stage counters know nothing of it: opting out is not a stage
    assert stage_counter(world, now) == {}


def test_an_unsubscribe_is_credited_to_the_last_email_the_lead_was_sent(
    world: NurtureWorld, call: Call
) -> None:
    # Given a lead sent the welcome email, then the case study two days later
    lead_id = enrolled_lead(world)
    assert world.run() == 1
    world.advance(2 * DAY)
    assert world.run() == 1
    lead = world.repository.get(lead_id)
    assert lead is not None
    assert lead.enrolment is not None
    variant = lead.enrolment.sent["case_study"].variant

    # When the person unsubscribes the next day (and the mail client posts twice)
    world.advance(DAY)
    call(lead_id, ONE_CLICK)
    call(lead_id, ONE_CLICK)

    # Then the case study's report counts one unsubscribe, the welcome none
    found = counters(world.dynamodb, world.clock.now())
    assert found[f"email#linear#case_study#{variant}"] == {"unsubscribes": 1}
    assert not [k for k in found if k.startswith("email#linear#welcome")]


def test_unsubscribes_by_page_and_one_click_count_per_japanese_day(
    world: NurtureWorld, call: Call
) -> None:
    # Given two leads, one opting out at 23:30 JST and one at 00:30 JST the next day
    first, second = enrolled_lead(world), enrolled_lead(world)
    late = datetime(2026, 11, 24, 23, 30, tzinfo=JST)
    world.clock.set(late.astimezone(UTC))
    call(first, "via=page")
    world.clock.set((late + timedelta(hours=1)).astimezone(UTC))
    call(second, ONE_CLICK)

    # Then each is counted on its own Japanese day
    assert list_health(world, late) == {"unsubscribed": 1}
    assert list_health(world, late + timedelta(hours=1)) == {"unsubscribed": 1}


def test_an_address_ses_rejects_counts_one_suppression(world: NurtureWorld) -> None:
    # Given SES refusing the message for good
    lead_id = enrolled_lead(world)
    world.ses.failures.append("MessageRejected")
    now = world.clock.now()

    # When the lead is due, and later ticks run
    assert world.run() == 0
    for _ in range(3):
        world.advance(2 * DAY)
        world.run()

    # Then the lead is suppressed, counted once on the day SES refused it
    lead = world.repository.get(lead_id)
    assert lead is not None
    assert lead.suppression_reason == "ses:MessageRejected"
    assert list_health(world, now) == {"suppressed:rejected": 1}

"""Dormancy and sunset run on the due index: no scan, no nightly job.

A lead that finished its program is reviewed after the dormancy period; with no
engagement it becomes dormant and enters re-engagement; when re-engagement goes
unanswered the lead is sunset and never mailed again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.clock import FixedClock
from shared.leads import ActivityType, ConsentState, FormType, Lead, Stage, Touch, new_id
from shared.nurture import finish, start
from shared.scoring import Signal
from tests.integration.conftest import TABLE
from tests.integration.nurture import NurtureWorld, build_world

JST = ZoneInfo("Asia/Tokyo")
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=JST)
DAY = timedelta(days=1)
DORMANT_AFTER = timedelta(days=90)


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    clock.set(TUESDAY_10.astimezone(UTC))
    return build_world(clock, dynamodb, TABLE, lambda_context)


def finished_lead(world: NurtureWorld, *, engaged_days_ago: int | None = None) -> str:
    """A mailable lead whose welcome program ended 90 days ago, due for its review now."""
    now = world.clock.now()
    created = now - 120 * DAY
    touch = Touch(at=created, form_type=FormType.DOWNLOAD)
    program = world.programs.get("welcome")
    assert program is not None
    enrolment = finish(start(program, created), now - DORMANT_AFTER, "completed")
    lead = Lead(
        lead_id=new_id(),
        email=f"{new_id()[:8]}@example.co.jp",
        company="株式会社サンプル",
        name="山田 太郎",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=created, wording_version="2026-01"),
        enrolment=enrolment,
        review_at=now,
        last_engaged_at=now - engaged_days_ago * DAY if engaged_days_ago is not None else None,
        created_at=created,
        updated_at=created,
    )
    world.repository.create(lead, [])
    return lead.lead_id


def lead_of(world: NurtureWorld, lead_id: str) -> Lead:
    lead = world.repository.get(lead_id)
    assert lead is not None
    return lead


def test_a_lead_without_engagement_becomes_dormant_and_enters_re_engagement(
    world: NurtureWorld,
) -> None:
    # Given a lead that finished welcome and never engaged
    lead_id = finished_lead(world)

    # When its review comes due on the scheduler's tick
    world.run()

    # Then it is dormant and follows re-engagement, its first step due after the wait
    lead = lead_of(world, lead_id)
    assert lead.stage is Stage.DORMANT
    assert lead.enrolment is not None
    assert lead.enrolment.program_id == "re_engagement"
    assert lead.enrolment.step_id == "reconnect"
    assert lead.enrolment.due_at == world.clock.now() + timedelta(days=3)
    assert lead.review_at is None
    (change,) = [
        a for a in world.repository.timeline(lead_id) if a.type is ActivityType.STAGE_CHANGED
    ]
    assert change.details["to"] == "dormant"
    assert change.details["program_id"] == "re_engagement"


def test_a_recently_engaged_lead_is_reviewed_again_later_not_made_dormant(
    world: NurtureWorld,
) -> None:
    lead_id = finished_lead(world, engaged_days_ago=10)

    world.run()

    lead = lead_of(world, lead_id)
    assert lead.stage is Stage.LEAD
    assert lead.review_at == world.clock.now() - 10 * DAY + DORMANT_AFTER
    assert world.ses.sent == []


def test_unanswered_re_engagement_ends_in_sunset_and_no_more_mail(world: NurtureWorld) -> None:
    # Given a dormant lead in re-engagement
    lead_id = finished_lead(world)
    world.run()

    # When every re-engagement email goes unanswered (ticks through weeks of business days)
    for _ in range(60):
        world.advance(DAY)
        world.run()

    # Then it got reconnect, best_content and the sunset notice, and is sunset for good
    steps = [e.tags["step"] for e in world.ses.sent]
    assert steps == ["reconnect", "best_content", "sunset_notice"]
    lead = lead_of(world, lead_id)
    assert lead.sunset is True
    assert lead.enrolment is not None
    assert lead.enrolment.outcome == "sunset"
    assert not lead.mailable

    # And nothing reaches it again: no review, no program, no email
    world.advance(200 * DAY)
    world.run()
    assert len(world.ses.sent) == 3
    assert lead_of(world, lead_id).review_at is None


def test_opting_out_costs_the_unsubscribe_points_and_says_so_on_the_activity(
    world: NurtureWorld, dynamodb: Any, lambda_context: Any
) -> None:
    from aws_lambda_powertools import Logger

    from functions.unsubscribe.handler import Dependencies, build_app, lambda_handler
    from shared.adapters.dynamodb import DynamoScoreStore
    from shared.qualification import ScoreKeeper
    from shared.scoring import load_scoring
    from shared.web import Pages
    from tests.events import rest_event

    # Given a lead with some score
    lead_id = finished_lead(world, engaged_days_ago=1)
    rules = load_scoring()
    keeper = ScoreKeeper(world.repository, DynamoScoreStore(dynamodb, TABLE), rules, world.clock)
    keeper.award(lead_id, Signal.INQUIRY, world.clock.now())
    app = build_app(
        Dependencies(world.repository, world.tokens, world.clock, Pages(), Logger(), keeper)
    )

    # When it opts out with one click
    event = rest_event(
        "POST",
        "/unsubscribe",
        body="List-Unsubscribe=One-Click",
        query={"t": world.tokens.sign(lead_id)},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert lambda_handler(event, lambda_context, app)["statusCode"] == 200

    # Then its score fell by the rule's points, and the activity names the rule
    lead = lead_of(world, lead_id)
    assert rules.score(lead.score_units, world.clock.now()) == 30 - 20
    (activity,) = [
        a for a in world.repository.timeline(lead_id) if a.type is ActivityType.UNSUBSCRIBED
    ]
    assert activity.details["points"] == -20
    assert activity.details["rules"] == [{"rule": "unsubscribe", "points": -20}]

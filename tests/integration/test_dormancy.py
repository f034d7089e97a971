"""Dormancy and sunset run on the due index: no scan, no nightly job.

A lead that finished its program is reviewed after the dormancy period; with no
engagement it becomes dormant and enters re-engagement; when re-engagement goes
unanswered the lead is sunset and never mailed again. The funnel counts each of these
once: ``lead>dormant`` (sk ``stage``) and ``sunset:dormant`` (sk ``list``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.items import counter_key
from shared.domain.clock import FixedClock
from shared.domain.leads import ActivityType, ConsentState, FormType, Lead, Stage, Touch, new_id
from shared.domain.nurture import finish, start
from shared.domain.programs import ProgramCatalog
from shared.domain.scoring import Signal
from shared.services.capture import RequestInfo
from shared.services.lifecycle import (
    Disposition,
    DispositionRequest,
    LifecycleSettings,
    SalesFeedback,
    returning,
)
from shared.web.submission import parse_submission
from tests.builders import store
from tests.integration.conftest import TABLE, all_items
from tests.integration.nurture import NurtureWorld, build_world
from tests.integration.scoring_world import (
    award,
    capture_with_scores,
    engagement,
    qualify,
    recorder,
)
from tests.integration.test_nurture_flow import click_event

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
    store(world.repository, lead)
    return lead.lead_id


def lead_of(world: NurtureWorld, lead_id: str) -> Lead:
    lead = world.repository.get(lead_id)
    assert lead is not None
    return lead


def counted(world: NurtureWorld, sk: str) -> Counter[str]:
    """One kind of report counter (``stage``, ``list``) summed over every day."""
    totals: Counter[str] = Counter()
    for item in all_items(world.dynamodb):
        if item["pk"]["S"].startswith("COUNTER#") and counter_key(item["sk"]["S"]) == sk:
            totals.update({k: int(v["N"]) for k, v in item.items() if "N" in v})
    return totals


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
    # and the funnel counted the transition on the day it happened
    assert counted(world, "stage") == {"lead>dormant": 1}
    assert counted(world, "list") == {}


def test_a_redelivered_review_job_counts_the_dormancy_once(world: NurtureWorld) -> None:
    # Given the review job queued by the tick, received but not yet deleted
    lead_id = finished_lead(world)
    world.tick()
    messages = world.receive()
    assert len(messages) == 1

    # When SQS delivers it, then delivers it again (a retried batch), and a later tick runs
    world.deliver(messages)
    world.deliver(messages)
    world.advance(DAY)
    world.run()

    # Then the lead became dormant once, and once is what the funnel says
    assert lead_of(world, lead_id).stage is Stage.DORMANT
    assert counted(world, "stage") == {"lead>dormant": 1}


def test_a_review_that_collides_with_another_write_counts_once(world: NurtureWorld) -> None:
    # Given another writer that changes the lead just before the review's first write
    lead_id = finished_lead(world)
    collisions: list[str] = []

    def concurrent_write(**_: Any) -> None:
        if not collisions:
            collisions.append(lead_id)
            world.dynamodb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": f"LEAD#{lead_id}"}, "sk": {"S": "PROFILE"}},
                UpdateExpression="ADD version :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    world.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", concurrent_write)

    # When the review runs, loses the race once and is retried from a fresh read
    world.run()

    # Then the lead is dormant and the transition counted once
    assert collisions == [lead_id]
    assert lead_of(world, lead_id).stage is Stage.DORMANT
    assert counted(world, "stage") == {"lead>dormant": 1}


def test_a_recently_engaged_lead_is_not_counted_as_dormant(world: NurtureWorld) -> None:
    finished_lead(world, engaged_days_ago=10)

    world.run()

    assert counted(world, "stage") == {}


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
    # and the funnel counted it going dormant and being sunset, once each
    assert counted(world, "stage") == {"lead>dormant": 1}
    assert counted(world, "list") == {"sunset:dormant": 1}


def test_opting_out_costs_the_unsubscribe_points_and_says_so_on_the_activity(
    world: NurtureWorld, dynamodb: Any, lambda_context: Any
) -> None:
    from functions.observability import build_logger
    from functions.unsubscribe.handler import Dependencies, build_app, lambda_handler
    from shared.domain.scoring import load_scoring
    from shared.services.qualification import ScoreKeeper
    from shared.web.pages import Pages
    from tests.events import rest_event

    # Given a lead with some score
    lead_id = finished_lead(world, engaged_days_ago=1)
    rules = load_scoring()
    keeper = ScoreKeeper(rules)
    award(world.dynamodb, world.clock, lead_id, Signal.INQUIRY)
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


# -- coming back: answering re-engagement, posting a form ---------------------------------


def dormant_in_re_engagement(world: NurtureWorld) -> str:
    lead_id = finished_lead(world)
    world.run()
    assert lead_of(world, lead_id).stage is Stage.DORMANT
    return lead_id


def days_until(world: NurtureWorld, steps: list[str], lead_id: str, limit: int = 30) -> None:
    """A day at a time, with the schedules run, until these steps went out."""
    for _ in range(limit):
        if [e.tags["step"] for e in world.ses.sent if e.tags["lead_id"] == lead_id] == steps:
            return
        world.advance(DAY)
        world.run()
    raise AssertionError(f"steps {steps} within {limit} days")


def stage_changes(world: NurtureWorld, lead_id: str) -> list[tuple[str, str, str]]:
    return [
        (a.details["from"], a.details["to"], a.details["reason"])
        for a in reversed(world.repository.timeline(lead_id))
        if a.type is ActivityType.STAGE_CHANGED
    ]


def test_a_dormant_lead_that_answers_re_engagement_is_nurtured_as_a_lead_again(
    world: NurtureWorld, lambda_context: Any
) -> None:
    # Given a dormant lead that got the reconnect email
    lead_id = dormant_in_re_engagement(world)
    days_until(world, ["reconnect"], lead_id)
    (sent,) = world.ses.sent

    # When it clicks a link in it, and welcome_back follows
    deliver = engagement(recorder(world.dynamodb, world.clock), lambda_context)
    world.advance(timedelta(hours=1))
    assert deliver([click_event(world, sent, "case_study")]).failed == []
    days_until(world, ["reconnect", "welcome_back"], lead_id)

    # Then re-engagement is complete and the lead is a lead again, under review for dormancy
    lead = lead_of(world, lead_id)
    assert lead.stage is Stage.LEAD
    assert lead.enrolment is not None
    assert (lead.enrolment.program_id, lead.enrolment.outcome) == ("re_engagement", "completed")
    assert lead.enrolment.completed_at is not None
    assert lead.review_at == lead.enrolment.completed_at + DORMANT_AFTER
    assert stage_changes(world, lead_id)[-1] == ("dormant", "lead", "answered re_engagement")
    assert counted(world, "stage") == {"lead>dormant": 1, "dormant>lead": 1}

    # and with no engagement since, its next review makes it dormant again
    world.advance(DORMANT_AFTER + DAY)
    world.run()
    assert lead_of(world, lead_id).stage is Stage.DORMANT
    assert counted(world, "stage") == {"lead>dormant": 2, "dormant>lead": 1}


def test_unanswered_re_engagement_does_not_bring_the_lead_back(world: NurtureWorld) -> None:
    lead_id = dormant_in_re_engagement(world)

    days_until(world, ["reconnect", "best_content", "sunset_notice"], lead_id, limit=60)
    for _ in range(20):
        world.advance(DAY)
        world.run()

    lead = lead_of(world, lead_id)
    assert (lead.stage, lead.sunset) == (Stage.DORMANT, True)
    assert "dormant>lead" not in counted(world, "stage")


def post_form(world: NurtureWorld, lead_id: str, form_type: FormType) -> Any:
    lead = lead_of(world, lead_id)
    fields = {
        "email": [lead.email],
        "form_type": [form_type.value],
        "company": ["株式会社サンプル"],
    }
    return capture_with_scores(world.dynamodb, world.clock).capture(
        parse_submission(fields), RequestInfo()
    )


def test_a_dormant_lead_that_posts_a_form_is_back_out_of_re_engagement(
    world: NurtureWorld,
) -> None:
    # Given a dormant lead in re-engagement
    lead_id = dormant_in_re_engagement(world)
    world.advance(DAY)

    # When it downloads a whitepaper, twice
    post_form(world, lead_id, FormType.DOWNLOAD)
    post_form(world, lead_id, FormType.DOWNLOAD)

    # Then it is a lead again, out of re-engagement, reviewed for dormancy from now
    lead = lead_of(world, lead_id)
    assert lead.stage is Stage.LEAD
    assert lead.enrolment is not None
    assert lead.enrolment.outcome == "exited:stage:lead"
    assert lead.review_at == world.clock.now() + DORMANT_AFTER
    assert stage_changes(world, lead_id)[-1] == ("dormant", "lead", "form:download")
    # and the return is counted once
    assert counted(world, "stage") == {"lead>dormant": 1, "dormant>lead": 1}
    # and re-engagement sends nothing more
    for _ in range(14):
        world.advance(DAY)
        world.run()
    assert world.ses.sent == []


def test_a_dormant_lead_asking_for_a_quote_goes_to_sales(world: NurtureWorld) -> None:
    lead_id = dormant_in_re_engagement(world)

    result = post_form(world, lead_id, FormType.INQUIRY)

    assert result.qualified is True
    lead = lead_of(world, lead_id)
    assert lead.stage is Stage.MQL
    # (back and qualified in one write: counted as one move, straight to MQL)
    assert counted(world, "stage") == {"lead>dormant": 1, "dormant>mql": 1}


def lost_lead(world: NurtureWorld) -> str:
    """A lead sales lost a deal with, its score still above the qualification rule."""
    lead_id = finished_lead(world, engaged_days_ago=1)
    world.dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"LEAD#{lead_id}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET stage = :lost, job_title = :title, company_size = :size",
        ExpressionAttributeValues={
            ":lost": {"S": "lost"},
            ":title": {"S": "営業部長"},
            ":size": {"S": "1000+"},
        },
    )
    award(world.dynamodb, world.clock, lead_id, Signal.INQUIRY)
    award(world.dynamodb, world.clock, lead_id, Signal.TRIAL)
    return lead_id


def test_a_lost_lead_goes_back_to_sales_only_when_it_asks(world: NurtureWorld) -> None:
    # Given a lost lead whose score still meets the rule
    lead_id = lost_lead(world)

    # When the score is checked again (as a click would), nothing is handed over
    assert qualify(world.dynamodb, world.clock, lead_id, reason="score") is False
    # nor when it downloads a whitepaper: it stays lost, with sales' outcome
    assert post_form(world, lead_id, FormType.DOWNLOAD).qualified is False
    assert lead_of(world, lead_id).stage is Stage.LOST
    assert counted(world, "stage") == {}

    # but when it posts an inquiry, it qualifies at once
    assert post_form(world, lead_id, FormType.INQUIRY).qualified is True
    assert lead_of(world, lead_id).stage is Stage.MQL
    assert counted(world, "stage") == {"lost>mql": 1}


def test_a_late_click_on_an_earlier_email_still_counts_as_an_answer(
    world: NurtureWorld, lambda_context: Any
) -> None:
    # Given a dormant lead whose reconnect email went unclicked past its decision
    lead_id = dormant_in_re_engagement(world)
    days_until(world, ["reconnect", "best_content"], lead_id)
    reconnect = world.ses.sent[0]

    # When it clicks the old reconnect email while best_content waits for an answer
    deliver = engagement(recorder(world.dynamodb, world.clock), lambda_context)
    assert deliver([click_event(world, reconnect, "case_study")]).failed == []

    # Then best_content's decision goes to welcome_back, not to the sunset notice
    days_until(world, ["reconnect", "best_content", "welcome_back"], lead_id)
    lead = lead_of(world, lead_id)
    assert (lead.stage, lead.sunset) == (Stage.LEAD, False)


def test_re_engagement_completed_without_a_click_is_no_answer(world: NurtureWorld) -> None:
    """A program can also complete by a skipped last step or a ``goto: exit``."""
    lead_id = dormant_in_re_engagement(world)
    lead = lead_of(world, lead_id)
    program = world.programs.get("re_engagement")
    assert program is not None
    assert lead.enrolment is not None
    completed = finish(lead.enrolment, world.clock.now(), "completed")

    assert returning(lead, completed, program, world.clock.now()) == ({}, None)


def test_a_fresh_opt_in_lifts_a_sunset(world: NurtureWorld) -> None:
    # Given a lead sunset after re-engagement went unanswered
    lead_id = dormant_in_re_engagement(world)
    days_until(world, ["reconnect", "best_content", "sunset_notice"], lead_id, limit=60)
    for _ in range(20):
        world.advance(DAY)
        world.run()
    assert lead_of(world, lead_id).sunset is True

    # When it subscribes to the newsletter on a form, consenting again
    lead = lead_of(world, lead_id)
    fields = {"email": [lead.email], "form_type": ["newsletter"], "consent": ["on"]}
    capture_with_scores(world.dynamodb, world.clock).capture(
        parse_submission(fields), RequestInfo()
    )

    # Then it is mailable again, a lead under the dormancy review
    lead = lead_of(world, lead_id)
    assert (lead.stage, lead.sunset, lead.mailable) == (Stage.LEAD, False, True)
    assert lead.review_at == world.clock.now() + DORMANT_AFTER


def test_a_rejected_lead_with_no_program_to_follow_is_watched_for_dormancy(
    world: NurtureWorld,
) -> None:
    # Given an MQL, and programs none of which a rejected lead enters
    lead_id = finished_lead(world)
    world.dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"LEAD#{lead_id}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET stage = :mql REMOVE review_at",
        ExpressionAttributeValues={":mql": {"S": "mql"}},
    )
    programs = ProgramCatalog([p for p in world.programs.programs if p.id != "welcome"])
    feedback = SalesFeedback(world.repository, programs, world.clock, LifecycleSettings())

    # When sales reject it
    feedback.report(lead_id, DispositionRequest(disposition=Disposition.REJECTED))

    # Then it is a lead again, and the due index will review it for dormancy
    lead = lead_of(world, lead_id)
    assert lead.stage is Stage.LEAD
    assert lead.review_at == world.clock.now() + DORMANT_AFTER

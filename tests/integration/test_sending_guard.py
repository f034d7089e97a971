"""The sending guard and the warm-up cap on moto, through the real scheduler, sender and
engagement handlers: a burst of bounces pauses sending before SES's review rate, nothing
is lost while paused, and a resume sends what waited, once."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, timedelta
from typing import Any

import pytest

from shared.adapters.due import DynamoDueIndex
from shared.adapters.guard import DynamoSendingSwitch
from shared.adapters.sqs import SqsJobQueue
from shared.domain.clock import FixedClock
from shared.domain.funnel import business_day
from shared.domain.guard import GuardLimits, Warmup, baseline
from shared.services.due_scheduling import DueScheduler, SendingPolicy
from tests.email_events import raw, ses_record
from tests.integration.conftest import TABLE
from tests.integration.nurture import NurtureWorld, build_world
from tests.integration.scoring_world import engagement, recorder
from tests.integration.test_nurture_flow import (
    DAY,
    TUESDAY_10,
    catalog,
    enrol,
    indexed_due_at,
    steps_sent,
)


def guarded(world: NurtureWorld, policy: SendingPolicy) -> NurtureWorld:
    scheduler = DueScheduler(
        DynamoDueIndex(world.dynamodb, TABLE),
        SqsJobQueue(world.sqs, world.queue_url),
        world.clock,
        switch=DynamoSendingSwitch(world.dynamodb, TABLE),
        policy=policy,
    )
    return dataclasses.replace(world, scheduler=scheduler)


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    clock.set(TUESDAY_10.astimezone(UTC))
    world = build_world(clock, dynamodb, TABLE, lambda_context, programs=catalog())
    return guarded(world, SendingPolicy(GuardLimits(min_sends=20)))


def test_a_burst_of_bounces_pauses_sending_and_a_resume_sends_what_waited_once(
    world: NurtureWorld, lambda_context: Any
) -> None:
    # Given 25 leads sent the welcome email
    leads = [enrol(world, "linear") for _ in range(25)]
    assert world.run() == 25
    # When one of them bounces for good: 4% of the sends, the limit (SES reviews at 5%)
    deliver = engagement(recorder(world.dynamodb, world.clock), lambda_context)
    (bounced,) = [e for e in world.ses.sent if e.tags["lead_id"] == leads[0]]
    event = ses_record(
        "bounce_permanent",
        lead_id=leads[0],
        email=bounced.to[0],
        program="linear",
        step="welcome",
        variant=bounced.tags["variant"],
        at=world.clock.now(),
    )
    assert deliver([raw(event)]).failed == []

    first = world.tick()

    # Then the next tick pauses sending
    assert (first["paused"], first["queued"]) == (True, 0)
    # and when the case study comes due two days later for the other 24, nothing goes
    world.advance(2 * DAY)
    due_before = {lead: indexed_due_at(world, lead) for lead in leads[1:]}
    held = world.tick()
    assert (held["paused"], held["queued"], held["held"]) == (False, 0, 24)
    world.drain()
    assert world.ses.sent[25:] == []
    switch = DynamoSendingSwitch(world.dynamodb, TABLE)
    state = switch.state()
    assert state.paused
    assert state.reason == "bounce rate 4.00% of 25 sends"
    # and while paused nothing is lost: the leads stay due as they were, tick after tick
    world.advance(timedelta(hours=3))
    later = world.tick()
    assert (later["paused"], later["queued"], later["held"]) == (False, 0, 24)
    assert {lead: indexed_due_at(world, lead) for lead in leads[1:]} == due_before

    # When an operator resumes (what happened before the resume no longer counts)
    today = business_day(world.clock.now())
    days = switch.counts([today - timedelta(days=1), today])
    switch.resume(world.clock.now(), "ops", baseline(days))

    # Then the next run sends each waiting lead its case study, once
    assert world.run() == 24
    assert world.run() == 0
    sent = Counter((e.tags["lead_id"], e.tags["step"]) for e in world.ses.sent)
    assert all(sent[(lead, "case_study")] == 1 for lead in leads[1:])
    assert steps_sent(world, leads[0]) == ["welcome"]  # the bounced address, never again


def test_the_warm_up_cap_sends_the_earliest_due_first_and_the_rest_the_next_day(
    world: NurtureWorld,
) -> None:
    # Given a warm-up of 3 emails a day, and 7 leads due at different times
    capped = guarded(
        world,
        SendingPolicy(warmup=Warmup(business_day(world.clock.now()), (3, 10))),
    )
    leads = []
    for minutes in (60, 10, 50, 20, 40, 30, 70):
        leads.append(enrol(capped, "linear", due_in=-timedelta(minutes=minutes)))
    order = [
        lead
        for _, lead in sorted(zip((60, 10, 50, 20, 40, 30, 70), leads, strict=False), reverse=True)
    ]

    # When the scheduler runs twice on the first day, then on the next
    first = capped.run()
    assert capped.run() == 0
    capped.advance(DAY)
    second = capped.run()

    # Then the day's cap holds, the earliest due go first, and the rest follow next day
    assert (first, second) == (3, 3)
    mailed = [e.tags["lead_id"] for e in capped.ses.sent]
    assert set(mailed[:3]) == set(order[:3])
    assert set(mailed[3:]) == set(order[3:6])
    # and the day's count of queued jobs is what the cap compares with
    today = business_day(capped.clock.now())
    assert DynamoSendingSwitch(world.dynamodb, TABLE).queued(today) == 3

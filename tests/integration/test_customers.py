"""Customers over time: purchases rank them, the review moves them between segments on
the day their recency drops (no scan, no nightly job), a move enters the program for the
new segment, and the sender reads the rank as of the day it decides."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.items import counter_key
from shared.domain.clock import FixedClock
from shared.domain.customers import Purchase, adding, load_customers
from shared.domain.leads import ActivityType, ConsentState, FormType, Lead, Stage, Touch, new_id
from shared.domain.nurture import start
from shared.services.purchases import PurchaseBook
from tests.builders import store
from tests.integration.conftest import TABLE, all_items
from tests.integration.nurture import NurtureWorld, build_world

JST = ZoneInfo("Asia/Tokyo")
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=JST)
DAY = timedelta(days=1)
RULES = load_customers()


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    clock.set(TUESDAY_10.astimezone(UTC))
    return build_world(clock, dynamodb, TABLE, lambda_context)


@pytest.fixture
def book(world: NurtureWorld) -> PurchaseBook:
    return PurchaseBook(world.repository, world.programs, RULES, world.clock)


def customer(world: NurtureWorld, **fields: Any) -> str:
    """A mailable customer outside any program (its customer program finished)."""
    created = world.clock.now() - 200 * DAY
    touch = Touch(at=created, form_type=FormType.INQUIRY)
    lead = Lead(
        lead_id=new_id(),
        email=f"{new_id()[:8]}@example.co.jp",
        company="株式会社サンプル",
        stage=Stage.CUSTOMER,
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=created, wording_version="2026-01"),
        created_at=created,
        updated_at=created,
        **fields,
    )
    store(world.repository, lead)
    return lead.lead_id


def lead_of(world: NurtureWorld, lead_id: str) -> Lead:
    lead = world.repository.get(lead_id)
    assert lead is not None
    return lead


def customer_counts(world: NurtureWorld, running: bool = False) -> Counter[str]:
    """The ``customers`` counters, summed over every day (or the running totals)."""
    totals: Counter[str] = Counter()
    for item in all_items(world.dynamodb):
        pk = item["pk"]["S"]
        wanted = pk == "COUNTER#total" if running else pk.startswith("COUNTER#2")
        if wanted and counter_key(item["sk"]["S"]) == "customers":
            totals.update({k: int(v["N"]) for k, v in item.items() if "N" in v})
    return +totals


def moves(world: NurtureWorld, lead_id: str) -> list[tuple[str | None, str]]:
    timeline = reversed(world.repository.timeline(lead_id))
    return [
        (a.details["from"], a.details["to"])
        for a in timeline
        if a.type is ActivityType.SEGMENT_CHANGED
    ]


def hours(world: NurtureWorld, count: int) -> None:
    """Run the schedules every hour for ``count`` hours, as EventBridge would."""
    for _ in range(count):
        world.advance(timedelta(hours=1))
        world.run()


def test_a_customer_who_stops_buying_is_reviewed_into_at_risk_and_checked_in_on(
    world: NurtureWorld, book: PurchaseBook
) -> None:
    # Given a customer's first purchase, today
    lead_id = customer(world)
    today = world.clock.now().astimezone(JST).date()
    book.record(lead_id, Purchase(date=today, amount=300_000, product="standard"))
    lead = lead_of(world, lead_id)
    assert lead.rank is not None
    assert (lead.rank.segment, lead.rank.r) == ("new", 5)
    # reviewed again on the day its recency score drops (31 days on), not before
    assert lead.review_at == datetime.combine(today + 31 * DAY, datetime.min.time(), JST).replace(
        minute=5
    )

    # When the schedules run through that day
    world.clock.set(lead.review_at.astimezone(UTC))
    world.run()
    # Then it is ranked again (recency 4), still a new customer, reviewed at 91 days
    lead = lead_of(world, lead_id)
    assert lead.rank is not None
    assert (lead.rank.segment, lead.rank.r, lead.rank.on) == ("new", 4, today + 31 * DAY)
    assert lead.review_at is not None
    assert lead.review_at.astimezone(JST).date() == today + 91 * DAY
    assert lead.enrolment is None

    # When half a year passes without a purchase
    for days in (91, 181):
        world.clock.set(
            datetime.combine(today + days * DAY, datetime.min.time(), JST).replace(minute=5)
        )
        world.run()
    # Then it is at risk, enters the care program, and is checked in on the next weekday
    lead = lead_of(world, lead_id)
    assert lead.rank is not None
    assert lead.rank.segment == "at_risk"
    assert lead.enrolment is not None
    assert lead.enrolment.program_id == "customer_care"
    assert moves(world, lead_id) == [(None, "new"), ("new", "at_risk")]
    sent_before = len(world.ses.sent)
    hours(world, 24 * 4)
    checked = [e for e in world.ses.sent[sent_before:] if e.tags.get("step") == "check_in"]
    assert len(checked) == 1
    assert "オンライン相談" in checked[0].part("plain")
    # and the reports count each move once, with the segment's running total
    assert customer_counts(world) == {
        "none>new": 1,
        "new>at_risk": 1,
        "purchases:new": 1,
        "revenue:new": 300_000,
    }
    assert customer_counts(world, running=True) == {"at_risk": 1}


def test_a_customer_that_becomes_loyal_outside_any_program_gets_the_loyalty_offer(
    world: NurtureWorld, book: PurchaseBook
) -> None:
    lead_id = customer(world)
    today = world.clock.now().astimezone(JST).date()
    for n in range(5):
        book.record(
            lead_id,
            Purchase(
                purchase_id=f"SO-{n}", date=today - n * DAY, amount=400_000, product="standard"
            ),
        )
    lead = lead_of(world, lead_id)
    assert lead.rank is not None
    assert lead.rank.segment == "loyal"
    assert lead.enrolment is not None
    assert lead.enrolment.program_id == "customer_care"
    # (recorded in the same second: the timeline's order among them is not kept)
    assert set(moves(world, lead_id)) == {(None, "new"), ("new", "stable"), ("stable", "loyal")}
    sent_before = len(world.ses.sent)
    hours(world, 24 * 3)
    steps = [e.tags.get("step") for e in world.ses.sent[sent_before:]]
    assert steps == ["loyalty_offer"]
    assert customer_counts(world, running=True) == {"loyal": 1}


def test_the_sender_decides_on_the_rank_as_of_the_day_and_keeps_it(
    world: NurtureWorld,
) -> None:
    # Given a customer that was loyal when its program began, with no purchase since
    program = world.programs.get("customer")
    assert program is not None
    bought_on = date(2026, 1, 15)
    summary = None
    for n in range(5):
        summary = adding(
            summary,
            Purchase(date=bought_on + n * DAY, amount=400_000, product="enterprise"),
            bought_on + 5 * DAY,
        )
    assert summary is not None
    rank = RULES.rank(summary, None, bought_on + 5 * DAY)
    assert rank.segment == "loyal"
    now = world.clock.now()
    enrolment = start(program, now - 60 * DAY, step_id="loyalty_offer").model_copy(
        update={"due_at": now}
    )
    lead_id = customer(world, purchases=summary, rank=rank, enrolment=enrolment)

    # When its loyalty offer is due, more than half a year after the last purchase
    world.run()

    # Then the offer is skipped: the customer is at risk now, and its rank says so
    assert not world.ses.sent
    lead = lead_of(world, lead_id)
    assert lead.rank is not None
    assert lead.rank.segment == "at_risk"
    (skipped,) = [
        a for a in world.repository.timeline(lead_id) if a.type is ActivityType.STEP_SKIPPED
    ]
    assert skipped.details["step_id"] == "loyalty_offer"
    assert skipped.details["reason"] == "only_if:segment"
    assert customer_counts(world) == {"loyal>at_risk": 1}

"""Recording purchases (shared.services.purchases) on the in-memory repository: the use case alone,
without a table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.domain.clock import FixedClock
from shared.domain.customers import FutureDate, Purchase, load_customers
from shared.domain.leads import ActivityType, ConsentState, Enrolment, FormType, Lead, Stage, Touch
from shared.domain.programs import load_programs
from shared.ports import Revision, UnknownLead
from shared.services.purchases import PurchaseBook
from tests.fakes import InMemoryLeads

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # 10:00 in Japan
TODAY = date(2026, 12, 3)


@pytest.fixture
def leads() -> InMemoryLeads:
    return InMemoryLeads()


@pytest.fixture
def book(leads: InMemoryLeads) -> PurchaseBook:
    return PurchaseBook(leads, load_programs(), load_customers(), FixedClock(NOW))


def stored(leads: InMemoryLeads, stage: Stage = Stage.LEAD, **fields: object) -> str:
    touch = Touch(at=NOW - timedelta(days=30), form_type=FormType.DOWNLOAD)
    lead = Lead(
        lead_id="a" * 32,
        email="buyer@example.co.jp",
        stage=stage,
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=touch.at, wording_version="v1"),
        created_at=touch.at,
        updated_at=touch.at,
        **{
            "enrolment": Enrolment(
                program_id="welcome", enrolled_at=touch.at, step_id="case_study"
            ),
            **fields,
        },
    )
    leads.revise(lead.lead_id, lambda _: Revision(lead))
    return lead.lead_id


def test_a_first_purchase_makes_a_lead_a_new_customer_in_the_customer_program(
    leads: InMemoryLeads, book: PurchaseBook
) -> None:
    lead_id = stored(leads)

    recorded = book.record(lead_id, Purchase(date=TODAY, amount=120_000, product="standard"))

    lead = recorded.lead
    assert not recorded.duplicate
    assert lead.stage is Stage.CUSTOMER
    assert lead.enrolment is not None
    assert lead.enrolment.program_id == "customer"
    assert lead.rank is not None
    assert (lead.rank.segment, lead.rank.r, lead.rank.f, lead.rank.m) == ("new", 5, 1, 2)
    assert lead.review_at is None  # a program runs: the sender ranks it as it goes
    kinds = [a.type for a in leads.history(lead_id)]
    assert sorted(kinds) == sorted(
        [ActivityType.STAGE_CHANGED, ActivityType.PURCHASED, ActivityType.SEGMENT_CHANGED]
    )
    assert leads.counted("stage") == {"new>lead": 1, "lead>customer": 1}
    assert leads.counted("customers") == {
        "none>new": 1,
        "purchases:new": 1,
        "revenue:new": 120_000,
    }
    assert leads.counted("customers", running=True) == {"new": 1}


def test_the_same_purchase_twice_counts_once_and_another_order_moves_the_segment(
    leads: InMemoryLeads, book: PurchaseBook
) -> None:
    lead_id = stored(leads, stage=Stage.CUSTOMER, enrolment=None)
    order = Purchase(purchase_id="SO-1", date=TODAY, amount=120_000, product="standard")

    assert not book.record(lead_id, order).duplicate
    assert book.record(lead_id, order).duplicate
    second = book.record(lead_id, order.model_copy(update={"purchase_id": "SO-2"}))

    assert second.lead.purchases is not None
    assert (second.lead.purchases.count, second.lead.purchases.total) == (2, 240_000)
    assert second.lead.rank is not None
    assert second.lead.rank.segment == "stable"
    # outside any program, reviewed on the day its recency score drops
    assert second.lead.review_at == datetime.fromisoformat("2027-01-03T00:05:00+09:00")
    assert leads.counted("customers", running=True) == {"stable": 1}
    assert leads.counted("customers")["purchases:new"] == 1


def test_a_purchase_dated_after_today_or_for_no_lead_changes_nothing(
    leads: InMemoryLeads, book: PurchaseBook
) -> None:
    lead_id = stored(leads)
    before, counts = leads.get(lead_id), leads.counts.copy()
    with pytest.raises(FutureDate):
        book.record(lead_id, Purchase(date=TODAY + timedelta(days=1), amount=1, product="p"))
    with pytest.raises(UnknownLead):
        book.record("b" * 32, Purchase(date=TODAY, amount=1, product="p"))
    assert leads.get(lead_id) == before
    assert leads.counts == counts

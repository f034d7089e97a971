"""Customers' RFM scores, segments and CPM labels (shared.domain.customers), and the rules that
read them in programs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.customers import (
    CustomerRules,
    FutureDate,
    Purchase,
    adding,
    current_rank,
    load_customers,
    review_time,
)
from shared.domain.funnel import NO_SEGMENT, lead_counts, merged
from shared.domain.leads import FormType, Lead, Purchases, Rank, Stage
from shared.domain.programs import EntryRule, StepCondition, load_programs
from tests.builders import a_lead

TODAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
RULES = load_customers()


def bought(*purchases: tuple[str, int, str], today: date = TODAY) -> Purchases:
    summary: Purchases | None = None
    for day, amount, product in purchases:
        summary = adding(summary, Purchase(date=day, amount=amount, product=product), today)
    assert summary is not None
    return summary


def customer(purchases: Purchases | None, **fields: Any) -> Lead:
    return a_lead(
        at=NOW,
        form_type=FormType.INQUIRY,
        lead_id="c" * 32,
        email="buyer@example.co.jp",
        stage=Stage.CUSTOMER,
        purchases=purchases,
        **fields,
    )


def test_a_purchase_reads_the_dates_and_amounts_exports_write() -> None:
    for text in ("2026/11/30", "2026-11-30", "2026年11月30日", "２０２６/１１/３０"):
        assert Purchase.model_validate({"date": text, "amount": 1, "product": "p"}).date == date(
            2026, 11, 30
        )
    # A time with its offset is the Japanese day it falls on.
    late = Purchase.model_validate(
        {"date": "2026-11-30T16:00:00Z", "amount": "¥1,200,000", "product": "p"}
    )
    assert late.date == date(2026, 12, 1)
    assert late.amount == 1_200_000
    assert (
        Purchase.model_validate({"date": "2026-11-30", "amount": "30,000円", "product": "p"}).amount
        == 30_000
    )


@pytest.mark.parametrize(
    "written",
    [
        "1,200,000",
        "￥1,200,000",
        "\\1,200,000",
        "1200000円",
        "JPY 1,200,000",
        "1200000.00",
        "１２０００００",
    ],
)
def test_an_amount_reads_as_order_systems_export_it(written: str) -> None:
    purchase = Purchase.model_validate({"date": "2026-11-30", "amount": written, "product": "p"})
    assert purchase.amount == 1_200_000


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("date", "30/11/2026x", "invalid_date"),
        ("amount", "twelve", "invalid_amount"),
        ("amount", "1200.50", "invalid_amount"),  # yen have no fraction
        ("amount", "-1", "invalid_amount"),
        ("amount", -1, "greater_than_equal"),
        ("product", " ", "too_short"),
    ],
)
def test_a_purchase_says_which_field_is_wrong(field: str, value: Any, code: str) -> None:
    body = {"date": "2026-11-30", "amount": 1000, "product": "standard", field: value}
    with pytest.raises(ValidationError) as caught:
        Purchase.model_validate(body)
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((field,), code)]


def test_a_purchase_without_an_order_number_is_its_day_product_and_amount() -> None:
    one = Purchase(date=TODAY, amount=1000, product="standard")
    assert one.key == Purchase(date=TODAY, amount=1000, product="standard").key
    assert one.key != Purchase(date=TODAY, amount=1001, product="standard").key
    numbered = Purchase(purchase_id="SO-1", date=TODAY, amount=1000, product="standard")
    assert numbered.key == "id:SO-1"


def test_the_summary_adds_up_and_keeps_the_last_twelve_months() -> None:
    summary = bought(
        ("2025-11-20", 100_000, "standard"),  # more than a year ago: not in by_month
        ("2026-06-01", 50_000, "analytics"),
        ("2026-06-15", 25_000, "standard"),
    )
    assert (summary.count, summary.total) == (3, 175_000)
    assert (summary.first_on, summary.last_on) == (date(2025, 11, 20), date(2026, 6, 15))
    assert summary.products == ("analytics", "standard")
    assert summary.by_month == {"2026-06": 75_000}
    with pytest.raises(FutureDate):
        adding(summary, Purchase(date=date(2026, 12, 4), amount=1, product="p"), TODAY)


@pytest.mark.parametrize(
    ("days_ago", "r"),
    [(0, 5), (30, 5), (31, 4), (90, 4), (91, 3), (180, 3), (181, 2), (365, 2), (366, 1)],
)
def test_recency_scores_by_the_days_since_the_last_purchase(days_ago: int, r: int) -> None:
    last = date.fromordinal(TODAY.toordinal() - days_ago)
    assert RULES.rank(bought((last.isoformat(), 1000, "p")), None, TODAY).r == r


@pytest.mark.parametrize(
    ("purchases", "amount", "segment"),
    [
        (1, 50_000, "new"),  # one purchase, recently
        (2, 50_000, "stable"),
        (5, 300_000, "loyal"),  # five purchases, 1.5M yen in all
        (5, 10_000, "stable"),  # often, but little
    ],
)
def test_recent_customers_fall_in_the_first_segment_that_holds(
    purchases: int, amount: int, segment: str
) -> None:
    summary = bought(*[(f"2026-11-{day + 1:02d}", amount, "p") for day in range(purchases)])
    assert RULES.rank(summary, None, TODAY).segment == segment


def test_customers_who_stopped_buying_are_at_risk_then_dormant() -> None:
    loyal = bought(*[(f"2026-01-{day + 1:02d}", 300_000, "p") for day in range(5)])
    assert RULES.rank(loyal, None, date(2026, 1, 10)).segment == "loyal"
    assert RULES.rank(loyal, None, date(2026, 8, 1)).segment == "at_risk"  # 182 days
    assert RULES.rank(loyal, None, date(2027, 1, 6)).segment == "dormant"  # 367 days


def test_the_rank_says_when_it_next_changes_without_a_purchase() -> None:
    summary = bought(("2026-11-20", 50_000, "p"))
    rank = RULES.rank(summary, None, TODAY)
    # 30 days after the purchase it still scores 5; the next day 4.
    assert rank.changes_on == date(2026, 12, 21)
    assert RULES.rank(summary, None, date(2026, 12, 20)).r == 5
    assert RULES.rank(summary, None, date(2026, 12, 21)).r == 4
    assert review_time(rank) == datetime.fromisoformat("2026-12-21T00:05:00+09:00")
    # With a CPM label, a month's spend leaving the year is a change too.
    old = bought(("2026-01-10", 50_000, "p"), ("2026-11-20", 50_000, "p"))
    assert RULES.rank(old, "1-49", TODAY).changes_on == date(2026, 12, 21)
    assert RULES.rank(old, "1-49", date(2026, 12, 25)).changes_on == date(2027, 1, 1)
    assert RULES.rank(bought(("2024-01-01", 1, "p")), None, TODAY).changes_on is None


def test_the_cpm_label_is_the_year_spend_against_the_company_size_maximum() -> None:
    # 1-49 staff: up to 600,000 yen a year.
    for spend, label in ((500_000, "maximised"), (300_000, "growing"), (100_000, "untapped")):
        summary = bought(("2026-11-01", spend, "p"))
        assert RULES.rank(summary, "1-49", TODAY).cpm == label
    assert RULES.rank(bought(("2026-11-01", 1, "p")), None, TODAY).cpm is None
    assert RULES.rank(bought(("2026-11-01", 1, "p")), "unknown", TODAY).cpm is None


def test_a_kept_rank_is_used_until_the_day_it_changes() -> None:
    summary = bought(("2026-11-20", 50_000, "p"))
    rank = RULES.rank(summary, None, TODAY)
    lead = customer(summary, rank=rank)
    assert current_rank(lead, RULES, date(2026, 12, 20)) is rank
    moved = current_rank(lead, RULES, date(2026, 12, 21))
    assert moved is not None
    assert (moved.r, moved.on) == (4, date(2026, 12, 21))
    assert current_rank(customer(None), RULES, TODAY) is None


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "recency_days": [30, 90, 180, 365],
        "frequency": [2, 3, 5, 10],
        "monetary_yen": [1, 2, 3, 4],
        "segments": [
            {"id": "loyal", "name": {"ja": "優良", "en": "Loyal"}, "f": [5]},
            {"id": "other", "name": {"ja": "他", "en": "Other"}},
        ],
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recency_days": [30, 30, 180, 365]}, "ascending"),
        ({"frequency": [2, 3, 5]}, "at least 4"),
        ({"segments": [{"id": "loyal", "name": {"ja": "a", "en": "a"}, "f": [5]}]}, "last segment"),
        (
            {
                "segments": [
                    {"id": "a", "name": {"ja": "a", "en": "a"}},
                    {"id": "b", "name": {"ja": "b", "en": "b"}},
                ]
            },
            "only the last",
        ),
        (
            {"segments": [{"id": "x", "name": {"ja": "a", "en": "a"}, "r": [6]}]},
            "less than or equal",
        ),
        ({"potential_yen": {"1-49": 100}}, "needs cpm labels"),
        (
            {
                "potential_yen": {"1-49": 100},
                "cpm": [
                    {"id": "low", "name": {"ja": "a", "en": "a"}, "min_share": 0},
                    {"id": "high", "name": {"ja": "b", "en": "b"}, "min_share": 0.5},
                ],
            },
            "highest to lowest",
        ),
    ],
)
def test_a_customers_file_that_cannot_rank_everyone_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        CustomerRules.model_validate(document(**changes))


def test_every_combination_of_scores_has_a_segment_in_the_shipped_file() -> None:
    assert RULES.segment_ids == ("dormant", "at_risk", "loyal", "new", "stable")
    names = {s.id: s.name.ja for s in RULES.segments}
    assert names == {
        "dormant": "休眠顧客",
        "at_risk": "離反懸念",
        "loyal": "優良顧客",
        "new": "新規顧客",
        "stable": "安定顧客",
    }


def test_programs_read_the_segment_cpm_label_and_products() -> None:
    summary = bought(*[(f"2026-11-{day + 1:02d}", 300_000, "analytics") for day in range(5)])
    lead = customer(summary, rank=RULES.rank(summary, "1-49", TODAY), company_size="1-49")
    assert EntryRule(stages=(Stage.CUSTOMER,), segments=("loyal",)).matches(lead, None)
    assert not EntryRule(stages=(Stage.CUSTOMER,), segments=("at_risk",)).matches(lead, None)
    assert EntryRule(stages=(Stage.CUSTOMER,), cpm=("maximised",)).matches(lead, None)
    assert StepCondition(products=("analytics",)).hits(lead) == {"product": ["analytics"]}
    assert StepCondition(segments=("loyal", "stable")).matches(lead)
    assert not StepCondition(products=("enterprise",)).matches(lead)
    # A customer without purchases has no segment: a segment rule never holds for it.
    assert not StepCondition(segments=("new",)).matches(customer(None))


def test_the_shipped_programs_name_only_segments_the_customers_file_defines() -> None:
    labels = {c.id for c in RULES.cpm}
    for program in load_programs().programs:
        segments, cpm = program.customer_terms()
        assert segments <= set(RULES.segment_ids), program.id
        assert cpm <= labels, program.id


def test_a_move_between_segments_is_counted_with_the_running_totals() -> None:
    summary = bought(("2026-11-20", 50_000, "p"))
    first = customer(summary, rank=RULES.rank(summary, None, TODAY))
    counts = {(c.day, c.key): dict(c.metrics) for c in merged(lead_counts(customer(None), first))}
    assert counts[(TODAY, "customers")] == {
        f"{NO_SEGMENT}>new": 1,
        "purchases:new": 1,
        "revenue:new": 50_000,
    }
    assert counts[(None, "customers")] == {"new": 1}
    later = first.model_copy(
        update={"rank": Rank(r=2, f=1, m=1, segment="at_risk", on=TODAY), "updated_at": NOW}
    )
    counts = {(c.day, c.key): dict(c.metrics) for c in merged(lead_counts(first, later))}
    assert counts[(TODAY, "customers")] == {"new>at_risk": 1}
    assert counts[(None, "customers")] == {"new": -1, "at_risk": 1}
    # The same rank again: nothing.
    assert not [c for c in lead_counts(later, later) if c.key == "customers"]

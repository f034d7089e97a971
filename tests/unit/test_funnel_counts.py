"""The one rule that counts each change of a lead (``shared.domain.funnel.lead_counts``): the
stage transition by source, form and program, how long it took, the emails an MQL and
an opt-out are credited to, and revenue; and the period maths that reads them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.funnel import (
    ReportCount,
    lead_counts,
    lead_source,
    median,
    merged,
    sum_counters,
)
from shared.domain.leads import Enrolment, FormType, Lead, SentStep, Stage, Touch
from tests.builders import a_lead

CREATED = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
DAY = timedelta(days=1)


def lead(**changes: Any) -> Lead:
    enrolment = Enrolment(
        program_id="welcome",
        enrolled_at=CREATED,
        sent={
            "welcome": SentStep(sent_at=CREATED, variant="A"),
            "case_study": SentStep(sent_at=CREATED + 5 * DAY, variant="B"),
        },
    )
    fields: dict[str, Any] = {"enrolment": enrolment, **changes}
    return a_lead(at=CREATED, source="Expo-2026@Tokyo#Hall", lead_id="a" * 32, **fields)


def by_key(counts: list[ReportCount]) -> dict[str, dict[str, int]]:
    return {c.key: dict(c.metrics) for c in merged(counts)}


def test_a_new_lead_is_counted_in_total_and_by_source_form_and_program() -> None:
    counts = by_key(lead_counts(None, lead()))

    assert counts == {
        "stage": {"new>lead": 1},
        # separators of the counter keys never reach a source's name
        "source#expo-2026-tokyo-hall": {"new>lead": 1},
        "form#download": {"new>lead": 1},
        "program#welcome": {"new>lead": 1},
    }


def test_a_lead_without_a_named_source_or_program_is_counted_as_none() -> None:
    bare = lead(enrolment=None, first_touch=Touch(at=CREATED, form_type=FormType.CONTACT))

    assert lead_source(bare) == "(none)"
    assert set(by_key(lead_counts(None, bare))) == {
        "stage",
        "source#(none)",
        "form#contact",
        "program#(none)",
    }


def test_an_mql_credits_every_email_sent_in_each_window_and_counts_its_cycle() -> None:
    before = lead()
    # qualified 7 days after the first email, 2 after the second
    at = CREATED + 7 * DAY
    after = before.model_copy(
        update={"stage": Stage.MQL, "updated_at": at, "stage_changed_at": at, "qualified_at": at}
    )

    counts = by_key(lead_counts(before, after))

    assert counts["email#welcome#welcome#A"] == {"mql_7d": 1, "mql_14d": 1, "mql_30d": 1}
    assert counts["email#welcome#case_study#B"] == {
        "mql_3d": 1,
        "mql_7d": 1,
        "mql_14d": 1,
        "mql_30d": 1,
    }
    assert counts["cycle#mql"] == {"d7": 1}
    assert counts["program#welcome"] == {"lead>mql": 1}


def test_an_email_sent_after_the_change_or_long_before_is_not_credited() -> None:
    before = lead()
    at = CREATED + 40 * DAY
    after = before.model_copy(update={"stage": Stage.MQL, "updated_at": at})

    assert not [k for k in by_key(lead_counts(before, after)) if k.startswith("email#")]


def test_an_opt_out_is_credited_to_the_last_email_sent() -> None:
    before = lead()
    at = CREATED + 6 * DAY
    after = before.model_copy(update={"unsubscribed": True, "updated_at": at})

    counts = by_key(lead_counts(before, after))

    assert counts == {
        "list": {"unsubscribed": 1},
        "email#welcome#case_study#B": {"unsubscribes": 1},
    }


def test_sql_and_customer_cycles_run_from_the_stage_before_and_revenue_is_counted() -> None:
    mql_at = CREATED + 10 * DAY
    mql = lead(stage=Stage.MQL, stage_changed_at=mql_at, qualified_at=mql_at)
    sql_at = mql_at + 3 * DAY
    sql = mql.model_copy(
        update={"stage": Stage.SQL, "updated_at": sql_at, "stage_changed_at": sql_at}
    )
    won_at = sql_at + 30 * DAY
    won = sql.model_copy(
        update={"stage": Stage.CUSTOMER, "updated_at": won_at, "revenue": 1_200_000}
    )

    assert by_key(lead_counts(mql, sql))["cycle#sql"] == {"d3": 1}
    counts = by_key(lead_counts(sql, won))
    assert counts["cycle#customer"] == {"d30": 1}
    assert counts["revenue"] == {"deals": 1, "amount": 1_200_000, "customers": 1}
    assert counts["source#expo-2026-tokyo-hall"] == {"sql>customer": 1, "revenue": 1_200_000}


def test_a_change_that_moves_nothing_counts_nothing() -> None:
    before = lead()
    after = before.model_copy(update={"updated_at": CREATED + DAY, "score_units": 5})

    assert lead_counts(before, after) == []


def test_the_period_reads_breakdowns_cycles_and_deals() -> None:
    totals = sum_counters(
        [
            ("source#expo", {"new>lead": 10, "lead>mql": 4, "revenue": 300}),
            ("source#web", {"new>lead": 30, "lead>mql": 3}),
            ("source#expo", {"new>lead": 5}),
            ("cycle#mql", {"d2": 1, "d10": 2}),
            ("cycle#mql", {"d30": 1}),
            ("revenue", {"deals": 2, "amount": 300, "customers": 1}),
            ("form#download", {"new>lead": 40}),
        ]
    )

    web, expo = totals.breakdown("source")
    assert (web.value, web.stages["lead"], web.stages["mql"]) == ("web", 30, 3)
    assert (expo.value, expo.stages["lead"], expo.revenue) == ("expo", 15, 300)
    assert expo.rates["lead_mql"] == Fraction(4, 15)
    assert [s.value for s in totals.breakdown("form")] == ["download"]
    cycle = totals.cycle("mql")
    assert (cycle.leads, cycle.median_days) == (4, 10.0)
    assert totals.cycle("sql").median_days is None
    assert (totals.deals.won, totals.deals.average) == (2, Fraction(150))
    assert totals.deals.lifetime_value == Fraction(300)


@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60))
def test_the_median_of_a_histogram_is_the_median_of_its_values(values: list[int]) -> None:
    ordered = sorted(values)
    n = len(ordered)
    expected = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2

    assert median(Counter(values)) == expected


def test_counts_fall_on_the_japanese_day_of_the_change() -> None:
    late = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)  # 00:30 on 3 November in Tokyo

    (count, *_) = lead_counts(None, lead(updated_at=late))

    assert count.day == date(2026, 11, 3)

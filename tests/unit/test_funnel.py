"""Funnel maths: stage counts from transition counters, rates, email KPIs and the plan."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.funnel import (
    DEFAULT_RATES,
    choose_rates,
    conversion_rates,
    parse_rate,
    parse_rates,
    percent,
    plan,
    stage_counts,
    sum_counters,
)


def test_stage_counts_take_new_leads_only_and_every_route_into_later_stages() -> None:
    transitions = {
        "new>lead": 100,
        "sql>lead": 4,  # rejected by sales: back to nurturing, not a new lead
        "dormant>lead": 2,
        "lead>mql": 20,
        "dormant>mql": 1,
        "mql>sql": 8,
        "sql>customer": 3,
        "lost>customer": 1,
        "lead>dormant": 7,
    }

    assert stage_counts(transitions) == {"lead": 100, "mql": 21, "sql": 8, "customer": 4}


def test_conversion_rates_are_exact_and_undefined_without_a_denominator() -> None:
    rates = conversion_rates({"lead": 120, "mql": 24, "sql": 10, "customer": 0})

    assert rates == {
        "lead_mql": Fraction(1, 5),
        "mql_sql": Fraction(5, 12),
        "sql_won": Fraction(0),
        "lead_won": Fraction(0),
    }
    empty = conversion_rates({"lead": 0, "mql": 0, "sql": 0, "customer": 0})
    assert set(empty.values()) == {None}


def test_counters_sum_over_days_into_stages_and_email_kpis_per_variant() -> None:
    totals = sum_counters(
        [
            ("stage", {"new>lead": 10, "lead>mql": 2}),
            (
                "email#welcome#welcome#0",
                {
                    "sent": 10,
                    "delivered": 9,
                    "opens": 9,
                    "clicks": 4,
                    "unique_human_opens": 3,
                    "unique_human_clicks": 1,
                    "unique_machine_opens": 4,
                    "unique_machine_clicks": 2,
                },
            ),
            ("stage", {"new>lead": 5, "mql>sql": 1}),
            ("email#welcome#welcome#0", {"sent": 10, "delivered": 10, "bounces": 1}),
            ("email#welcome#welcome#1", {"sent": 4, "complaints": 1}),
            ("something-else", {"x": 1}),
        ]
    )

    assert totals.stages == {"lead": 15, "mql": 2, "sql": 1, "customer": 0}
    first, second = totals.email_kpis()
    assert (first.program, first.step, first.variant) == ("welcome", "welcome", "0")
    assert (first.sent, first.delivered) == (20, 19)
    # People's opens and clicks, each email once; machines' apart
    assert first.open_rate == Fraction(3, 19)
    assert first.click_rate == Fraction(1, 19)
    assert first.click_to_open_rate == Fraction(1, 3)
    assert first.machine_open_rate == Fraction(4, 19)
    assert first.machine_click_rate == Fraction(2, 19)
    assert first.bounce_rate == Fraction(1, 20)
    assert first.complaint_rate == 0
    assert second.variant == "1"
    assert second.open_rate is None  # nothing delivered: no rate, not 0%
    assert second.complaint_rate == Fraction(1, 4)


def test_list_health_and_dormancy_do_not_disturb_the_stage_maths() -> None:
    totals = sum_counters(
        [
            ("stage", {"new>lead": 10, "lead>mql": 2, "lead>dormant": 4, "dormant>lead": 1}),
            ("list", {"unsubscribed": 3, "suppressed:bounce": 2, "sunset:dormant": 1}),
            ("stage", {"dormant>mql": 1, "mql>lead": 1}),
            ("list", {"suppressed:complaint": 1, "sunset:lost": 2, "suppressed:rejected": 1}),
        ]
    )

    # Only new leads are leads; a lead won back from dormancy that qualifies is an MQL.
    assert totals.stages == {"lead": 10, "mql": 3, "sql": 0, "customer": 0}
    assert totals.rates["lead_mql"] == Fraction(3, 10)
    assert "unsubscribed" not in totals.transitions
    assert set(totals.lists) == {
        "unsubscribed",
        "suppressed:bounce",
        "suppressed:complaint",
        "suppressed:rejected",
        "sunset:dormant",
        "sunset:lost",
    }


def test_re_engagement_counts_dormant_leads_won_back_and_sunset() -> None:
    totals = sum_counters(
        [
            ("stage", {"lead>dormant": 8, "dormant>lead": 1, "dormant>mql": 1, "lead>mql": 5}),
            ("list", {"sunset:dormant": 3, "sunset:lost": 2, "unsubscribed": 1}),
        ]
    )

    numbers = totals.reengagement
    assert (numbers.dormant, numbers.reengaged, numbers.sunset) == (8, 2, 3)
    assert numbers.rate == Fraction(1, 4)
    assert sum_counters([]).reengagement.rate is None  # nobody went dormant: no rate


def test_list_health_sums_suppressions_by_cause_and_sunsets_of_every_stage() -> None:
    totals = sum_counters(
        [
            ("list", {"unsubscribed": 4, "suppressed:bounce": 2, "suppressed:complaint": 1}),
            ("list", {"suppressed:bounce": 1, "sunset:dormant": 3, "sunset:lost": 2}),
            ("stage", {"lead>dormant": 9}),
        ]
    )

    health = totals.list_health
    assert health.unsubscribed == 4
    assert health.suppressed == {"bounce": 3, "complaint": 1}
    assert health.suppressed_total == 4
    assert health.sunset == 5
    assert health.total == 13
    empty = sum_counters([]).list_health
    assert (empty.unsubscribed, empty.suppressed, empty.sunset, empty.total) == (0, {}, 0, 0)


def test_plan_works_back_from_deals_rounding_up_at_every_stage() -> None:
    result = plan(10, {"lead_mql": Fraction("0.2"), "mql_sql": Fraction("0.4"), "sql_won": 1})

    assert [(s.stage, s.needed) for s in result.stages] == [
        ("lead", 125),
        ("mql", 25),
        ("sql", 10),
        ("customer", 10),
    ]
    # 7 deals at 30%: 23.33 SQLs -> 24; 24 / 0.7 = 34.3 -> 35 MQLs; 35 / 0.3 = 116.7 -> 117.
    rates = parse_rates("lead_mql=0.3,mql_sql=70%,sql_won=3/10")
    assert [s.needed for s in plan(7, rates).stages] == [117, 35, 24, 7]
    assert plan(7, rates).reachable


def test_plan_is_exact_where_floats_would_round_up_a_whole_number() -> None:
    # 3 / 0.3 is 10.000000000000002 in floats; exactly 10 leads are needed.
    result = plan(3, {"lead_mql": Fraction("0.3"), "mql_sql": Fraction(1), "sql_won": 1})

    assert result.stages[0].needed == 10


def test_a_zero_rate_makes_the_stages_before_it_unreachable() -> None:
    result = plan(5, {"lead_mql": Fraction("0.2"), "mql_sql": Fraction(0), "sql_won": 1})

    assert [s.needed for s in result.stages] == [None, None, 5, 5]
    assert not result.reachable
    # No deals wanted: nothing needed, whatever the rates.
    assert [s.needed for s in plan(0, dict.fromkeys(DEFAULT_RATES, Fraction(0))).stages] == [
        0,
        0,
        0,
        0,
    ]


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "abc", "120%", "1/0", ""])
def test_rates_outside_zero_to_one_or_unreadable_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(bad)


def test_rates_name_known_conversions() -> None:
    assert parse_rates("") == {}
    with pytest.raises(ValueError, match="lead_mql"):
        parse_rates("lead_sql=0.5")
    with pytest.raises(ValueError, match="expected"):
        parse_rates("lead_mql")
    with pytest.raises(ValueError, match="negative"):
        plan(-1, DEFAULT_RATES)


def test_chosen_rates_prefer_given_then_usable_measured_then_defaults() -> None:
    measured = {"lead_mql": Fraction(1, 4), "mql_sql": Fraction(3, 2), "sql_won": None}

    rates, sources = choose_rates({"sql_won": Fraction(1, 2)}, measured)

    assert rates == {"lead_mql": Fraction(1, 4), "mql_sql": Fraction("0.4"), "sql_won": 0.5}
    assert sources == {"lead_mql": "measured", "mql_sql": "default", "sql_won": "given"}
    rates, sources = choose_rates({}, {"lead_mql": Fraction(0)})
    assert rates == DEFAULT_RATES
    assert set(sources.values()) == {"default"}


def test_percent_shows_undefined_rates_as_a_dash() -> None:
    assert percent(Fraction(1, 8)) == "12.5%"
    assert percent(Fraction(1, 3), 2) == "33.33%"
    assert percent(None) == "-"


@given(
    deals=st.integers(min_value=1, max_value=10_000),
    rates=st.lists(
        st.fractions(min_value=Fraction(1, 1000), max_value=1, max_denominator=1000),
        min_size=3,
        max_size=3,
    ),
)
def test_the_planned_leads_are_always_enough(deals: int, rates: list[Fraction]) -> None:
    named = dict(zip(("lead_mql", "mql_sql", "sql_won"), rates, strict=True))

    lead, mql, sql, won = (s.needed for s in plan(deals, named).stages)

    assert lead is not None
    assert mql is not None
    assert sql is not None
    assert sql * named["sql_won"] >= won
    assert mql * named["mql_sql"] >= sql
    assert lead * named["lead_mql"] >= mql
    # ... and one fewer would not be.
    assert (sql - 1) * named["sql_won"] < won

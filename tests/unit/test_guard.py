"""The sending guard's arithmetic: rates since the last resume, the limits checked at
the limit itself, and the warm-up cap by week (``shared.domain.guard``)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from shared.domain.guard import GuardLimits, GuardState, Warmup, baseline, breach, reputation

TODAY, YESTERDAY = date(2026, 11, 25), date(2026, 11, 24)
LIMITS = GuardLimits(min_sends=100)


def test_the_rates_count_sends_and_uncertain_sends_over_both_days() -> None:
    days = {
        YESTERDAY: {"sent": 60, "hard_bounces": 1, "complaints": 0},
        TODAY: {"sent": 38, "uncertain": 2, "hard_bounces": 3, "complaints": 1, "bounces": 9},
    }

    found = reputation(days, GuardState())

    assert (found.sent, found.hard_bounces, found.complaints) == (100, 4, 1)
    assert found.bounce_rate == Fraction(1, 25)


def test_the_guard_pauses_at_its_limit_which_is_below_ses_review_rate() -> None:
    just_below = reputation({TODAY: {"sent": 1000, "hard_bounces": 39}}, GuardState())
    at_limit = reputation({TODAY: {"sent": 1000, "hard_bounces": 40}}, GuardState())
    complaints = reputation({TODAY: {"sent": 2500, "complaints": 2}}, GuardState())

    assert breach(just_below, GuardLimits()) is None
    assert breach(at_limit, GuardLimits()) == "bounce rate 4.00% of 1000 sends"
    assert breach(complaints, GuardLimits()) == "complaint rate 0.080% of 2500 sends"
    # 4% is reached before SES's 5%: the pause comes first
    assert at_limit.bounce_rate is not None
    assert at_limit.bounce_rate < Fraction(5, 100)


def test_too_few_sends_say_nothing_about_the_list() -> None:
    found = reputation({TODAY: {"sent": 99, "hard_bounces": 50}}, GuardState())

    assert breach(found, LIMITS) is None


def test_a_resume_takes_off_what_was_counted_before_it() -> None:
    days = {YESTERDAY: {"sent": 400, "hard_bounces": 30}, TODAY: {"sent": 100, "hard_bounces": 5}}
    resumed = GuardState(baseline=baseline(days))

    # nothing since the resume: nothing to judge
    assert breach(reputation(days, resumed), LIMITS) is None
    later = {**days, TODAY: {"sent": 250, "hard_bounces": 6}}
    found = reputation(later, resumed)
    assert (found.sent, found.hard_bounces) == (150, 1)
    assert breach(found, LIMITS) is None


def test_the_warmup_cap_rises_week_by_week_and_ends() -> None:
    warmup = Warmup(date(2026, 12, 1), (50, 100, 250))

    assert warmup.cap(date(2026, 11, 30)) == 50  # before the start: the first week's
    assert warmup.cap(date(2026, 12, 7)) == 50
    assert warmup.cap(date(2026, 12, 8)) == 100
    assert warmup.cap(date(2026, 12, 21)) == 250
    assert warmup.cap(date(2026, 12, 22)) is None
    assert Warmup().cap(TODAY) is None

"""Experiments: the posterior that a variant is best, the sample still needed, and the
bandit that gives out variants (``shared.domain.experiments``), and how a step's content closes
a test or gives each variant its template."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from shared.domain.experiments import (
    Arm,
    arms,
    probability_b_beats_a,
    probability_best,
    sample_needed,
    thompson,
)
from shared.domain.nurture import variant_of
from shared.domain.programs import Program


def test_the_posterior_matches_a_hand_computed_case() -> None:
    # A: nothing yet, so Beta(1, 1) (uniform); B: 1 success in 1 trial, Beta(2, 1) with
    # density 2x. P(B > A) = integral of 2x * x over [0, 1] = 2/3.
    a, b = Arm("A", 0, 0), Arm("B", 1, 1)

    assert probability_b_beats_a(a, b) == pytest.approx(2 / 3, abs=1e-12)
    assert probability_best([a, b]) == pytest.approx({"A": 1 / 3, "B": 2 / 3})


def test_the_exact_two_way_posterior_agrees_with_sampling() -> None:
    a, b = Arm("A", 400, 20), Arm("B", 380, 31)
    rng = random.Random(7)
    draws = 40_000
    b_wins = sum(rng.betavariate(32, 350) > rng.betavariate(21, 381) for _ in range(draws))

    assert probability_b_beats_a(a, b) == pytest.approx(b_wins / draws, abs=0.01)
    assert probability_b_beats_a(a, b) > 0.9


def test_three_equal_variants_are_each_best_a_third_of_the_time() -> None:
    found = [Arm(label, 200, 10) for label in "ABC"]

    best = probability_best(found)

    assert sum(best.values()) == pytest.approx(1.0)
    assert all(p == pytest.approx(1 / 3, abs=0.02) for p in best.values())


def test_the_sample_needed_is_the_two_proportion_power_calculation() -> None:
    # 10% against 5% at 95% confidence and 80% power, by hand: pooled 0.075;
    # (1.95996 * sqrt(2 * 0.075 * 0.925) + 0.84162 * sqrt(0.09 + 0.0475))^2 / 0.05^2
    # = (0.73007 + 0.31208)^2 / 0.0025 = 434.4, so 435 sends per variant.
    found = [Arm("A", 100, 5), Arm("B", 100, 10)]

    assert sample_needed(found) == 435
    assert sample_needed([Arm("A", 100, 5), Arm("B", 100, 5)]) is None
    assert sample_needed([Arm("A", 0, 0), Arm("B", 100, 5)]) is None


def test_arms_read_sends_and_the_metrics_successes_from_the_counters() -> None:
    counts = {"A": {"sent": 50, "unique_human_clicks": 4, "mql_14d": 1}, "C": {"sent": 3}}

    assert arms(["A", "B", "C"], counts, "clicks") == [
        Arm("A", 50, 4),
        Arm("B", 0, 0),
        Arm("C", 3, 0),
    ]
    assert arms(["A"], counts, "mql") == [Arm("A", 50, 1)]


def test_the_bandit_shifts_traffic_to_the_better_variant_and_keeps_a_minimum_share() -> None:
    # Simulated traffic: B is clicked by 12% of people, A by 4%; results feed back.
    rng = random.Random(3)
    rates = [0.04, 0.12]
    sent, clicks = [0, 0], [0, 0]
    given: list[int] = []
    for n in range(4000):
        found = [Arm(label, sent[i], clicks[i]) for i, label in enumerate("AB")]
        pick = thompson(found, 0.05, seed=n)
        given.append(pick)
        sent[pick] += 1
        clicks[pick] += rng.random() < rates[pick]

    last = Counter(given[-1000:])
    # Then the better variant gets most of the late sends, the other its minimum share
    assert last[1] > 850
    assert last[0] >= 20


def test_the_bandit_gives_each_variant_its_share_while_nothing_is_known() -> None:
    found = [Arm(label, 0, 0) for label in "ABC"]

    given = Counter(thompson(found, 0.1, seed=n) for n in range(3000))

    assert all(900 <= given[i] <= 1100 for i in range(3))


PROGRAM = {
    "id": "p",
    "name": "p",
    "entry": {"stages": ["lead"]},
    "steps": [
        {
            "id": "a",
            "template": "welcome",
            "content_type": "newsletter",
            "subject": {"ja": ["一", "二"]},
            "experiment": {"allocation": "bandit", "min_share": 0.1},
        }
    ],
}


def test_a_closed_test_sends_everyone_the_winner() -> None:
    step = {**PROGRAM["steps"][0], "experiment": {"allocation": "bandit", "winner": "B"}}  # type: ignore[index]
    program = Program.model_validate({**PROGRAM, "steps": [step]})
    leading_a = [Arm("A", 100, 50), Arm("B", 100, 1)]

    assert {variant_of(f"{n:032x}", program, program.steps[0], leading_a) for n in range(50)} == {1}


def test_a_bandit_step_follows_its_results_and_a_split_one_its_hash() -> None:
    program = Program.model_validate(PROGRAM)
    step = program.steps[0]
    b_far_ahead = [Arm("A", 1000, 10), Arm("B", 1000, 200)]

    picks = Counter(variant_of(f"{n:032x}", program, step, b_far_ahead) for n in range(500))

    assert picks[1] > 400
    # without results (none read yet) it splits as before
    assert {variant_of(f"{n:032x}", program, step) for n in range(50)} == {0, 1}


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({"winner": "C"}, "winner C is not a variant"),
        ({"templates": ["welcome"]}, "one per variant"),
        ({"min_share": 0.6}, "less than or equal to 0.5"),
        ({"allocation": "greedy"}, "allocation"),
        ({"metric": "opens"}, "metric"),
        ({"send_times": [None]}, "send_times needs one per variant"),
        (
            {"allocation": "bandit", "send_times": [None, {"hour": 16}]},
            "send_times need allocation split",
        ),
        ({"send_times": [None, {"hour": 24}]}, "less than or equal to 23"),
        ({"send_times": [None, {"hour": 9, "weekdays": ["sun", "holiday"]}]}, "weekdays"),
    ],
)
def test_an_experiment_that_cannot_work_is_refused(
    experiment: dict[str, object], message: str
) -> None:
    step = {**PROGRAM["steps"][0], "experiment": experiment}  # type: ignore[index]
    with pytest.raises(ValidationError, match=message):
        Program.model_validate({**PROGRAM, "steps": [step]})


def test_a_variant_may_have_its_own_template() -> None:
    step = {**PROGRAM["steps"][0], "experiment": {"templates": ["welcome", "case_study"]}}  # type: ignore[index]
    program = Program.model_validate({**PROGRAM, "steps": [step]})

    assert [program.steps[0].template_for(v) for v in (0, 1)] == ["welcome", "case_study"]

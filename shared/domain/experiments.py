"""Experiments on a step's variants: which one is best, how sure we are, how many more
sends it takes to know, and who gets which variant (pure: no I/O, no AWS).

A variant's results are Beta-Binomial: ``successes`` (the emails a person clicked, or
the leads that became MQL within 14 days) out of ``trials`` (the emails sent), with a
uniform Beta(1, 1) prior. Hand-written rather than SciPy: two Beta densities and a
seeded sampler are all it needs, and SciPy would add tens of megabytes to every
function's package.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

Metric = Literal["clicks", "mql"]
# The counter attribute each metric counts successes with (``shared.domain.funnel``).
SUCCESSES: dict[str, str] = {"clicks": "unique_human_clicks", "mql": "mql_14d"}
DRAWS = 20_000  # Monte Carlo draws for three or more variants (error about 0.3 %)
CONFIDENCE = 0.95
POWER = 0.8


@dataclass(frozen=True)
class Arm:
    """One variant's results so far."""

    label: str
    trials: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None


def arms(
    labels: Sequence[str], counts: Mapping[str, Mapping[str, int]], metric: Metric
) -> list[Arm]:
    """The arms of a step from its email counters by variant label."""
    found = []
    for label in labels:
        metrics = counts.get(label, {})
        trials = int(metrics.get("sent", 0))
        found.append(Arm(label, trials, min(int(metrics.get(SUCCESSES[metric], 0)), trials)))
    return found


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta(arm: Arm) -> tuple[int, int]:
    return 1 + arm.successes, 1 + arm.trials - arm.successes


def probability_b_beats_a(a: Arm, b: Arm) -> float:
    """P(rate of b > rate of a) under the Beta posteriors, exactly (the closed form for
    integer parameters: a finite sum of Beta functions)."""
    alpha_a, beta_a = _beta(a)
    alpha_b, beta_b = _beta(b)
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(
            _log_beta(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - _log_beta(1 + i, beta_b)
            - _log_beta(alpha_a, beta_a)
        )
    return min(max(total, 0.0), 1.0)


def probability_best(found: Sequence[Arm], seed: int = 0) -> dict[str, float]:
    """For each arm, the posterior probability that its rate is the highest."""
    if not found:
        return {}
    if len(found) == 1:
        return {found[0].label: 1.0}
    if len(found) == 2:
        b_wins = probability_b_beats_a(found[0], found[1])
        return {found[0].label: 1.0 - b_wins, found[1].label: b_wins}
    rng = random.Random(seed)  # noqa: S311 (reproducible draws, nothing secret)
    wins = dict.fromkeys((a.label for a in found), 0)
    params = [(a.label, *_beta(a)) for a in found]
    for _ in range(DRAWS):
        best = max(params, key=lambda p: rng.betavariate(p[1], p[2]))
        wins[best[0]] += 1
    return {label: n / DRAWS for label, n in wins.items()}


def sample_needed(found: Sequence[Arm]) -> int | None:
    """Sends per variant a two-sided test at 95 % confidence and 80 % power needs to
    tell the best observed rate from the runner-up's; None while either has no rate or
    they are equal (no difference to detect yet)."""
    rated = sorted((a for a in found if a.rate is not None), key=lambda a: a.rate or 0.0)
    if len(rated) < 2:
        return None
    p1, p2 = rated[-1].rate or 0.0, rated[-2].rate or 0.0
    if p1 == p2:
        return None
    z_alpha = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)
    z_beta = NormalDist().inv_cdf(POWER)
    pooled = (p1 + p2) / 2
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_beta * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(spread**2 / (p1 - p2) ** 2)


def seed_of(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join(parts).encode()).digest()[:8], "big")


def thompson(found: Sequence[Arm], min_share: float, seed: int) -> int:
    """The index of the arm a send gets: with probability ``min_share`` times the number
    of arms, one at random (every arm keeps at least ``min_share`` of the sends);
    otherwise the arm whose posterior draw is highest (Thompson sampling)."""
    rng = random.Random(seed)  # noqa: S311 (reproducible draws, nothing secret)
    if rng.random() < min_share * len(found):
        return rng.randrange(len(found))
    draws = [rng.betavariate(*_beta(arm)) for arm in found]
    return max(range(len(found)), key=draws.__getitem__)

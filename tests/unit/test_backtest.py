"""The scoring backtest: replaying known outcomes through rules (pure)."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.domain.backtest import (
    Behaviour,
    History,
    as_content,
    behaviours,
    changed,
    explanation,
    latest_outcomes,
    replay,
    run,
    suggest,
)
from shared.domain.leads import Activity, ActivityType, FormType, Lead, Outcome, Touch
from shared.domain.scoring import Points, ScoringRules, Signal, load_scoring

RULES = load_scoring()
T0 = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
# Grade A (製造業 20 + 300-999 25 + 部長 25) and grade D (nothing the fit rules know).
GRADE_A = {"industry": "製造業", "company_size": "300-999", "job_title": "部長"}
GRADE_D: dict[str, str] = {}


def lead(lead_id: str, **profile: str) -> Lead:
    touch = Touch(at=T0, form_type=FormType.DOWNLOAD)
    return Lead(
        lead_id=lead_id,
        email=f"{lead_id}@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        created_at=T0,
        updated_at=T0,
        **profile,  # type: ignore[arg-type]
    )


def activity(kind: ActivityType, at: datetime, **details: Any) -> Activity:
    return Activity(lead_id="x", type=kind, at=at, details=details)


def click(at: datetime, *tags: str, machine: bool = False) -> Activity:
    verdict = {"verdict": "machine", "machine_reasons": ["burst"]} if machine else {}
    return activity(ActivityType.EMAIL_CLICKED, at, link_tags=list(tags), **verdict)


def opened(at: datetime) -> Activity:
    return activity(ActivityType.EMAIL_OPENED, at, verdict="human")


def form(at: datetime, form_type: str) -> Activity:
    return activity(ActivityType.FORM_SUBMITTED, at, form_type=form_type)


def history(
    lead_id: str, profile: dict[str, str], outcome: str, outcome_at: datetime, *acts: Activity
) -> History:
    return History(
        lead(lead_id, **profile),
        Outcome(lead_id=lead_id, disposition=outcome, at=outcome_at),  # type: ignore[arg-type]
        tuple(behaviours(acts)),
    )


def small_history() -> list[History]:
    """Five leads whose replay is worked out by hand below."""
    return [
        # A: download 10, seminar 25, pricing click 13, then a case-study click 7: MQL on day 3
        history(
            "a",
            GRADE_A,
            "won",
            T0 + 40 * DAY,
            form(T0, "download"),
            form(T0 + DAY, "seminar_attendance"),
            click(T0 + 2 * DAY, "pricing"),
            click(T0 + 3 * DAY, "case_study"),
            click(T0 + 45 * DAY, "pricing"),  # after its outcome: not replayed
        ),
        # B: asks for a quote on day 5 (high intent): MQL at once; lost
        history("b", GRADE_A, "lost", T0 + 20 * DAY, form(T0 + 5 * DAY, "inquiry")),
        # C: a reader who only opens (at most 3 points a day): never an MQL; won all the same
        history(
            "c",
            GRADE_A,
            "won",
            T0 + 30 * DAY,
            *(opened(T0 + i * MINUTE) for i in range(6)),
        ),
        # D: clicks a lot, but nothing in its profile fits: grade D, never an MQL
        history(
            "d",
            GRADE_D,
            "rejected",
            T0 + 10 * DAY,
            *(click(T0 + i * DAY, "pricing") for i in range(8)),
        ),
        # E: a mail scanner's clicks only: they never count
        history(
            "e",
            GRADE_A,
            "lost",
            T0 + 10 * DAY,
            *(click(T0 + i * MINUTE / 10, "pricing", machine=True) for i in range(30)),
        ),
    ]


def test_todays_rules_over_a_small_history_give_the_hand_computed_figures() -> None:
    result = run("today", small_history(), RULES)
    by_lead = result.by_lead()
    # A: 10·2^(-3/30) + 25·2^(-2/30) + 13·2^(-1/30) + 7 = 52.9 on day 3 (46.98 on day 2)
    assert by_lead["a"].mql_at == T0 + 3 * DAY
    assert by_lead["a"].reason == "score"
    assert by_lead["b"].mql_at == T0 + 5 * DAY
    assert by_lead["b"].reason == "high_intent"
    assert by_lead["c"].mql_at is None
    assert by_lead["d"].mql_at is None
    assert by_lead["e"].mql_at is None
    assert (result.mqls, result.won, result.mql_won) == (2, 2, 1)
    assert result.precision == Fraction(1, 2)
    assert result.recall == Fraction(1, 2)
    assert result.median_days_to_won == 37.0
    assert result.mqls_per_month == {"2026-09": 2}


def test_a_candidate_that_values_opens_picks_the_reader_and_changes_the_figures() -> None:
    candidate = RULES.model_copy(
        update={"behaviour": {**RULES.behaviour, Signal.OPEN: Points(points=20, daily_cap=60)}}
    )
    histories = small_history()
    today, other = run("today", histories, RULES), run("candidate", histories, candidate)
    # C's third open of the day reaches 60 (the cap): an MQL 2 minutes after its first
    assert other.by_lead()["c"].mql_at == T0 + 2 * MINUTE
    assert other.precision == Fraction(2, 3)
    assert other.recall == 1
    assert other.median_days_to_won == statistics.median([37.0, 30 - 2 / 1440])
    assert [(mine.lead_id, theirs.mql) for mine, theirs in changed(today, other)] == [("c", True)]


def test_the_replay_caps_a_rule_as_production_does() -> None:
    # Four pricing clicks in one Tokyo day: click 3 each (cap 9: the fourth gets none),
    # pricing 10 once (cap 10)
    clicks = [click(T0 + i * MINUTE, "pricing") for i in range(4)]
    capped = history("x", GRADE_A, "lost", T0 + DAY, *clicks)
    lenient = RULES.model_copy(
        update={"qualification": RULES.qualification.model_copy(update={"min_score": 19})}
    )
    assert replay(capped, lenient).mql_at == T0 + 2 * MINUTE  # 13 + 3 + 3 = 19
    strict = RULES.model_copy(
        update={"qualification": RULES.qualification.model_copy(update={"min_score": 20})}
    )
    assert replay(capped, strict).mql_at is None  # the fourth click earns nothing


def test_behaviours_read_from_a_timeline() -> None:
    timeline = [
        click(T0 + 2 * MINUTE, "pricing", "trial"),
        opened(T0 + MINUTE),
        click(T0 + 3 * MINUTE, machine=True),
        form(T0, "trial"),
        form(T0, "no-such-form"),
        activity(ActivityType.UNSUBSCRIBED, T0 + 4 * MINUTE, via="one_click"),
        activity(ActivityType.EMAIL_BOUNCED, T0 + 5 * MINUTE, bounce_type="Transient"),
        activity(ActivityType.EMAIL_BOUNCED, T0 + 6 * MINUTE, bounce_type="Permanent"),
        activity(ActivityType.EMAIL_SENT, T0),
    ]
    assert behaviours(timeline) == [
        Behaviour(T0, Signal.TRIAL, form_type=FormType.TRIAL),
        Behaviour(T0 + MINUTE, Signal.OPEN),
        Behaviour(T0 + 2 * MINUTE, Signal.CLICK, ("pricing", "trial")),
        Behaviour(T0 + 4 * MINUTE, Signal.UNSUBSCRIBE),
        Behaviour(T0 + 6 * MINUTE, Signal.BOUNCE),
    ]


def test_only_each_leads_latest_outcome_counts() -> None:
    rejected = Outcome(lead_id="a", disposition="rejected", at=T0)
    won = Outcome(lead_id="a", disposition="won", at=T0 + DAY)
    lost = Outcome(lead_id="b", disposition="lost", at=T0)
    assert latest_outcomes([won, lost, rejected]) == [lost, won]


# -- a history in which one behaviour predicts the wins ---------------------------------------


def synthetic_history(seed: int = 7, leads: int = 240) -> list[History]:
    """Everyone opens and clicks; keen readers of case studies rarely buy, and the leads
    that buy read the pricing page."""
    rng = random.Random(seed)
    histories = []
    for n in range(leads):
        won = rng.random() < 0.3
        start = T0 + n * timedelta(hours=3)
        acts = [opened(start + i * DAY) for i in range(rng.randint(2, 6))]
        reads = rng.randint(1, 4) if won else rng.randint(3, 10)
        acts += [click(start + i * DAY + MINUTE, "case_study") for i in range(reads)]
        if rng.random() < (0.8 if won else 0.1):
            acts += [click(start + (7 + i) * DAY, "pricing") for i in range(rng.randint(1, 2))]
        outcome = "won" if won else rng.choice(["lost", "rejected"])
        histories.append(history(f"s{n:03d}", GRADE_A, outcome, start + 60 * DAY, *acts))
    return histories


def pricing_weighted(rules: ScoringRules) -> ScoringRules:
    behaviour = {
        **rules.behaviour,
        Signal.OPEN: Points(points=0),
        Signal.CLICK: Points(points=1, daily_cap=3),
    }
    link_tags = {**rules.link_tags, "pricing": Points(points=50, daily_cap=50)}
    link_tags["case_study"] = Points(points=0)
    return rules.model_copy(update={"behaviour": behaviour, "link_tags": link_tags})


def test_a_candidate_that_weights_the_predictive_behaviour_has_higher_precision() -> None:
    histories = synthetic_history()
    today = run("today", histories, RULES)
    candidate = run("candidate", histories, pricing_weighted(RULES))
    assert today.precision is not None
    assert candidate.precision is not None
    assert candidate.precision > today.precision + Fraction(1, 5)


def test_suggest_finds_the_predictive_behaviour_and_its_rules_pick_better() -> None:
    histories = synthetic_history()
    suggestion = suggest(histories, RULES)
    # The pricing link carries the weight; opens and case-study clicks tell little
    assert suggestion.points["link:pricing"] > 3 * abs(suggestion.points["open"])
    # (keen case-study readers rarely buy: no points, rather than points that subtract)
    assert suggestion.points["link:case_study"] == 0
    assert suggestion.weights["link:pricing"] > 1
    today = run("today", histories, RULES)
    suggested = run("suggested", histories, suggestion.rules)
    assert suggested.precision is not None
    assert today.precision is not None
    assert suggested.precision > today.precision
    # Behaviours the history never shows keep today's points
    assert suggestion.rules.behaviour[Signal.INQUIRY] == RULES.behaviour[Signal.INQUIRY]
    # and the explanation names each fitted weight
    lines = explanation(suggestion, RULES)
    assert any(line.strip().startswith("link:pricing: +") for line in lines)


def test_a_suggested_file_loads_as_scoring_rules(tmp_path: Path) -> None:
    suggestion = suggest(synthetic_history(leads=120), RULES)
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(as_content(suggestion), allow_unicode=True), encoding="utf-8")
    assert load_scoring(path) == suggestion.rules


def test_suggest_refuses_a_history_without_both_outcomes() -> None:
    everyone_won = [
        history(f"w{i}", GRADE_A, "won", T0 + DAY, opened(T0 + i * MINUTE)) for i in range(5)
    ]
    with pytest.raises(ValueError, match="both won and not-won"):
        suggest(everyone_won, RULES)


def page(at: datetime, url: str, seconds: int) -> Activity:
    return activity(ActivityType.PAGE_VIEWED, at, url=url, seconds=seconds, title="料金")


def test_page_views_replay_with_each_rule_sets_own_groups_caps_and_minimum_time() -> None:
    # A grade A lead that downloads (10) and reads the pricing page for 30 s on three
    # days (8 points each), a careers page, and a product page for 3 s
    views = [
        page(T0 + (1 + i) * DAY, "https://www.example.co.jp/pricing?x=1", 30) for i in range(3)
    ]
    acts = [
        form(T0, "download"),
        *views,
        page(T0 + DAY, "https://www.example.co.jp/careers/engineer", 300),
        page(T0 + DAY, "https://www.example.co.jp/product", 3),
    ]
    found = behaviours(acts)
    assert sorted(b.path or "" for b in found if b.signal is Signal.PAGE_VIEW) == [
        "/careers/engineer", "/pricing", "/pricing", "/pricing", "/product",
    ]  # fmt: skip
    # Today's rules: 10 + 3 × 8 (decayed) stays under 50; pricing at 20 points qualifies
    # on the second read; and a 60-second minimum makes those reads worth nothing
    histories = [history("p", GRADE_A, "won", T0 + 30 * DAY, *acts)]
    assert run("today", histories, RULES).replays[0].mql_at is None
    pages = RULES.pages
    richer = pages.model_copy(
        update={
            "groups": {
                **pages.groups,
                "pricing": pages.groups["pricing"].model_copy(
                    update={"points": 20, "daily_cap": 20}
                ),
            }
        }
    )
    rich = RULES.model_copy(update={"pages": richer})
    assert run("rich", histories, rich).replays[0].mql_at == T0 + 3 * DAY
    patient = rich.model_copy(update={"pages": richer.model_copy(update={"min_seconds": 60})})
    assert run("patient", histories, patient).replays[0].mql_at is None


def test_suggest_fits_page_groups_too() -> None:
    rng = random.Random(3)
    histories = []
    for n in range(120):
        won = n % 3 == 0
        start = T0 + n * timedelta(hours=2)
        acts = [opened(start + i * DAY) for i in range(rng.randint(1, 4))]
        if won or rng.random() < 0.1:
            acts += [page(start + 2 * DAY, "https://www.example.co.jp/pricing", 45)]
        outcome = "won" if won else "lost"
        histories.append(history(f"g{n:03d}", GRADE_A, outcome, start + 40 * DAY, *acts))
    suggestion = suggest(histories, RULES)
    assert suggestion.points["page:pricing"] > 0
    assert suggestion.rules.pages.groups["pricing"].points == suggestion.points["page:pricing"]
    assert suggestion.rules.pages.groups["pricing"].paths == RULES.pages.groups["pricing"].paths

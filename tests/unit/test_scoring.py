"""Scoring rules as content: loading, decay in score units, fit grade, segments, rules met."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.leads import FormType, Lead, Touch
from shared.qualification import business_day
from shared.scoring import (
    EPOCH,
    SCORING_FILE,
    Grade,
    Points,
    ScoringRules,
    Signal,
    Temperature,
    load_scoring,
)

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 10:00 in Tokyo
HALF_LIFE = timedelta(days=30)
# DynamoDB numbers: magnitude below 1E+126, at most 38 significant digits.
DYNAMODB_MAX = Decimal("9.9999999999999999999999999999999999999E+125")


@pytest.fixture(scope="module")
def rules() -> ScoringRules:
    return load_scoring()


def lead(**fields: Any) -> Lead:
    touch = Touch(at=NOW, form_type=FormType.DOWNLOAD)
    return Lead(
        lead_id="0" * 32,
        email="taro@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )


# -- loading and validation ---------------------------------------------------------------


def shipped_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SCORING_FILE.read_text(encoding="utf-8"))
    return document


def write(tmp_path: Path, document: Any, name: str = "broken_scoring.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_the_shipped_rules_load_with_the_documented_values(rules: ScoringRules) -> None:
    # Given the shipped scoring.yaml, When it is loaded, Then the marketer's values are there
    assert rules.half_life == HALF_LIFE
    assert rules.behaviour[Signal.OPEN] == Points(points=1, daily_cap=3)
    assert rules.behaviour[Signal.CLICK] == Points(points=3, daily_cap=9)
    assert rules.behaviour[Signal.INQUIRY] == Points(points=30)
    assert rules.behaviour[Signal.UNSUBSCRIBE].points < 0
    assert rules.behaviour[Signal.BOUNCE].points < 0
    assert set(rules.behaviour) == set(Signal)
    assert rules.link_tags["pricing"] == Points(points=10, daily_cap=10)
    assert rules.fit.grades == {Grade.A: 60, Grade.B: 40, Grade.C: 20}
    assert (rules.qualification.min_score, rules.qualification.min_grade) == (50, Grade.B)
    assert rules.high_intent == (FormType.INQUIRY, FormType.TRIAL)


def test_a_copy_of_the_shipped_document_loads_from_another_file(tmp_path: Path) -> None:
    # Given the shipped document written elsewhere (the base of the broken-file tests)
    path = write(tmp_path, shipped_document())

    # When it is loaded, Then it is the same rules
    assert load_scoring(path) == load_scoring()


def _drop_grades(doc: dict[str, Any]) -> None:
    del doc["fit"]["grades"]


def _grade_missing(doc: dict[str, Any]) -> None:
    doc["fit"]["grades"] = {"A": 60, "B": 40}


def _grades_out_of_order(doc: dict[str, Any]) -> None:
    doc["fit"]["grades"] = {"A": 40, "B": 60, "C": 20}


def _grades_equal(doc: dict[str, Any]) -> None:
    doc["fit"]["grades"] = {"A": 60, "B": 60, "C": 20}


def _unknown_signal(doc: dict[str, Any]) -> None:
    doc["behaviour"]["webinar_view"] = {"points": 5}


def _negative_cap(doc: dict[str, Any]) -> None:
    doc["behaviour"]["open"] = {"points": 1, "daily_cap": -1}


def _zero_half_life(doc: dict[str, Any]) -> None:
    doc["half_life_days"] = 0


def _unknown_grade_in_threshold(doc: dict[str, Any]) -> None:
    doc["qualification"] = {"min_score": 50, "min_grade": "S"}


def _misspelt_key(doc: dict[str, Any]) -> None:
    doc["behaviour"]["click"] = {"point": 3}


def _unknown_form_in_high_intent(doc: dict[str, Any]) -> None:
    doc["high_intent"] = ["inquiry", "demo"]


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (_drop_grades, "grades"),
        (_grade_missing, "thresholds for A, B and C"),
        (_grades_out_of_order, "A > B > C"),
        (_grades_equal, "A > B > C"),
        (_unknown_signal, "webinar_view"),
        (_negative_cap, "daily_cap"),
        (_zero_half_life, "half_life_days"),
        (_unknown_grade_in_threshold, "min_grade"),
        (_misspelt_key, "point"),
        (_unknown_form_in_high_intent, "high_intent"),
    ],
)
def test_a_broken_scoring_file_is_rejected_naming_the_file_and_the_problem(
    tmp_path: Path, breakage: Any, problem: str
) -> None:
    # Given a scoring file a marketer broke
    document = shipped_document()
    breakage(document)
    path = write(tmp_path, document)

    # When it is loaded, Then it fails, saying which file and what is wrong
    with pytest.raises(ValueError, match=r"^broken_scoring\.yaml: ") as caught:
        load_scoring(path)
    assert problem in str(caught.value)


def test_an_empty_scoring_file_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"^empty\.yaml: "):
        load_scoring(path)


def test_a_yaml_syntax_error_is_rejected_naming_the_file(tmp_path: Path) -> None:
    # Given a flow mapping left unclosed (a typo a marketer makes)
    text = SCORING_FILE.read_text(encoding="utf-8").replace(
        "open:                 {points: 1,   daily_cap: 3}",
        "open:                 {points: 1,   daily_cap: 3",
    )
    path = tmp_path / "typo.yaml"
    path.write_text(text, encoding="utf-8")

    # Then loading fails as a content error naming the file, like every other mistake
    with pytest.raises(ValueError, match=r"^typo\.yaml: "):
        load_scoring(path)


# -- behaviour score: units and decay ------------------------------------------------------


def test_a_fresh_event_is_worth_its_points(rules: ScoringRules) -> None:
    assert rules.score(rules.units(10, NOW), NOW) == 10.0
    assert rules.score(rules.units(-20, NOW), NOW) == -20.0
    assert rules.score(Decimal(0), NOW) == 0.0


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        (timedelta(0), 40.0),
        (HALF_LIFE, 20.0),
        (2 * HALF_LIFE, 10.0),
        (3 * HALF_LIFE, 5.0),
        (HALF_LIFE / 2, 28.3),  # 40 / sqrt(2)
    ],
)
def test_the_score_halves_after_each_half_life(
    rules: ScoringRules, later: timedelta, expected: float
) -> None:
    # Given 40 points earned now, When the score is read later, Then it has decayed
    assert rules.score(rules.units(40, NOW), NOW + later) == expected


def test_decay_does_not_depend_on_the_epoch_or_the_year(rules: ScoringRules) -> None:
    # The same points earned a half-life apart in different years decay alike
    for at in (EPOCH, NOW, datetime(2031, 6, 1, tzinfo=UTC)):
        assert rules.score(rules.units(8, at), at + HALF_LIFE) == 4.0


def test_two_events_at_the_same_instant_sum(rules: ScoringRules) -> None:
    units = rules.units(3, NOW) + rules.units(10, NOW)
    assert rules.score(units, NOW) == 13.0
    assert rules.score(units, NOW + HALF_LIFE) == 6.5


def test_events_at_different_times_each_decay_from_their_own_time(rules: ScoringRules) -> None:
    # 20 points a half-life ago and 10 points now, read now: 10 + 10
    units = rules.units(20, NOW - HALF_LIFE) + rules.units(10, NOW)
    assert rules.score(units, NOW) == 20.0


def test_the_order_in_which_units_are_added_does_not_matter(rules: ScoringRules) -> None:
    # Given events in any order (as concurrent atomic ADDs apply them)
    events = [
        rules.units(30, NOW - timedelta(days=40)),
        rules.units(-10, NOW - timedelta(days=3)),
        rules.units(1, NOW - timedelta(hours=5)),
        rules.units(7, NOW),
    ]
    # Then every order gives the same stored units and the same score
    totals = {sum(order, Decimal(0)) for order in permutations(events)}
    assert len(totals) == 1
    expected = 30 * 2 ** (-40 / 30) - 10 * 2 ** (-3 / 30) + 1 * 2 ** (-5 / 24 / 30) + 7
    assert rules.score(totals.pop(), NOW) == round(expected, 1)


def test_units_stay_within_dynamodb_numbers_for_ten_years(rules: ScoringRules) -> None:
    # 20 significant digits, and a magnitude DynamoDB can store, long after go-live
    for at in (EPOCH, NOW, EPOCH + timedelta(days=3652)):
        units = rules.units(100, at)
        assert abs(units) < DYNAMODB_MAX
        assert len(units.as_tuple().digits) <= 20


# -- fit grade ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "rule", "points"),
    [
        ("代表取締役社長", "job_title:代表取締役", 30),
        ("取締役 営業本部長", "job_title:取締役", 30),
        ("執行役員", "job_title:執行役員", 30),
        ("営業本部長", "job_title:本部長", 25),
        ("情報システム部 部長", "job_title:部長", 25),
        ("総務課 課長", "job_title:課長", 20),
        ("主任", "job_title:主任", 10),
        ("CEO", "job_title:CEO", 30),
        ("Vice President, Sales", "job_title:President", 30),
        ("General Manager", "job_title:General Manager", 25),
        ("Head of IT", "job_title:Head of", 25),
        ("Sales Manager", "job_title:Manager", 20),
        ("sales MANAGER", "job_title:Manager", 20),
        ("Team Leader", "job_title:Leader", 10),
    ],
)
def test_job_titles_earn_the_points_of_the_most_senior_rule_they_meet(
    rules: ScoringRules, title: str, rule: str, points: int
) -> None:
    assert rules.fit_points(lead(job_title=title)) == [(rule, points)]


@pytest.mark.parametrize("title", [None, "", "担当", "Engineer", "営業"])
def test_a_title_that_meets_no_rule_earns_nothing(rules: ScoringRules, title: str | None) -> None:
    assert rules.fit_points(lead(job_title=title)) == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Director", [("job_title:Director", 30)]),
        ("Factory Manager", [("job_title:Manager", 20)]),
        ("Project Coordinator", []),
        ("Doctor of Engineering", []),
        ("CTO", [("job_title:CTO", 30)]),
        ("Co-founder & CTO", [("job_title:CTO", 30)]),
        ("VP, Engineering", [("job_title:VP", 30)]),
    ],
)
def test_english_acronyms_match_whole_words_only(
    rules: ScoringRules, title: str, expected: list[tuple[str, int]]
) -> None:
    assert rules.fit_points(lead(job_title=title)) == expected


@pytest.mark.parametrize(
    ("fields", "grade"),
    [
        # 20 + 30 + 30 = 80
        ({"industry": "製造業", "company_size": "1000+", "job_title": "代表取締役"}, Grade.A),
        # 15 + 20 + 25 = 60: exactly A
        ({"industry": "情報通信業", "company_size": "100-299", "job_title": "部長"}, Grade.A),
        # 15 + 25 = 40: exactly B
        ({"industry": "情報通信業", "job_title": "部長"}, Grade.B),
        # 30 + 10 = 40
        ({"job_title": "Director", "company_size": "50-99"}, Grade.B),
        # 20 + 10 = 30
        ({"job_title": "Sales Manager", "industry": "サービス業"}, Grade.C),
        # 20: exactly C
        ({"job_title": "課長"}, Grade.C),
        # 5 + 10 = 15
        ({"company_size": "1-49", "job_title": "係長"}, Grade.D),
        ({"industry": "農業", "company_size": "unknown"}, Grade.D),
        ({}, Grade.D),
    ],
)
def test_the_grade_comes_from_industry_company_size_and_title(
    rules: ScoringRules, fields: dict[str, str], grade: Grade
) -> None:
    assert rules.grade(lead(**fields)) is grade


@pytest.mark.parametrize(
    ("size", "points"),
    [("1000+", 30), ("300-999", 25), ("100-299", 20), ("50-99", 10), ("1-49", 5)],
)
def test_each_company_size_earns_its_points(rules: ScoringRules, size: str, points: int) -> None:
    assert rules.fit_points(lead(company_size=size)) == [(f"company_size:{size}", points)]


@pytest.mark.parametrize(
    ("industry", "points"),
    [("製造業", 20), ("情報通信業", 15), ("建設業", 15), ("金融業・保険業", 10)],
)
def test_each_industry_earns_its_points(rules: ScoringRules, industry: str, points: int) -> None:
    assert rules.fit_points(lead(industry=industry)) == [(f"industry:{industry}", points)]


def test_evaluate_gives_the_decayed_score_the_grade_and_its_reasons(rules: ScoringRules) -> None:
    # Given a lead with 60 points earned a half-life ago and a B profile
    profile = lead(
        industry="情報通信業",
        job_title="部長",
        score_units=rules.units(60, NOW - HALF_LIFE),
    )

    # When it is evaluated now
    result = rules.evaluate(profile, NOW)

    # Then the score has halved and the grade explains itself
    assert result.score == 30.0
    assert result.grade is Grade.B
    assert result.fit == (("industry:情報通信業", 15), ("job_title:部長", 25))


# -- segments and qualification ------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "grade", "temperature"),
    [
        (80, Grade.A, Temperature.HOT),
        (50, Grade.B, Temperature.HOT),
        (49.9, Grade.A, Temperature.WARM),
        (90, Grade.C, Temperature.WARM),
        (20, Grade.C, Temperature.WARM),
        (19.9, Grade.A, Temperature.COLD),
        (100, Grade.D, Temperature.COLD),
        (-10, Grade.A, Temperature.COLD),
    ],
)
def test_temperature_combines_score_and_grade(
    rules: ScoringRules, score: float, grade: Grade, temperature: Temperature
) -> None:
    assert rules.temperature(score, grade) is temperature


@pytest.mark.parametrize(
    ("score", "grade", "qualifies"),
    [
        (50, Grade.B, True),
        (50, Grade.A, True),
        (120, Grade.A, True),
        (49.9, Grade.A, False),
        (90, Grade.C, False),
        (90, Grade.D, False),
    ],
)
def test_a_lead_qualifies_at_score_50_and_grade_b_or_better(
    rules: ScoringRules, score: float, grade: Grade, qualifies: bool
) -> None:
    assert rules.qualifies(score, grade) is qualifies


# -- the rules an event meets --------------------------------------------------------------


def test_an_open_meets_its_behaviour_rule_only(rules: ScoringRules) -> None:
    # link tags belong to clicks: an open never earns them
    assert rules.points_for(Signal.OPEN, ["pricing"]) == [("open", Points(points=1, daily_cap=3))]


def test_a_click_meets_its_rule_and_one_per_known_link_tag(rules: ScoringRules) -> None:
    met = rules.points_for(Signal.CLICK, ["pricing", "no_such_tag", "trial"])
    assert [(name, rule.points) for name, rule in met] == [
        ("click", 3),
        ("link:pricing", 10),
        ("link:trial", 8),
    ]


def test_negative_signals_carry_their_penalty(rules: ScoringRules) -> None:
    assert rules.points_for(Signal.BOUNCE) == [("bounce", Points(points=-10))]
    assert rules.points_for(Signal.UNSUBSCRIBE) == [("unsubscribe", Points(points=-20))]


def test_a_signal_the_rules_do_not_list_meets_nothing(tmp_path: Path) -> None:
    # Given rules without a seminar_attendance entry
    document = shipped_document()
    del document["behaviour"]["seminar_attendance"]
    rules = load_scoring(write(tmp_path, document, "scoring.yaml"))

    # Then attending earns nothing (and raises nothing)
    assert rules.points_for(Signal.SEMINAR_ATTENDANCE) == []


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (datetime(2026, 11, 23, 14, 59, 59, tzinfo=UTC), "2026-11-23"),  # 23:59:59 JST
        (datetime(2026, 11, 23, 15, 0, 0, tzinfo=UTC), "2026-11-24"),  # 00:00 JST
    ],
)
def test_caps_count_japanese_days(at: datetime, day: str) -> None:
    assert business_day(at).isoformat() == day

"""Scoring rules as content: loading, decay in score units, fit grade, segments, rules met."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.domain.funnel import business_day
from shared.domain.leads import FormType, Lead
from shared.domain.scoring import (
    EPOCH,
    SCORING_FILE,
    Grade,
    PageGroup,
    Points,
    ScoringRules,
    Signal,
    Temperature,
    load_scoring,
)
from tests.builders import a_lead

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 10:00 in Tokyo
HALF_LIFE = timedelta(days=30)
# DynamoDB numbers: magnitude below 1E+126, at most 38 significant digits.
DYNAMODB_MAX = Decimal("9.9999999999999999999999999999999999999E+125")


@pytest.fixture(scope="module")
def rules() -> ScoringRules:
    return load_scoring()


def lead(**fields: Any) -> Lead:
    return a_lead(at=NOW, lead_id="0" * 32, **fields)


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
    # Page views score per page group (``pages``), not as one behaviour.
    assert set(rules.behaviour) == set(Signal) - {Signal.PAGE_VIEW}
    assert rules.link_tags["pricing"] == Points(points=10, daily_cap=10)
    assert rules.pages.min_seconds == 10
    assert rules.pages.groups["pricing"].points == 8
    assert rules.pages.groups["pricing"].high_intent
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


# Titles people type, graded by the shipped scoring.yaml: the content itself is under test,
# so an edit that regrades one of them has to change this table too.
@pytest.mark.parametrize(
    ("title", "rule", "points"),
    [
        # Executives
        ("代表取締役社長", "job_title:代表取締役", 30),
        ("取締役 営業本部長", "job_title:取締役", 30),
        ("取締役 社長室長", "job_title:取締役", 30),
        ("執行役員", "job_title:執行役員", 30),
        ("執行役員 CTO", "job_title:執行役員", 30),
        ("副社長", "job_title:社長", 30),
        ("CEO", "job_title:CEO", 30),
        ("VP of Marketing", "job_title:VP", 30),
        ("Vice President, Sales", "job_title:Vice President", 30),
        # 部長 and its equals
        ("営業本部長", "job_title:本部長", 25),
        ("副本部長", "job_title:本部長", 25),
        ("情報システム部 部長", "job_title:部長", 25),
        ("製造部 部長", "job_title:部長", 25),
        ("営業部長", "job_title:部長", 25),
        ("担当部長", "job_title:部長", 25),
        ("General Manager", "job_title:General Manager", 25),
        ("Head of Sales", "job_title:Head of", 25),
        ("第二工場 工場長", "job_title:工場長", 25),
        ("大阪支店長", "job_title:支店長", 25),
        ("Plant Manager", "job_title:Plant Manager", 25),
        ("社長補佐", "job_title:社長補佐", 20),
        # 課長 and its equals, with the deputies and assistants of a 部長
        ("部長代理", "job_title:部長代理", 20),
        ("営業部長代理", "job_title:部長代理", 20),
        ("本部長代理", "job_title:部長代理", 20),
        ("部長補佐", "job_title:部長補佐", 20),
        ("副部長", "job_title:副部長", 20),
        ("次長", "job_title:次長", 20),
        ("課長代理", "job_title:課長代理", 20),
        ("総務課 課長", "job_title:課長", 20),
        ("室長", "job_title:室長", 20),
        ("社長室長", "job_title:室長", 20),
        ("秘書室長", "job_title:室長", 20),
        ("グループリーダー", "job_title:グループリーダー", 20),
        ("マネージャー", "job_title:マネージャー", 20),
        ("シニアマネージャー", "job_title:マネージャー", 20),
        ("Senior Manager", "job_title:Manager", 20),
        ("Sales Manager", "job_title:Manager", 20),
        ("sales MANAGER", "job_title:Manager", 20),
        ("Deputy General Manager", "job_title:Deputy General Manager", 20),
        ("Deputy Head of Sales", "job_title:Deputy Head", 20),
        # "Assistants" is another word than the exception "Assistant": they report to them
        ("Manager, Executive Assistants", "job_title:Manager", 20),
        # 係長 and its equals
        ("課長補佐", "job_title:課長補佐", 10),
        ("係長", "job_title:係長", 10),
        ("主任", "job_title:主任", 10),
        ("Assistant Manager", "job_title:Assistant Manager", 10),
        ("アシスタントマネージャー", "job_title:アシスタントマネージャー", 10),
        ("Team Leader", "job_title:Leader", 10),
        # Typed in full or half width and stored so (an import): graded as its NFKC form
        ("ＣＥＯ", "job_title:CEO", 30),
        ("ｼﾆｱﾏﾈｰｼﾞｬｰ", "job_title:マネージャー", 20),
    ],
)
def test_real_job_titles_earn_the_points_of_the_first_rule_they_meet(
    rules: ScoringRules, title: str, rule: str, points: int
) -> None:
    assert rules.fit_points(lead(job_title=title)) == [(rule, points)]


@pytest.mark.parametrize(
    "title",
    [
        None,
        "",
        "担当",
        "Engineer",
        "営業",
        # Working for an executive is not being one
        "社長秘書",
        "役員秘書",
        "社長室 スタッフ",
        "秘書",
        "アシスタント",
        "Executive Assistant",
        "Executive Assistant to the CEO",
        "Assistant to the CEO",
        "Secretary to the President",
        "Chief Executive Assistant",
    ],
)
def test_a_title_that_meets_no_rule_earns_nothing(rules: ScoringRules, title: str | None) -> None:
    assert rules.fit_points(lead(job_title=title)) == []


def test_every_shipped_keyword_alone_is_graded_by_its_own_rule(rules: ScoringRules) -> None:
    # An earlier rule that swallows a later rule's keyword (部長 swallowing 部長代理 when the
    # exception is forgotten) would make that keyword dead content
    misgraded = [
        (keyword, rules.fit_points(lead(job_title=keyword)))
        for rule in rules.fit.job_titles
        for keyword in rule.keywords
        if rules.fit_points(lead(job_title=keyword)) != [(f"job_title:{keyword}", rule.points)]
    ]
    assert misgraded == []


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


def with_job_titles(tmp_path: Path, job_titles: list[dict[str, Any]]) -> ScoringRules:
    document = shipped_document()
    document["fit"]["job_titles"] = job_titles
    return load_scoring(write(tmp_path, document, "scoring.yaml"))


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Director of Sales", [("job_title:Director", 30)]),
        ("Art Director", [("job_title:Art Director", 10)]),
        ("ART DIRECTOR", [("job_title:Art Director", 10)]),
        # "Art" inside another word is not the exception
        ("Director of Artificial Intelligence", [("job_title:Director", 30)]),
        ("Director, Smart Factory", [("job_title:Director", 30)]),
        # A multi-word exception needs the whole phrase
        ("Executive Assistant to the Director", []),
        ("Director, Executive Office", [("job_title:Director", 30)]),
    ],
)
def test_english_exceptions_are_whole_words_and_pass_the_title_to_the_next_rule(
    tmp_path: Path, title: str, expected: list[tuple[str, int]]
) -> None:
    rules = with_job_titles(
        tmp_path,
        [
            {"keywords": ["Director"], "unless": ["Art", "Executive Assistant"], "points": 30},
            {"keywords": ["Art Director"], "points": 10},
        ],
    )
    assert rules.fit_points(lead(job_title=title)) == expected


def test_full_width_keywords_and_exceptions_are_read_as_typed_in_forms(tmp_path: Path) -> None:
    # Given a marketer who typed ＣＥＯ in full width, as a Japanese IME does
    rules = with_job_titles(
        tmp_path, [{"keywords": ["ＣＥＯ"], "unless": ["ＣＥＯ室"], "points": 30}]
    )

    # Then it matches the NFKC titles forms store, as a whole English word, whatever the case
    assert rules.fit_points(lead(job_title="ceo")) == [("job_title:CEO", 30)]
    assert rules.fit_points(lead(job_title="CEOs")) == []
    assert rules.fit_points(lead(job_title="Ceo室 マネージャー")) == []


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            {"keywords": ["部長", " "], "points": 25},
            "job title rule [部長, ]: one keyword is blank",
        ),
        (
            {"keywords": ["社長"], "unless": ["秘書", ""], "points": 30},
            "job title rule [社長]: one unless word is blank",
        ),
        (
            {"keywords": ["部長"], "unless": ["部長"], "points": 25},
            "job title rule [部長]: unless word 部長 is the keyword 部長, which could then never",
        ),
        (
            {"keywords": ["Manager"], "unless": ["manager"], "points": 20},
            "job title rule [Manager]: unless word manager is the keyword Manager",
        ),
        (
            {"keywords": ["課長", "課長補佐"], "unless": ["補佐"], "points": 20},
            "job title rule [課長, 課長補佐]: unless word 補佐 is part of the keyword 課長補佐",
        ),
        (
            {"keywords": ["Manager", "Assistant Manager"], "unless": ["Assistant"], "points": 20},
            "unless word Assistant is part of the keyword Assistant Manager",
        ),
        (
            {"keywords": ["部長", "部長"], "points": 25},
            "job title rule [部長, 部長]: keyword 部長 is listed twice",
        ),
        ({"keywords": ["Manager", "MANAGER"], "points": 20}, "keyword Manager is listed twice"),
        (
            {"keywords": ["社長"], "unless": ["秘書", "秘書"], "points": 30},
            "job title rule [社長]: unless word 秘書 is listed twice",
        ),
        ({"keywords": [], "points": 30}, "keywords"),
        ({"keywords": ["社長"], "unles": ["秘書"], "points": 30}, "unles"),
        ({"keywords": ["社長"], "unless": "秘書", "points": 30}, "unless"),
    ],
)
def test_a_broken_job_title_rule_is_rejected_naming_the_rule(
    tmp_path: Path, rule: dict[str, Any], problem: str
) -> None:
    # Given a broken rule among the shipped ones, as the second rule
    document = shipped_document()
    document["fit"]["job_titles"].insert(1, rule)
    path = write(tmp_path, document)

    # When the file is loaded, Then it fails naming the file, the rule and what is wrong
    with pytest.raises(ValueError, match=r"^broken_scoring\.yaml: ") as caught:
        load_scoring(path)
    assert "fit.job_titles.1" in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "rule",
    [
        # The exception is the longer title that contains the keyword: the point of it
        {"keywords": ["部長"], "unless": ["部長代理"], "points": 25},
        {"keywords": ["CTO"], "unless": ["CTO室"], "points": 30},
        # English words are whole words here too: Art is not in Smart
        {"keywords": ["Director", "Smart Factory Director"], "unless": ["Art"], "points": 30},
    ],
)
def test_an_exception_longer_than_a_keyword_or_inside_another_word_is_accepted(
    tmp_path: Path, rule: dict[str, Any]
) -> None:
    rules = with_job_titles(tmp_path, [rule])
    assert rules.fit.job_titles[0].unless == tuple(rule["unless"])


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


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/pricing", "pricing"),
        ("/console/site/pricing", "pricing"),
        ("/pricing/enterprise", "pricing"),
        ("/product", "product"),
        ("/case-studies/acme", "case_study"),
        ("/blog/why-pricing-matters", None),
        ("/", None),
    ],
)
def test_a_page_path_finds_its_group(rules: ScoringRules, path: str, group: str | None) -> None:
    assert rules.pages.group_of(path) == group


def test_careers_pages_are_ignored_and_pricing_is_not(rules: ScoringRules) -> None:
    assert rules.pages.ignored("/careers/engineer")
    assert rules.pages.ignored("/site/careers")
    assert not rules.pages.ignored("/pricing")


def test_a_page_view_earns_its_groups_points_only(rules: ScoringRules) -> None:
    assert rules.points_for(Signal.PAGE_VIEW, ["pricing"]) == [
        ("page:pricing", rules.pages.groups["pricing"])
    ]
    assert rules.points_for(Signal.PAGE_VIEW, ["nowhere"]) == []


def test_a_page_pattern_must_be_a_path() -> None:
    with pytest.raises(ValueError, match="starts with / or"):
        PageGroup(paths=("pricing",), points=1)

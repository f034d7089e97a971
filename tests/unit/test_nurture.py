"""The program engine (pure): durations, program validation, steps, branches, cap, A/B."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from shared.domain.leads import ConsentState, Enrolment, FormType, Lead, SentStep, Stage, Touch
from shared.domain.nurture import (
    FREQUENCY_WINDOW,
    MAX_CLICKED_LINKS,
    after_send,
    decide,
    exit_reason,
    prune_sends,
    record_engagement,
    recount_engagement,
    skip,
    skip_reason,
    start,
    variant_label,
    variant_of,
    within_cap,
)
from shared.domain.programs import Engagement, Program, load_programs, parse_duration
from tests.builders import a_lead

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 10:00 JST
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def step(step_id: str, wait: str = "PT0S", variants: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "wait": wait,
        "template": "welcome",
        "content_type": "welcome",
        "subject": {
            "ja": [f"{step_id} 件名{i}" for i in range(variants)],
            "en": [f"{step_id} subject {i}" for i in range(variants)],
        },
        **extra,
    }


def program(*steps: dict[str, Any], **extra: Any) -> Program:
    document: dict[str, Any] = {
        "id": "test",
        "name": "テスト",
        "entry": {"stages": ["lead"]},
        "steps": list(steps),
        **extra,
    }
    return Program.model_validate(document)


def branch(
    *rules: tuple[str, str] | dict[str, Any], otherwise: str | None = None, wait_up_to: str = "P3D"
) -> dict[str, Any]:
    """Rules as (when, goto), or as the rule's mapping for the other keys."""
    document: dict[str, Any] = {
        "wait_up_to": wait_up_to,
        "rules": [r if isinstance(r, dict) else {"when": r[0], "goto": r[1]} for r in rules],
    }
    if otherwise:
        document["otherwise"] = otherwise
    return document


LINEAR = program(step("a", "PT0S"), step("b", "P3D"), step("c", "PT12H"))
# a -> b (branch on b) -> clicked: d, not_opened: c, otherwise: e
BRANCHING = program(
    step("a"),
    step("b", "P1D", branch=branch(("clicked", "d"), ("not_opened", "c"), otherwise="e")),
    step("c", "PT0S"),
    step("d", "P2D"),
    step("e", "PT1H"),
)


def lead(**changes: Any) -> Lead:
    return a_lead(at=T0, opted_in=True, **changes)


def sent_b(prog: Program = BRANCHING, at: datetime = T0) -> Enrolment:
    """An enrolment in ``prog`` just after its step b was sent at ``at``."""
    enrolment = start(prog, at - DAY).model_copy(update={"step_id": "b", "due_at": at})
    return after_send(enrolment, prog, prog.step("b"), at, "A", "msg-b")


# -- parse_duration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0S", timedelta(0)),
        ("P0D", timedelta(0)),
        ("P3D", timedelta(days=3)),
        ("PT12H", timedelta(hours=12)),
        ("PT90M", timedelta(minutes=90)),
        ("PT30S", timedelta(seconds=30)),
        ("P1W", timedelta(weeks=1)),
        ("P1W2D", timedelta(days=9)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("p3d", timedelta(days=3)),
        (" P2D ", timedelta(days=2)),
        (timedelta(hours=5), timedelta(hours=5)),
    ],
)
def test_parse_duration_accepts_weeks_days_hours_minutes_seconds(
    text: object, expected: timedelta
) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "P1M",  # a month has no fixed length
        "P1Y",
        "P",
        "PT",
        "P1DT",
        "3D",
        "",
        "P-1D",
        "P1.5D",
        "PT1H2D",
        "P1D2W",
        "1 day",
        None,
        3,
    ],
)
def test_parse_duration_refuses_anything_else(text: object) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_duration(text)


def test_a_month_long_wait_in_a_program_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="P1M"):
        program(step("a", "P1M"))


# -- program validation ---------------------------------------------------------------------


def test_a_valid_program_parses_its_durations_and_branches() -> None:
    assert [s.wait for s in LINEAR.steps] == [timedelta(0), timedelta(days=3), timedelta(hours=12)]
    b = BRANCHING.step("b").branch
    assert b is not None
    assert b.wait_up_to == timedelta(days=3)
    assert [(r.when, r.goto) for r in b.rules] == [
        (Engagement.CLICKED, "d"),
        (Engagement.NOT_OPENED, "c"),
    ]
    assert BRANCHING.step("a").variants == 1


@pytest.mark.parametrize(
    ("steps", "extra", "message"),
    [
        pytest.param([step("a"), step("a")], {}, "unique", id="duplicate step ids"),
        pytest.param([step("exit")], {}, "unique", id="step called exit"),
        pytest.param(
            [step("a", branch=branch(("clicked", "zzz"))), step("b")],
            {},
            "unknown goto target",
            id="unknown goto",
        ),
        pytest.param(
            [step("a"), step("b", branch=branch(("clicked", "a")))],
            {},
            "does not move forward",
            id="goto backwards",
        ),
        pytest.param(
            [step("a", branch=branch(("clicked", "a"))), step("b")],
            {},
            "does not move forward",
            id="goto itself",
        ),
        pytest.param(
            [step("a", branch=branch(("clicked", "b"), otherwise="zzz")), step("b")],
            {},
            "unknown goto target",
            id="unknown otherwise",
        ),
        pytest.param(
            [
                step(
                    "a",
                    branch={
                        "wait_up_to": "P1D",
                        "rules": [{"when": "clicked", "goto": "c", "step": "b"}],
                    },
                ),
                step("b"),
                step("c"),
            ],
            {},
            "not sent before",
            id="rule reads a later step",
        ),
        pytest.param(
            [step("a")],
            {"exit": {"stages": ["lead", "mql"]}},
            "both enter and exit",
            id="entry and exit overlap",
        ),
        pytest.param([], {}, "at least 1", id="no steps"),
        pytest.param(
            [step("a", branch={"wait_up_to": "P1D", "rules": []})],
            {},
            "at least 1",
            id="branch without rules",
        ),
        pytest.param(
            [step("a", branch={"wait_up_to": "P1D", "rules": [{"when": "bounced", "goto": "b"}]})],
            {},
            "when",
            id="unknown engagement",
        ),
        pytest.param([step("A")], {}, "pattern", id="step id in capitals"),
        pytest.param(
            [
                step("a", branch=branch({"when": "clicked", "goto": "b", "links": ["Pricing"]})),
                step("b"),
            ],
            {},
            "not a link tag: 'Pricing'",
            id="link tag in capitals",
        ),
        pytest.param(
            [
                step(
                    "a", branch=branch({"when": "clicked", "goto": "b", "links": ["link:pricing"]})
                ),
                step("b"),
            ],
            {},
            "without 'link:'",
            id="link tag with its prefix",
        ),
        pytest.param(
            [
                step("a", branch=branch({"when": "clicked", "goto": "b", "links": ["a" * 41]})),
                step("b"),
            ],
            {},
            "not a link tag",
            id="link tag too long",
        ),
        pytest.param(
            [
                step("a", branch=branch({"when": "not_opened", "goto": "b", "links": ["pricing"]})),
                step("b"),
            ],
            {},
            "links only go with clicked or not_clicked, not not_opened",
            id="links on an open rule",
        ),
        pytest.param(
            [step("a", skip_if={"form_types": ["free_trial"]})],
            {},
            "skip_if.form_types.0",
            id="skip for an unknown form type",
        ),
        pytest.param(
            [step("a", only_if={"stages": ["prospect"]})],
            {},
            "only_if.stages.0",
            id="only for an unknown stage",
        ),
        pytest.param(
            [step("a", skip_if={"temperatures": ["hot"]})],
            {},
            "temperatures",
            id="skip by temperature",
        ),
        pytest.param([step("a", skip_if={})], {}, "name at least one of", id="skip for everybody"),
        pytest.param([step("a", wiat="P1D")], {}, "wiat", id="misspelt field"),
        pytest.param(
            [step("a", send_window={"start": "18:00", "end": "09:00"})],
            {},
            "send_window",
            id="window on a step",
        ),
        pytest.param(
            [step("a")],
            {"send_window": {"start": "18:00", "end": "09:00"}},
            "before its end",
            id="window backwards",
        ),
    ],
)
def test_invalid_programs_are_rejected_with_a_reason(
    steps: list[dict[str, Any]], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        program(*steps, **extra)


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        pytest.param({"en": ["Hello"]}, "Japanese subject is required", id="no ja subject"),
        pytest.param(
            {"ja": ["こんにちは", "こんばんは"], "en": ["Hi"]}, "same number", id="counts"
        ),
        pytest.param({"ja": []}, "same number", id="empty"),
        pytest.param({"ja": ["件名"], "fr": ["Bonjour"]}, "fr", id="unknown locale"),
    ],
)
def test_subjects_need_japanese_and_the_same_number_of_variants_per_locale(
    subject: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        program({**step("a"), "subject": subject})


def test_the_shipped_programs_load() -> None:
    catalog = load_programs()
    assert catalog.get("welcome") is not None
    assert [p.priority for p in catalog.programs] == sorted(p.priority for p in catalog.programs)


def write_program(directory: Path, name: str, document: dict[str, Any]) -> None:
    (directory / name).write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")


def program_document(program_id: str = "test", **extra: Any) -> dict[str, Any]:
    return {
        "id": program_id,
        "name": "テスト",
        "entry": {"stages": ["lead"]},
        "steps": [step("a")],
        **extra,
    }


def test_load_programs_names_the_file_of_an_invalid_program(tmp_path: Path) -> None:
    write_program(tmp_path, "good.yaml", program_document("good"))
    write_program(tmp_path, "broken.yaml", program_document("broken", steps=[step("a", "P1M")]))
    with pytest.raises(ValueError, match=r"broken\.yaml"):
        load_programs(tmp_path)


def test_load_programs_refuses_duplicate_program_ids(tmp_path: Path) -> None:
    write_program(tmp_path, "one.yaml", program_document("same"))
    write_program(tmp_path, "two.yaml", program_document("same"))
    with pytest.raises(ValueError, match="duplicate program ids"):
        load_programs(tmp_path)


def test_load_programs_refuses_unquoted_hours_that_yaml_reads_as_numbers(
    tmp_path: Path,
) -> None:
    document = yaml.safe_dump(program_document("unquoted"), allow_unicode=True)
    document += "send_window:\n  start: 09:00\n  end: 18:00\n"
    # YAML 1.1 reads 18:00 as the base-60 number 1080 (09:00 stays text: no leading zero)
    assert yaml.safe_load(document)["send_window"] == {"start": "09:00", "end": 1080}
    (tmp_path / "unquoted.yaml").write_text(document, encoding="utf-8")
    with pytest.raises(ValueError, match=r"unquoted\.yaml"):
        load_programs(tmp_path)


def test_load_programs_names_the_file_of_a_program_with_an_unknown_timezone(
    tmp_path: Path,
) -> None:
    window = {"timezone": "Asia/Tokio"}
    write_program(tmp_path, "typo.yaml", program_document("typo", send_window=window))
    with pytest.raises(ValueError, match=r"typo\.yaml"):
        load_programs(tmp_path)


# -- start, after_send ----------------------------------------------------------------------


def test_start_schedules_the_first_step_after_its_wait() -> None:
    delayed = program(step("first", "P2D"), step("second"))
    enrolment = start(delayed, T0)
    assert enrolment == Enrolment(
        program_id="test", enrolled_at=T0, step_id="first", due_at=T0 + 2 * DAY
    )
    assert start(LINEAR, T0).due_at == T0


def test_after_send_records_the_send_and_schedules_the_next_step_after_its_wait() -> None:
    enrolment = start(LINEAR, T0)
    sent_at = T0 + timedelta(minutes=3)
    after = after_send(enrolment, LINEAR, LINEAR.step("a"), sent_at, "B", "msg-1")
    assert after.step_id == "b"
    assert after.awaiting is None
    assert after.due_at == sent_at + 3 * DAY
    assert after.sent == {"a": SentStep(sent_at=sent_at, variant="B", message_id="msg-1")}
    assert after.completed_at is None
    # the input is not changed (the engine is pure)
    assert enrolment.sent == {}
    assert enrolment.step_id == "a"


def test_after_send_of_the_last_step_completes_the_program() -> None:
    enrolment = start(LINEAR, T0).model_copy(update={"step_id": "c"})
    done = after_send(enrolment, LINEAR, LINEAR.step("c"), T0, "A", "msg-c")
    assert (done.step_id, done.awaiting, done.due_at) == (None, None, None)
    assert done.completed_at == T0
    assert done.outcome == "completed"
    assert "c" in done.sent


def test_after_send_of_a_branching_step_awaits_the_engagement() -> None:
    enrolment = sent_b()
    assert enrolment.step_id is None
    assert enrolment.awaiting == "b"
    assert enrolment.due_at == T0 + 3 * DAY  # wait_up_to
    assert enrolment.sent["b"].message_id == "msg-b"


# -- decide ---------------------------------------------------------------------------------


def engaged(enrolment: Enrolment, step_id: str, **times: datetime) -> Enrolment:
    record = enrolment.sent[step_id].model_copy(update=times)
    return enrolment.model_copy(update={"sent": {**enrolment.sent, step_id: record}})


def test_decide_a_click_goes_to_the_clicked_target_after_its_wait() -> None:
    enrolment = engaged(sent_b(), "b", clicked_at=T0 + HOUR)
    now = T0 + 3 * DAY
    decided = decide(enrolment, BRANCHING, now)
    assert (decided.step_id, decided.awaiting) == ("d", None)
    assert decided.due_at == now + 2 * DAY  # d waits P2D from the decision


def test_decide_not_opened_goes_to_the_not_opened_target() -> None:
    now = T0 + 3 * DAY
    decided = decide(sent_b(), BRANCHING, now)
    assert (decided.step_id, decided.awaiting, decided.due_at) == ("c", None, now)


def test_decide_opened_without_click_falls_to_otherwise() -> None:
    enrolment = engaged(sent_b(), "b", opened_at=T0 + HOUR)
    now = T0 + 3 * DAY
    decided = decide(enrolment, BRANCHING, now)
    assert (decided.step_id, decided.due_at) == ("e", now + HOUR)


def test_a_click_without_a_recorded_open_still_counts_as_opened() -> None:
    # image blocking hides the open; the click proves it
    enrolment = engaged(sent_b(), "b", clicked_at=T0 + HOUR)
    assert enrolment.sent["b"].opened
    only_not_opened = program(
        step("a", branch=branch(("not_opened", "c"), otherwise="b")), step("b"), step("c")
    )
    sent = after_send(
        start(only_not_opened, T0), only_not_opened, only_not_opened.step("a"), T0, "A", None
    )
    decided = decide(engaged(sent, "a", clicked_at=T0 + HOUR), only_not_opened, T0 + 3 * DAY)
    assert decided.step_id == "b"


def test_decide_without_otherwise_goes_to_the_next_step_in_order() -> None:
    prog = program(step("a", branch=branch(("clicked", "c"))), step("b", "P1D"), step("c"))
    sent = after_send(start(prog, T0), prog, prog.step("a"), T0, "A", None)
    decided = decide(sent, prog, T0 + 3 * DAY)
    assert (decided.step_id, decided.due_at) == ("b", T0 + 4 * DAY)


def test_decide_goto_exit_completes_the_program() -> None:
    prog = program(step("a", branch=branch(("not_opened", "exit"))), step("b"))
    sent = after_send(start(prog, T0), prog, prog.step("a"), T0, "A", None)
    decided = decide(sent, prog, T0 + 3 * DAY)
    assert decided.completed_at == T0 + 3 * DAY
    assert decided.outcome == "completed"
    assert (decided.step_id, decided.awaiting, decided.due_at) == (None, None, None)


def test_decide_on_the_last_step_without_a_matching_rule_completes() -> None:
    prog = program(step("a"), step("b", branch=branch(("clicked", "exit"))))
    enrolment = start(prog, T0).model_copy(update={"step_id": "b"})
    sent = after_send(enrolment, prog, prog.step("b"), T0, "A", None)
    assert decide(sent, prog, T0 + 3 * DAY).outcome == "completed"


def test_a_rule_may_read_an_earlier_steps_engagement() -> None:
    prog = program(
        step("a"),
        step(
            "b",
            branch={
                "wait_up_to": "P1D",
                "rules": [{"when": "clicked", "goto": "d", "step": "a"}],
                "otherwise": "c",
            },
        ),
        step("c"),
        step("d"),
    )
    enrolment = after_send(start(prog, T0), prog, prog.step("a"), T0, "A", None)
    enrolment = after_send(enrolment, prog, prog.step("b"), T0 + DAY, "A", None)
    assert decide(enrolment, prog, T0 + 2 * DAY).step_id == "c"
    clicked_a = engaged(enrolment, "a", clicked_at=T0 + HOUR)
    assert decide(clicked_a, prog, T0 + 2 * DAY).step_id == "d"


def test_a_rule_about_a_step_the_lead_never_got_does_not_hold() -> None:
    # Given a program whose b reminds about a unless a was opened, for a lead that skipped a
    prog = program(
        step("a"),
        step(
            "b",
            branch={
                "wait_up_to": "P1D",
                "rules": [{"when": "not_opened", "goto": "remind", "step": "a"}],
                "otherwise": "next",
            },
        ),
        step("remind"),
        step("next"),
    )
    enrolment = start(prog, T0).model_copy(update={"step_id": "b"})  # a never sent
    enrolment = after_send(enrolment, prog, prog.step("b"), T0, "A", None)

    # Then no reminder about an email it never received
    assert decide(enrolment, prog, T0 + DAY).step_id == "next"


def test_decide_without_a_pending_branch_changes_nothing() -> None:
    enrolment = start(LINEAR, T0)
    assert decide(enrolment, LINEAR, T0 + DAY) == enrolment


def test_decide_after_the_branch_was_removed_from_the_program_carries_on_in_order() -> None:
    edited = program(step("a"), step("b", "P1D"), step("c", "PT2H"), step("d"), step("e"))
    decided = decide(sent_b(), edited, T0 + DAY)
    assert (decided.step_id, decided.due_at) == ("c", T0 + DAY + 2 * HOUR)


# -- record_engagement: early decisions -----------------------------------------------------


CLICKED_THEN_OPENED = program(
    step("a"),
    step("b", branch=branch(("clicked", "d"), ("opened", "c"), otherwise="e")),
    step("c"),
    step("d"),
    step("e"),
)


def test_an_open_must_not_decide_early_while_a_click_could_still_change_the_outcome() -> None:
    enrolment = sent_b(CLICKED_THEN_OPENED)
    opened = record_engagement(enrolment, CLICKED_THEN_OPENED, "b", Engagement.OPENED, T0 + HOUR)
    assert opened.sent["b"].opened_at == T0 + HOUR
    assert opened.due_at == enrolment.due_at == T0 + 3 * DAY
    assert opened.awaiting == "b"


def test_a_click_decides_at_once() -> None:
    enrolment = sent_b(CLICKED_THEN_OPENED)
    at = T0 + 2 * HOUR
    clicked = record_engagement(enrolment, CLICKED_THEN_OPENED, "b", Engagement.CLICKED, at)
    assert clicked.sent["b"].clicked_at == at
    assert clicked.due_at == at
    assert decide(clicked, CLICKED_THEN_OPENED, at).step_id == "d"


def test_a_click_after_an_open_decides_at_the_click() -> None:
    enrolment = sent_b(CLICKED_THEN_OPENED)
    enrolment = record_engagement(enrolment, CLICKED_THEN_OPENED, "b", Engagement.OPENED, T0 + HOUR)
    clicked = record_engagement(
        enrolment, CLICKED_THEN_OPENED, "b", Engagement.CLICKED, T0 + 5 * HOUR
    )
    assert clicked.due_at == T0 + 5 * HOUR
    assert clicked.sent["b"].opened_at == T0 + HOUR


def test_an_open_decides_early_when_it_is_the_first_rule() -> None:
    prog = program(
        step("a"),
        step("b", branch=branch(("opened", "c"), ("clicked", "d"))),
        step("c"),
        step("d"),
    )
    opened = record_engagement(sent_b(prog), prog, "b", Engagement.OPENED, T0 + HOUR)
    assert opened.due_at == T0 + HOUR
    assert decide(opened, prog, T0 + HOUR).step_id == "c"


def test_with_a_not_opened_rule_first_only_a_click_settles_the_branch() -> None:
    # welcome's shape: [not_opened -> reminder, clicked -> seminar], otherwise seminar
    prog = program(
        step("a"),
        step("b", branch=branch(("not_opened", "c"), ("clicked", "d"), otherwise="e")),
        step("c"),
        step("d"),
        step("e"),
    )
    opened = record_engagement(sent_b(prog), prog, "b", Engagement.OPENED, T0 + HOUR)
    assert opened.due_at == T0 + 3 * DAY
    clicked = record_engagement(sent_b(prog), prog, "b", Engagement.CLICKED, T0 + HOUR)
    assert clicked.due_at == T0 + HOUR
    assert decide(clicked, prog, T0 + HOUR).step_id == "d"


def test_a_holding_not_rule_first_is_not_settled_by_an_open() -> None:
    # [not_clicked -> c, opened -> d]: an open leaves not_clicked holding, a click may follow
    prog = program(
        step("a"),
        step("b", branch=branch(("not_clicked", "c"), ("opened", "d"))),
        step("c"),
        step("d"),
    )
    opened = record_engagement(sent_b(prog), prog, "b", Engagement.OPENED, T0 + HOUR)
    assert opened.due_at == T0 + 3 * DAY
    clicked = record_engagement(sent_b(prog), prog, "b", Engagement.CLICKED, T0 + HOUR)
    assert clicked.due_at == T0 + HOUR
    assert decide(clicked, prog, T0 + HOUR).step_id == "d"


def test_engagement_after_the_decision_time_does_not_move_the_due_time() -> None:
    enrolment = sent_b(CLICKED_THEN_OPENED)
    late = T0 + 4 * DAY
    clicked = record_engagement(enrolment, CLICKED_THEN_OPENED, "b", Engagement.CLICKED, late)
    assert clicked.due_at == T0 + 3 * DAY
    assert clicked.sent["b"].clicked_at == late


def test_the_first_open_time_is_kept() -> None:
    enrolment = sent_b()
    once = record_engagement(enrolment, BRANCHING, "b", Engagement.OPENED, T0 + HOUR)
    twice = record_engagement(once, BRANCHING, "b", Engagement.OPENED, T0 + 2 * HOUR)
    assert twice.sent["b"].opened_at == T0 + HOUR


@pytest.mark.parametrize(
    ("step_id", "engagement"),
    [
        pytest.param("c", Engagement.CLICKED, id="step never sent"),
        pytest.param("b", Engagement.NOT_OPENED, id="not an event"),
        pytest.param("b", Engagement.NOT_CLICKED, id="not an event either"),
    ],
)
def test_engagement_that_is_not_an_open_or_click_on_a_sent_step_changes_nothing(
    step_id: str, engagement: Engagement
) -> None:
    enrolment = sent_b()
    assert record_engagement(enrolment, BRANCHING, step_id, engagement, T0 + HOUR) == enrolment


def test_engagement_without_the_program_is_recorded_but_decides_nothing() -> None:
    enrolment = sent_b()
    clicked = record_engagement(enrolment, None, "b", Engagement.CLICKED, T0 + HOUR)
    assert clicked.sent["b"].clicked_at == T0 + HOUR
    assert clicked.due_at == enrolment.due_at


def test_engagement_on_an_earlier_step_while_no_branch_is_pending_is_only_recorded() -> None:
    enrolment = after_send(start(LINEAR, T0), LINEAR, LINEAR.step("a"), T0, "A", None)
    clicked = record_engagement(enrolment, LINEAR, "a", Engagement.CLICKED, T0 + HOUR)
    assert clicked.sent["a"].clicked
    assert (clicked.step_id, clicked.due_at) == ("b", enrolment.due_at)


# -- branches on a link ---------------------------------------------------------------------


def on_links(*links: str, when: str = "clicked", goto: str = "d") -> dict[str, Any]:
    return {"when": when, "goto": goto, "links": list(links)}


# b: a click on pricing or trial -> d, otherwise e
PRICING = program(
    step("a"),
    step("b", branch=branch(on_links("pricing", "trial"), otherwise="e")),
    step("c"),
    step("d"),
    step("e"),
)


def click(enrolment: Enrolment, prog: Program, at: datetime, *links: str) -> Enrolment:
    return record_engagement(enrolment, prog, "b", Engagement.CLICKED, at, links)


def test_a_rule_naming_links_parses_them() -> None:
    b = PRICING.step("b").branch
    assert b is not None
    assert [(r.when, r.links) for r in b.rules] == [(Engagement.CLICKED, ("pricing", "trial"))]
    plain = BRANCHING.step("b").branch
    assert plain is not None
    assert plain.rules[0].links is None  # any click


@pytest.mark.parametrize("link", ["pricing", "trial"])
def test_a_click_on_a_named_link_decides_the_branch_at_once(link: str) -> None:
    at = T0 + 2 * HOUR
    clicked = click(sent_b(PRICING), PRICING, at, link)
    assert clicked.sent["b"].clicked_at == at
    assert clicked.sent["b"].clicked_links == (link,)
    assert clicked.due_at == at
    assert decide(clicked, PRICING, at).step_id == "d"


@pytest.mark.parametrize(
    "links", [pytest.param(("case_study",), id="another link"), pytest.param((), id="no tags")]
)
def test_a_click_on_another_link_neither_decides_early_nor_takes_the_rule(
    links: tuple[str, ...],
) -> None:
    enrolment = sent_b(PRICING)
    clicked = click(enrolment, PRICING, T0 + HOUR, *links)
    assert clicked.sent["b"].clicked  # still a click, for scoring and other rules
    assert clicked.sent["b"].clicked_links == links
    assert clicked.due_at == enrolment.due_at == T0 + 3 * DAY
    assert decide(clicked, PRICING, T0 + 3 * DAY).step_id == "e"
    # and the named link clicked later still decides, at that click
    later = click(clicked, PRICING, T0 + 5 * HOUR, "trial")
    assert later.sent["b"].clicked_at == T0 + HOUR
    assert later.due_at == T0 + 5 * HOUR
    assert decide(later, PRICING, later.due_at).step_id == "d"


def test_a_plain_click_rule_after_a_link_rule_takes_the_other_clicks() -> None:
    prog = program(
        step("a"),
        step("b", branch=branch(on_links("pricing"), ("clicked", "c"), otherwise="e")),
        step("c"),
        step("d"),
        step("e"),
    )
    # A click elsewhere must not decide early: a pricing click may still follow.
    elsewhere = click(sent_b(prog), prog, T0 + HOUR, "case_study")
    assert elsewhere.due_at == T0 + 3 * DAY
    assert decide(elsewhere, prog, T0 + 3 * DAY).step_id == "c"
    pricing = click(sent_b(prog), prog, T0 + HOUR, "pricing")
    assert (pricing.due_at, decide(pricing, prog, T0 + HOUR).step_id) == (T0 + HOUR, "d")


def test_not_clicked_with_links_holds_until_one_of_them_is_clicked() -> None:
    prog = program(
        step("a"),
        step("b", branch=branch(on_links("pricing", when="not_clicked", goto="c"), otherwise="d")),
        step("c"),
        step("d"),
    )
    elsewhere = click(sent_b(prog), prog, T0 + HOUR, "case_study")
    assert elsewhere.due_at == T0 + 3 * DAY
    assert decide(elsewhere, prog, T0 + 3 * DAY).step_id == "c"
    pricing = click(elsewhere, prog, T0 + 2 * HOUR, "pricing")
    assert decide(pricing, prog, T0 + 3 * DAY).step_id == "d"


def test_a_rule_may_name_links_of_an_earlier_steps_email() -> None:
    prog = program(
        step("a"),
        step(
            "b",
            branch=branch({**on_links("pricing", goto="d"), "step": "a"}, otherwise="c"),
        ),
        step("c"),
        step("d"),
    )
    enrolment = after_send(start(prog, T0), prog, prog.step("a"), T0, "A", None)
    enrolment = record_engagement(enrolment, prog, "a", Engagement.CLICKED, T0 + HOUR, ("pricing",))
    enrolment = after_send(enrolment, prog, prog.step("b"), T0 + DAY, "A", None)
    assert decide(enrolment, prog, T0 + 2 * DAY).step_id == "d"


def test_clicked_links_are_kept_sorted_once_each_and_bounded() -> None:
    enrolment = click(sent_b(PRICING), PRICING, T0 + HOUR, "trial", "pricing")
    enrolment = click(enrolment, PRICING, T0 + 2 * HOUR, "pricing")
    assert enrolment.sent["b"].clicked_links == ("pricing", "trial")
    assert enrolment.sent["b"].clicked_at == T0 + HOUR
    again = click(enrolment, PRICING, T0 + 3 * HOUR, "trial")
    assert again == enrolment  # nothing new: the engagement path writes nothing
    many = click(enrolment, PRICING, T0 + HOUR, *(f"tag_{i:02}" for i in range(50)))
    assert len(many.sent["b"].clicked_links) == MAX_CLICKED_LINKS


def test_an_open_records_no_links() -> None:
    opened = record_engagement(
        sent_b(PRICING), PRICING, "b", Engagement.OPENED, T0 + HOUR, ("pricing",)
    )
    assert opened.sent["b"].clicked_links == ()
    assert opened.due_at == T0 + 3 * DAY


# -- skipping a step that does not fit the lead ----------------------------------------------


TRIAL = {"form_types": ["trial"]}
# a -> b (not for trial leads) -> c -> d (not for trial leads, the last step)
SKIPPING = program(
    step("a"),
    step("b", "P1D", skip_if=TRIAL),
    step("c", "PT2H"),
    step("d", "P1D", skip_if=TRIAL),
)


def trial_lead(**touches: FormType) -> Lead:
    """A lead with a trial form on record as ``first``, ``last`` or ``consent``."""
    first = touches.get("first", FormType.DOWNLOAD)
    last = touches.get("last", FormType.DOWNLOAD)
    consent = touches.get("consent", FormType.DOWNLOAD)
    return lead(
        first_touch=Touch(at=T0, form_type=first),
        last_touch=Touch(at=T0, form_type=last),
        consent=ConsentState(opted_in=True, at=T0, wording_version="v1", form_type=consent),
    )


@pytest.mark.parametrize("where", ["first", "last", "consent"])
def test_a_step_is_skipped_for_a_lead_with_a_trial_form_on_record(where: str) -> None:
    assert skip_reason(trial_lead(**{where: FormType.TRIAL}), SKIPPING.step("b")) == (
        "skip_if:form_type:trial"
    )


def test_a_step_is_not_skipped_for_other_leads_or_by_a_step_without_a_condition() -> None:
    assert skip_reason(trial_lead(), SKIPPING.step("b")) is None
    assert skip_reason(trial_lead(first=FormType.TRIAL), SKIPPING.step("c")) is None


def test_every_key_of_a_condition_must_match_and_the_reason_names_what_matched() -> None:
    prog = program(
        step("a", skip_if={"form_types": ["trial", "inquiry"], "interests": ["経費精算", "稟議"]})
    )
    a = prog.step("a")
    both = trial_lead(first=FormType.TRIAL).model_copy(update={"interests": ("稟議", "勤怠")})
    assert skip_reason(both, a) == "skip_if:form_type:trial,interest:稟議"
    assert skip_reason(both.model_copy(update={"interests": ("勤怠",)}), a) is None
    assert skip_reason(trial_lead().model_copy(update={"interests": ("稟議",)}), a) is None


def test_only_if_skips_the_leads_it_does_not_name() -> None:
    prog = program(step("a", only_if={"industries": ["製造業"], "stages": ["lead"]}))
    a = prog.step("a")
    assert skip_reason(lead(industry="製造業"), a) is None
    assert skip_reason(lead(industry="小売業"), a) == "only_if:industry"
    assert skip_reason(lead(), a) == "only_if:industry"  # left blank on the form
    assert skip_reason(lead(stage=Stage.CUSTOMER), a) == "only_if:stage,industry"


def test_skipping_a_middle_step_moves_to_the_next_after_its_wait_and_notes_why() -> None:
    enrolment = after_send(start(SKIPPING, T0), SKIPPING, SKIPPING.step("a"), T0, "A", "m")
    assert (enrolment.step_id, enrolment.due_at) == ("b", T0 + DAY)
    now = T0 + DAY
    skipped = skip(enrolment, SKIPPING, SKIPPING.step("b"), now, "skip_if:form_type:trial")
    assert (skipped.step_id, skipped.awaiting, skipped.due_at) == ("c", None, now + 2 * HOUR)
    assert skipped.skipped == {"b": "skip_if:form_type:trial"}
    assert set(skipped.sent) == {"a"}  # nothing was sent for b
    assert skipped.completed_at is None


def test_skipping_the_last_step_completes_the_program() -> None:
    enrolment = start(SKIPPING, T0).model_copy(update={"step_id": "d"})
    done = skip(enrolment, SKIPPING, SKIPPING.step("d"), T0 + DAY, "skip_if:form_type:trial")
    assert (done.step_id, done.awaiting, done.due_at) == (None, None, None)
    assert (done.completed_at, done.outcome) == (T0 + DAY, "completed")
    assert done.skipped == {"d": "skip_if:form_type:trial"}


def test_skipping_a_branching_step_takes_its_otherwise_or_the_next_step() -> None:
    enrolment = start(BRANCHING, T0).model_copy(update={"step_id": "b"})
    taken = skip(enrolment, BRANCHING, BRANCHING.step("b"), T0, "only_if:stage")
    assert (taken.step_id, taken.awaiting, taken.due_at) == ("e", None, T0 + HOUR)
    prog = program(step("a", branch=branch(("clicked", "c"))), step("b"), step("c"))
    assert skip(start(prog, T0), prog, prog.step("a"), T0, "x").step_id == "b"


def test_a_skipped_step_whose_branch_ends_in_sunset_completes_without_sunsetting() -> None:
    # Sunset is for a lead that left the last call unanswered; this lead never got it.
    prog = program(step("a", branch=branch(("clicked", "b"), otherwise="sunset")), step("b"))
    done = skip(start(prog, T0), prog, prog.step("a"), T0, "skip_if:stage:lost")
    assert done.outcome == "completed"


# -- exit_reason ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({}, None, id="a consenting lead stays"),
        pytest.param({"stage": Stage.MQL}, "stage:mql", id="mql"),
        pytest.param({"stage": Stage.CUSTOMER}, "stage:customer", id="customer"),
        pytest.param({"stage": Stage.DORMANT}, None, id="dormant is not a default exit stage"),
        pytest.param({"unsubscribed": True}, "unsubscribed", id="unsubscribed"),
        pytest.param({"suppressed": True}, "suppressed", id="suppressed"),
        pytest.param({"consent": ConsentState()}, "no_consent", id="no consent"),
        pytest.param(
            {"unsubscribed": True, "suppressed": True, "stage": Stage.MQL},
            "unsubscribed",
            id="unsubscription first",
        ),
        pytest.param(
            {"suppressed": True, "consent": ConsentState(), "stage": Stage.MQL},
            "suppressed",
            id="suppression before consent",
        ),
    ],
)
def test_exit_reason(changes: dict[str, Any], reason: str | None) -> None:
    assert exit_reason(lead(**changes), LINEAR) == reason


def test_exit_stages_come_from_the_program() -> None:
    prog = program(step("a"), exit={"stages": ["customer"]})
    assert exit_reason(lead(stage=Stage.MQL), prog) is None
    assert exit_reason(lead(stage=Stage.CUSTOMER), prog) == "stage:customer"


# -- within_cap -----------------------------------------------------------------------------


NOW = T0 + 10 * DAY


def test_under_the_cap_another_email_may_go() -> None:
    assert within_cap((), NOW, 3) is None
    assert within_cap((NOW - DAY, NOW - 2 * DAY), NOW, 3) is None


def test_exactly_cap_emails_in_seven_days_blocks_until_the_oldest_ages_out() -> None:
    sends = (NOW - HOUR, NOW - 6 * DAY, NOW - 3 * DAY)  # unsorted on purpose
    ages_out = within_cap(sends, NOW, 3)
    assert ages_out == NOW - 6 * DAY + FREQUENCY_WINDOW == NOW + DAY
    assert ages_out is not None
    # just before that moment the cap still blocks; at it, the next email may go
    assert within_cap(sends, ages_out - timedelta(seconds=1), 3) is not None
    assert within_cap(sends, ages_out, 3) is None


def test_sends_older_than_seven_days_do_not_count() -> None:
    sends = (NOW - 8 * DAY, NOW - 7 * DAY, NOW - DAY, NOW - 2 * DAY)
    assert within_cap(sends, NOW, 3) is None
    assert within_cap(sends, NOW, 2) == NOW - 2 * DAY + FREQUENCY_WINDOW


def test_over_the_cap_the_nth_newest_send_ageing_out_gives_the_time() -> None:
    # four sends, cap 2: two must age out; the 2nd newest is the one that matters
    sends = (NOW - 5 * DAY, NOW - 4 * DAY, NOW - 3 * DAY, NOW - HOUR)
    assert within_cap(sends, NOW, 2) == NOW - 3 * DAY + FREQUENCY_WINDOW
    assert within_cap(sends, NOW + 4 * DAY, 2) is None


def test_a_cap_of_one() -> None:
    assert within_cap((NOW - HOUR,), NOW, 1) == NOW - HOUR + FREQUENCY_WINDOW


def test_prune_sends_keeps_the_last_seven_days_only() -> None:
    sends = (NOW - 8 * DAY, NOW - 7 * DAY, NOW - 6 * DAY, NOW)
    assert prune_sends(sends, NOW) == (NOW - 6 * DAY, NOW)


# -- A/B variants ---------------------------------------------------------------------------


TWO_VARIANTS = program(step("a", variants=2), step("b", variants=3), step("c"))


def test_variant_of_is_stable_for_a_lead() -> None:
    lead_id = "0123456789abcdef0123456789abcdef"
    first = variant_of(lead_id, TWO_VARIANTS, TWO_VARIANTS.step("a"))
    assert all(
        variant_of(lead_id, TWO_VARIANTS, TWO_VARIANTS.step("a")) == first for _ in range(10)
    )
    # a rebuilt (reloaded) program gives the same assignment
    reloaded = Program.model_validate(TWO_VARIANTS.model_dump())
    assert variant_of(lead_id, reloaded, reloaded.step("a")) == first


def test_variants_are_spread_evenly_and_independently_per_step() -> None:
    ids = [uuid.UUID(int=i * 7919 + 13).hex for i in range(1000)]
    a = [variant_of(i, TWO_VARIANTS, TWO_VARIANTS.step("a")) for i in ids]
    assert set(a) == {0, 1}
    assert 400 <= a.count(0) <= 600
    b = [variant_of(i, TWO_VARIANTS, TWO_VARIANTS.step("b")) for i in ids]
    assert set(b) == {0, 1, 2}
    assert all(250 <= b.count(v) <= 420 for v in range(3))
    # the assignment of one step does not decide the next one's
    same = sum(1 for x, y in zip(a, b, strict=True) if x == y % 2)
    assert 400 <= same <= 600


def test_a_single_subject_is_always_variant_a() -> None:
    ids = [uuid.uuid4().hex for _ in range(50)]
    assert {variant_of(i, TWO_VARIANTS, TWO_VARIANTS.step("c")) for i in ids} == {0}
    assert [variant_label(i) for i in range(3)] == ["A", "B", "C"]


# -- on_complete: answering re-engagement brings the lead back --------------------------------


def test_on_complete_is_for_programs_that_dormant_or_lost_leads_enter() -> None:
    back = {"stage": "lead"}
    exits = {"stages": ["lead", "mql"]}
    returning = program(
        step("hello"), entry={"stages": ["dormant", "lost"]}, exit=exits, on_complete=back
    )
    assert returning.on_complete is not None
    assert returning.on_complete.stage is Stage.LEAD

    with pytest.raises(ValidationError, match="on_complete is only for programs"):
        program(step("hello"), entry={"stages": ["customer"]}, exit=exits, on_complete=back)
    # only back to nurturing: content cannot make a lead an MQL or a customer
    with pytest.raises(ValidationError, match="on_complete"):
        program(
            step("hello"), entry={"stages": ["dormant"]}, exit=exits, on_complete={"stage": "mql"}
        )


def test_recounting_a_step_after_its_click_turned_out_a_machines_makes_the_branch_wait() -> None:
    # Given b sent (its branch waits a day and then up to 3 days), clicked an hour later
    enrolment = sent_b()
    assert enrolment.awaiting == "b"
    sent_at = enrolment.sent["b"].sent_at
    clicked_at = sent_at + HOUR
    clicked = record_engagement(enrolment, BRANCHING, "b", Engagement.CLICKED, clicked_at)
    assert clicked.due_at == clicked_at  # settled at once

    # When the click turns out a scanner's: nothing a person did is left
    recounted = recount_engagement(clicked, BRANCHING, "b", None, None, [])

    # Then the step shows no engagement, and the branch waits its full time again
    step_b = recounted.sent["b"]
    assert (step_b.opened_at, step_b.clicked_at, step_b.clicked_links) == (None, None, ())
    assert recounted.due_at == sent_at + 3 * DAY
    # and recounting what is already there changes nothing
    assert recount_engagement(recounted, BRANCHING, "b", None, None, []) == recounted


def test_recounting_keeps_what_people_did_and_a_settled_branch_stays_due() -> None:
    enrolment = sent_b()
    sent_at = enrolment.sent["b"].sent_at
    opened = record_engagement(enrolment, BRANCHING, "b", Engagement.OPENED, sent_at + HOUR)
    clicked = record_engagement(opened, BRANCHING, "b", Engagement.CLICKED, sent_at + 2 * HOUR)
    # A person also clicked: the scanner's click is gone, the person's stays
    person = sent_at + 5 * HOUR
    recounted = recount_engagement(clicked, BRANCHING, "b", sent_at + HOUR, person, ["pricing"])
    assert recounted.sent["b"].clicked_at == person
    assert recounted.sent["b"].clicked_links == ("pricing",)
    assert recounted.due_at == clicked.due_at

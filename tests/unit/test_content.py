"""The nurture content marketers edit: program YAML and the email templates.

Every step of every shipped program is rendered in both locales for a complete lead, a
lead who left every optional field blank and a lead whose profile carries markup, and
the program files are walked through the engine to prove each flow does what its
comment says. Broken program files must fail to load with a message naming the problem.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2 import meta, nodes

from shared import nurture
from shared.email import EMAIL_DIR, LOCALES, EmailRenderer, RenderedEmail, SenderProfile
from shared.leads import ConsentState, FormType, Lead, Stage, Touch
from shared.programs import (
    ENDINGS,
    EXIT,
    ContentType,
    Engagement,
    Program,
    Step,
    load_programs,
)

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
SENDER = SenderProfile(
    company_name="株式会社サンプルソフト",
    from_address="株式会社サンプルソフト <news@example.co.jp>",
    postal_address="〒100-0005 東京都千代田区丸の内0-0-0 サンプルビル10階",
    contact_email="support@example.co.jp",
    # A trailing slash, as an operator may well configure it: links must not get "//".
    site_url="https://www.example.co.jp/",
    privacy_url="https://www.example.co.jp/privacy/",
)
SITE = "https://www.example.co.jp"
UNSUBSCRIBE = "https://api.example.co.jp/v1/unsubscribe?token=3f9c2b7e"
PAYLOAD = "<script>alert(1)</script>\"&'"
CATALOG = load_programs()
RENDERER = EmailRenderer(SENDER)


def make_lead(
    locale: str = "ja", stage: Stage = Stage.LEAD, profile: dict[str, str] | None = None
) -> Lead:
    touch = Touch(at=NOW, form_type=FormType.DOWNLOAD)
    return Lead(
        lead_id="0f8e1c2d3b4a59687766554433221100",
        email="taro.yamada@example.co.jp",
        locale=locale,
        stage=stage,
        consent=ConsentState(opted_in=True, at=NOW, wording_version="2026-01"),
        first_touch=touch,
        last_touch=touch,
        created_at=NOW,
        updated_at=NOW,
        **(profile or {}),
    )


FULL = {
    "family_name": "山田",
    "given_name": "太郎",
    "name": "山田 太郎",
    "company": "株式会社テスト商事",
    "department": "管理本部",
    "job_title": "部長",
    "industry": "製造業",
    "company_size": "100〜299名",
    "prefecture": "東京都",
}
HOSTILE = {"name": PAYLOAD, "company": PAYLOAD}
FULL_SALUTATION = {"ja": "株式会社テスト商事 山田 太郎 様", "en": "Dear 太郎 山田,"}
BLANK_SALUTATION = {"ja": "ご担当者 様", "en": "Dear Sir or Madam,"}


def cases(content_types: Iterable[ContentType] = tuple(ContentType)) -> list[Any]:
    """(program, step, locale) for every step of the given content types, both locales."""
    return [
        pytest.param(program, step, locale, id=f"{program.id}-{step.id}-{locale}")
        for program in CATALOG.programs
        for step in program.steps
        if step.content_type in content_types
        for locale in LOCALES
    ]


CASES = cases()
STEPS = [
    pytest.param(program, step, id=f"{program.id}-{step.id}")
    for program in CATALOG.programs
    for step in program.steps
]


def render_all(program: Program, step: Step, lead: Lead) -> list[RenderedEmail]:
    """Every A/B variant of the step for the lead."""
    return [RENDERER.render(lead, program, step, v, UNSUBSCRIBE) for v in range(step.variants)]


class _Html(HTMLParser):
    """Collects anchors and reports tags left open or closed out of order."""

    VOID = frozenset({"br", "meta", "img", "hr", "input", "link", "col", "wbr", "source"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.errors: list[str] = []
        self._open: list[str] = []
        self.feed(html)
        self.close()
        self.errors += [f"<{tag}> never closed" for tag in self._open]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        if tag not in self.VOID:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self._open[-1:] or 'nothing'}")
        else:
            self._open.pop()


def site_links_in_html(html: str) -> list[dict[str, str | None]]:
    return [
        a
        for a in _Html(html).anchors
        if (a.get("href") or "").startswith(SITE) and a.get("href") != SENDER.privacy_url
    ]


def site_links_in_text(text: str) -> set[str]:
    urls = set(re.findall(r"https?://\S+", text))
    return {u for u in urls if u.startswith(SITE) and u != SENDER.privacy_url}


# -- the program files ------------------------------------------------------------------


def test_the_shipped_programs_load_with_their_ids_priorities_and_segments() -> None:
    summary = {p.id: (p.priority, set(p.entry.stages)) for p in CATALOG.programs}
    assert summary == {
        "welcome": (10, {Stage.LEAD}),
        "re_engagement": (20, {Stage.DORMANT, Stage.LOST}),
        "customer": (30, {Stage.CUSTOMER}),
    }


@pytest.mark.parametrize(
    ("stage", "program_id"),
    [
        (Stage.LEAD, "welcome"),
        (Stage.DORMANT, "re_engagement"),
        (Stage.LOST, "re_engagement"),
        (Stage.CUSTOMER, "customer"),
        (Stage.MQL, None),
        (Stage.SQL, None),
    ],
)
def test_each_stage_is_served_by_the_program_for_its_segment(
    stage: Stage, program_id: str | None
) -> None:
    program = CATALOG.program_for(make_lead(stage=stage), FormType.DOWNLOAD)
    assert (program.id if program else None) == program_id


@pytest.mark.parametrize("program", CATALOG.programs, ids=lambda p: p.id)
def test_a_lead_entering_a_program_is_not_exited_from_it_at_once(program: Program) -> None:
    for stage in program.entry.stages:
        assert nurture.exit_reason(make_lead(stage=stage), program) is None
    # And every stage the program does not serve takes the lead out of it.
    for stage in set(Stage) - set(program.entry.stages):
        assert nurture.exit_reason(make_lead(stage=stage), program) == f"stage:{stage.value}"


@pytest.mark.parametrize("program", CATALOG.programs, ids=lambda p: p.id)
def test_every_step_of_a_program_can_be_reached(program: Program) -> None:
    reachable = {program.steps[0].id}
    for step in program.steps:  # gotos only move forward, so one pass in order suffices
        if step.id not in reachable:
            continue
        following = program.step_after(step.id)
        if step.branch is None:
            targets = [following.id if following else EXIT]
        else:
            default = following.id if following else EXIT
            targets = [r.goto for r in step.branch.rules] + [step.branch.otherwise or default]
        reachable |= set(targets) - ENDINGS
    assert reachable == {s.id for s in program.steps}


@pytest.mark.parametrize("program", CATALOG.programs, ids=lambda p: p.id)
def test_programs_send_on_japanese_business_days_in_business_hours(program: Program) -> None:
    window = program.send_window
    assert window.timezone == "Asia/Tokyo"
    assert set(window.weekdays) <= {"mon", "tue", "wed", "thu", "fri"}
    assert window.skip_public_holidays
    assert window.skip_new_year_holidays
    assert time(8, 0) <= window.start < window.end <= time(19, 0)


# -- the flows, walked through the engine ------------------------------------------------


def walk(program: Program, engaged: dict[str, Engagement]) -> list[tuple[str, datetime]]:
    """Run an enrolment to its end; the lead engages an hour after each step it names.

    Returns the steps sent, in order, with their send times.
    """
    enrolment = nurture.start(program, NOW)
    sent: list[tuple[str, datetime]] = []
    while enrolment.completed_at is None:
        assert len(sent) <= len(program.steps), "a step was sent twice"
        assert enrolment.due_at is not None
        now = enrolment.due_at
        if enrolment.step_id is None:
            enrolment = nurture.decide(enrolment, program, now)
            continue
        step = program.step(enrolment.step_id)
        enrolment = nurture.after_send(enrolment, program, step, now, "A", None)
        sent.append((step.id, now))
        engagement = engaged.get(step.id)
        if engagement is not None:
            events = [Engagement.OPENED]
            if engagement is Engagement.CLICKED:
                events.append(Engagement.CLICKED)
            for event in events:
                at = now + timedelta(hours=1)
                enrolment = nurture.record_engagement(enrolment, program, step.id, event, at)
    return sent


def ids(sent: list[tuple[str, datetime]]) -> list[str]:
    return [step_id for step_id, _ in sent]


def test_welcome_sends_the_reminder_only_to_leads_who_did_not_open_the_whitepaper() -> None:
    program = CATALOG.programs[0]
    assert program.id == "welcome"
    unopened = walk(program, {})
    opened = walk(program, {"whitepaper": Engagement.OPENED})
    clicked = walk(program, {"whitepaper": Engagement.CLICKED})

    assert ids(unopened) == [
        "welcome",
        "case_study",
        "whitepaper",
        "whitepaper_reminder",
        "seminar_invitation",
        "free_trial",
    ]
    assert "whitepaper_reminder" not in ids(opened)
    assert ids(clicked) == ids(opened)
    # A click decides at once; an open without a click waits the full five days.
    whitepaper_at = dict(clicked)["whitepaper"]
    assert dict(clicked)["seminar_invitation"] == whitepaper_at + timedelta(hours=1, days=3)
    assert dict(opened)["seminar_invitation"] == whitepaper_at + timedelta(days=5 + 3)


def test_welcome_starts_at_once_and_spreads_six_mails_over_three_weeks() -> None:
    sent = walk(CATALOG.programs[0], {})
    days = {step_id: (at - NOW) / timedelta(days=1) for step_id, at in sent}
    assert days == {
        "welcome": 0,
        "case_study": 3,
        "whitepaper": 7,
        "whitepaper_reminder": 12,
        "seminar_invitation": 15,
        "free_trial": 20,
    }


@pytest.mark.parametrize(
    ("engaged", "expected"),
    [
        pytest.param({}, ["reconnect", "best_content", "sunset_notice"], id="never clicks"),
        pytest.param(
            {"reconnect": Engagement.CLICKED}, ["reconnect", "welcome_back"], id="clicks first"
        ),
        pytest.param(
            {"best_content": Engagement.CLICKED},
            ["reconnect", "best_content", "welcome_back"],
            id="clicks the ranking",
        ),
        pytest.param(
            {"sunset_notice": Engagement.CLICKED},
            ["reconnect", "best_content", "sunset_notice", "welcome_back"],
            id="keeps subscribing",
        ),
        pytest.param(
            {"reconnect": Engagement.OPENED, "best_content": Engagement.OPENED},
            ["reconnect", "best_content", "sunset_notice"],
            id="opens are not re-engagement",
        ),
    ],
)
def test_re_engagement_welcomes_back_clickers_and_sunsets_the_rest(
    engaged: dict[str, Engagement], expected: list[str]
) -> None:
    program = CATALOG.get("re_engagement")
    assert program is not None
    assert ids(walk(program, engaged)) == expected


def test_the_sunset_notice_promises_the_wait_its_branch_has() -> None:
    # The copy names the deadline; the YAML enforces it. Change both together.
    program = CATALOG.get("re_engagement")
    assert program is not None
    step = program.step("sunset_notice")
    assert step.branch is not None
    assert step.branch.wait_up_to == timedelta(days=14)
    ja = RENDERER.render(make_lead("ja"), program, step, 0, UNSUBSCRIBE)
    en = RENDERER.render(make_lead("en"), program, step, 0, UNSUBSCRIBE)
    assert "2週間以内" in ja.html
    assert "2週間以内" in ja.text
    assert "two weeks" in en.html
    assert "two weeks" in en.text


def test_customers_get_four_mails_in_order_over_about_ten_weeks() -> None:
    program = CATALOG.get("customer")
    assert program is not None
    sent = walk(program, {})
    assert ids(sent) == ["onboarding_tips", "success_story", "cross_sell", "upsell"]
    assert sent[0][1] == NOW + timedelta(days=7)
    assert sent[-1][1] - NOW == timedelta(days=7 + 14 + 21 + 30)


# -- rendering every step ---------------------------------------------------------------


@pytest.mark.parametrize(("program", "step", "locale"), CASES)
def test_a_complete_lead_gets_a_complete_email(program: Program, step: Step, locale: str) -> None:
    for email in render_all(program, step, make_lead(locale, profile=FULL)):
        assert email.locale == locale
        assert email.subject.strip()
        assert "\n" not in email.subject
        assert "\r" not in email.subject
        assert email.html.startswith("<!doctype html>")
        assert f'<html lang="{locale}">' in email.html
        assert _Html(email.html).errors == []
        for part in (email.html, email.text):
            assert FULL_SALUTATION[locale] in part
            # The legal footer (特定電子メール法): sender, address, contact, opt-out.
            assert SENDER.company_name in part
            assert SENDER.postal_address in part
            assert SENDER.contact_email in part
            assert UNSUBSCRIBE in part
            assert "様様" not in part
        assert f'href="{UNSUBSCRIBE}"' in email.html


@pytest.mark.parametrize(("program", "step", "locale"), CASES)
def test_a_lead_who_left_every_field_blank_reads_naturally(
    program: Program, step: Step, locale: str
) -> None:
    for email in render_all(program, step, make_lead(locale)):
        assert BLANK_SALUTATION[locale] in email.html
        assert email.text.startswith(BLANK_SALUTATION[locale] + "\n")
        for part in (email.subject, email.html, email.text):
            for wrong in ("様様", "None", "undefined", "（）", "()", "「」", "【】", "[]"):
                assert wrong not in part
        # A field left out must not leave its particle or honorific behind.
        assert not re.search(r"^[、。様,.]", email.subject)
        assert not re.search(r"(^|\n)[ \u3000]*[、。様]", email.text)
        assert not re.search(r">[ \u3000]*[、。様]", email.html)
        for part in (email.subject, email.html, email.text):
            assert not re.search(r" [,.:;!?]", part)
            assert not re.search(r"[A-Za-z,]  +[A-Za-z]", part)  # "how  uses"


@pytest.mark.parametrize(("program", "step", "locale"), CASES)
def test_markup_in_the_lead_profile_is_escaped_in_html_and_kept_in_text(
    program: Program, step: Step, locale: str
) -> None:
    for email in render_all(program, step, make_lead(locale, profile=HOSTILE)):
        assert "<script>alert" not in email.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&amp;&#39;" in email.html
        # The text part and the subject are plain text: no HTML entities there.
        assert PAYLOAD in email.text
        assert "&lt;" not in email.text
        assert "&lt;" not in email.subject
        assert "\n" not in email.subject


@pytest.mark.parametrize(("program", "step", "locale"), CASES)
def test_every_site_link_is_tracked_and_in_both_parts(
    program: Program, step: Step, locale: str
) -> None:
    email = RENDERER.render(make_lead(locale, profile=FULL), program, step, 0, UNSUBSCRIBE)
    utm = f"?utm_source=nurture&utm_medium=email&utm_campaign={program.id}&utm_content={step.id}"
    anchors = site_links_in_html(email.html)
    assert anchors, "no call to action"
    for anchor in anchors:
        href = anchor["href"] or ""
        assert href.endswith(utm), href
        assert re.fullmatch(r"link:[a-z0-9_]{1,40};", anchor.get("ses:tags") or ""), anchor
    html_urls = {a["href"] for a in anchors}
    assert site_links_in_text(email.text) == html_urls
    assert f"{SITE}//" not in email.html + email.text


CONTENT_LINK = {
    ContentType.CASE_STUDY: "link:case_study;",
    ContentType.WHITEPAPER: "link:whitepaper;",
    ContentType.SEMINAR_INVITATION: "link:seminar;",
    ContentType.FREE_TRIAL: "link:trial;",
}


@pytest.mark.parametrize(
    ("program", "step", "locale"),
    cases(CONTENT_LINK),
)
def test_each_mail_links_to_what_its_content_type_promises(
    program: Program, step: Step, locale: str
) -> None:
    email = RENDERER.render(make_lead(locale), program, step, 0, UNSUBSCRIBE)
    tags = {a.get("ses:tags") for a in site_links_in_html(email.html)}
    assert CONTENT_LINK[step.content_type] in tags


@pytest.mark.parametrize(("program", "step"), STEPS)
def test_subjects_fit_a_phone_screen_and_variants_differ(program: Program, step: Step) -> None:
    limits = {"ja": 40, "en": 80}
    for locale, limit in limits.items():
        subjects = [e.subject for e in render_all(program, step, make_lead(locale))]
        assert len(set(subjects)) == len(subjects), "A/B variants must differ"
        for subject in subjects:
            assert len(subject) <= limit, subject


# -- template files -----------------------------------------------------------------------


def test_every_step_has_its_templates_and_no_template_is_orphaned() -> None:
    used = {name for p in CATALOG.programs for s in p.steps for name in RENDERER.template_names(s)}
    on_disk = {p.name for p in EMAIL_DIR.iterdir() if not p.name.startswith("layout.")}
    assert used - on_disk == set(), "missing templates"
    assert on_disk - used == set(), "templates no step uses"


def _templates() -> Iterator[Path]:
    for path in sorted(EMAIL_DIR.iterdir()):
        if not path.name.startswith("layout."):
            yield path


@pytest.mark.parametrize("path", list(_templates()), ids=lambda p: p.name)
def test_templates_extend_their_locales_layout_and_never_mark_data_safe(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    _, locale, ext = path.name.split(".")
    assert source.startswith(f'{{% extends "layout.{locale}.{ext}" %}}\n')
    assert "{% block body" in source
    assert "|safe" not in source.replace(" ", "")
    assert "autoescape" not in source


def _context_shape() -> dict[str, set[str]]:
    """The variables the renderer defines, and the keys of each dict among them."""
    program = CATALOG.programs[0]
    context = RENDERER.context(make_lead(), "ja", program, program.steps[0], UNSUBSCRIBE)
    context["subject"] = ""
    return {k: set(v) if isinstance(v, dict) else set() for k, v in context.items()}


def _sources() -> Iterator[tuple[str, str]]:
    for path in _templates():
        yield path.name, path.read_text(encoding="utf-8")
    for program in CATALOG.programs:
        for step in program.steps:
            for locale, subjects in step.subject.items():
                for i, subject in enumerate(subjects):
                    yield f"{program.id}/{step.id} subject {locale}[{i}]", subject


@pytest.mark.parametrize(("name", "source"), list(_sources()), ids=lambda v: str(v)[:60])
def test_templates_and_subjects_use_only_variables_the_renderer_defines(
    name: str, source: str
) -> None:
    # Rendering only catches a typo on the branch it takes; this reads every branch.
    shape = _context_shape()
    tree = jinja2.Environment(autoescape=True).parse(source)
    assert meta.find_undeclared_variables(tree) <= set(shape), name
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and shape.get(node.node.name):
            assert node.attr in shape[node.node.name], f"{name}: {node.node.name}.{node.attr}"


def _broken_program(tmp_path: Path, subject: str = "件名") -> Program:
    for layout in EMAIL_DIR.glob("layout.*"):
        shutil.copy(layout, tmp_path / layout.name)
    return Program.model_validate(
        {
            "id": "probe",
            "name": "probe",
            "entry": {"stages": ["lead"]},
            "steps": [
                {
                    "id": "only",
                    "template": "probe",
                    "content_type": "newsletter",
                    "subject": {"ja": [subject], "en": ["subject"]},
                }
            ],
        }
    )


def _write_probe(tmp_path: Path, body: str) -> None:
    for locale in LOCALES:
        for ext in ("html", "txt"):
            source = f'{{% extends "layout.{locale}.{ext}" %}}\n'
            source += f"{{% block body %}}{body}{{% endblock %}}"
            (tmp_path / f"probe.{locale}.{ext}").write_text(source, encoding="utf-8")


def test_a_template_using_an_undefined_variable_fails_to_render(tmp_path: Path) -> None:
    program = _broken_program(tmp_path)
    renderer = EmailRenderer(SENDER, directory=tmp_path)
    _write_probe(tmp_path, "{{ lead.company }}")
    assert (
        "株式会社テスト商事"
        in renderer.render(make_lead(profile=FULL), program, program.steps[0], 0, UNSUBSCRIBE).html
    )
    _write_probe(tmp_path, "{{ lead.nickname }}")
    renderer = EmailRenderer(SENDER, directory=tmp_path)  # a fresh template cache
    with pytest.raises(jinja2.UndefinedError, match="nickname"):
        renderer.render(make_lead(profile=FULL), program, program.steps[0], 0, UNSUBSCRIBE)


def test_a_subject_using_an_undefined_variable_fails_to_render(tmp_path: Path) -> None:
    program = _broken_program(tmp_path, subject="{{ lead.compnay }}様へ")
    _write_probe(tmp_path, "本文")
    renderer = EmailRenderer(SENDER, directory=tmp_path)
    with pytest.raises(jinja2.UndefinedError, match="compnay"):
        renderer.render(make_lead(profile=FULL), program, program.steps[0], 0, UNSUBSCRIBE)


# -- broken program files ------------------------------------------------------------------


def base_program() -> dict[str, Any]:
    """A small valid program with a branch, for the broken-file tests to spoil."""
    subject = {"ja": ["件名"], "en": ["Subject"]}
    return {
        "id": "broken",
        "name": "壊れたプログラム",
        "entry": {"stages": ["lead"]},
        "steps": [
            {"id": "first", "template": "welcome", "content_type": "welcome", "subject": subject},
            {
                "id": "second",
                "wait": "P3D",
                "template": "whitepaper",
                "content_type": "whitepaper",
                "subject": subject,
                "branch": {
                    "wait_up_to": "P5D",
                    "rules": [{"when": "clicked", "goto": "fourth"}],
                    "otherwise": "third",
                },
            },
            {"id": "third", "template": "x", "content_type": "whitepaper", "subject": subject},
            {"id": "fourth", "template": "y", "content_type": "free_trial", "subject": subject},
        ],
    }


def write_program(directory: Path, document: dict[str, Any], name: str = "broken") -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    (directory / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_the_base_program_for_the_broken_file_tests_is_valid(tmp_path: Path) -> None:
    write_program(tmp_path, base_program())
    catalog = load_programs(tmp_path)
    assert [p.id for p in catalog.programs] == ["broken"]


def _goto(doc: dict[str, Any], target: str) -> None:
    doc["steps"][1]["branch"]["rules"][0]["goto"] = target


def _month(doc: dict[str, Any]) -> None:
    doc["steps"][1]["wait"] = "P1M"


def _no_japanese(doc: dict[str, Any]) -> None:
    doc["steps"][2]["subject"] = {"en": ["Subject"]}


def _uneven_variants(doc: dict[str, Any]) -> None:
    doc["steps"][0]["subject"] = {"ja": ["件名A", "件名B"], "en": ["Subject A"]}


def _overlap(doc: dict[str, Any]) -> None:
    doc["entry"]["stages"] = ["lead", "lost"]  # lost is in the default exit stages


def _reads_later_step(doc: dict[str, Any]) -> None:
    doc["steps"][1]["branch"]["rules"][0]["step"] = "third"


def _unquoted_hours(doc: dict[str, Any]) -> None:
    doc["send_window"] = yaml.safe_load("start: 09:00\nend: 18:00")  # 18:00 is 1080 to YAML


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        pytest.param(lambda d: _goto(d, "nowhere"), "unknown goto target 'nowhere'", id="goto"),
        pytest.param(lambda d: _goto(d, "first"), "goto 'first' does not move forward", id="back"),
        pytest.param(
            lambda d: _goto(d, "second"), "goto 'second' does not move forward", id="self"
        ),
        pytest.param(_month, "not an ISO-8601 duration", id="month"),
        pytest.param(_no_japanese, "step third: a Japanese subject is required", id="no ja"),
        pytest.param(_uneven_variants, "step first: every locale needs the same", id="variants"),
        pytest.param(_overlap, "stages both enter and exit", id="overlap"),
        pytest.param(_reads_later_step, "rule reads 'third', not sent before", id="later step"),
        pytest.param(_unquoted_hours, 'write hours in quotes, e.g. "09:00"', id="hours"),
    ],
)
def test_a_broken_program_file_fails_to_load_naming_file_and_problem(
    tmp_path: Path, spoil: Any, message: str
) -> None:
    document = base_program()
    spoil(document)
    write_program(tmp_path, document)
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        load_programs(tmp_path)
    assert str(caught.value).startswith("broken.yaml: ")


def test_two_files_with_the_same_program_id_fail_to_load(tmp_path: Path) -> None:
    write_program(tmp_path, base_program(), name="one")
    write_program(tmp_path, base_program(), name="two")
    with pytest.raises(ValueError, match=re.escape("duplicate program ids: ['broken']")):
        load_programs(tmp_path)

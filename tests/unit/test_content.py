"""The nurture content marketers edit: program YAML and the email templates.

Every step of every shipped program is rendered in both locales for a complete lead, a
lead who left every optional field blank and a lead whose profile carries markup, and
the program files are walked through the engine to prove each flow does what its
comment says. Broken program files must fail to load with a message naming the problem.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2 import meta, nodes

from infra.cli.content import link_tags, unknown_links
from shared.domain import nurture
from shared.domain.customers import Purchase, adding, load_customers
from shared.domain.email import (
    EMAIL_DIR,
    FORM_LABELS,
    LOCALES,
    EmailRenderer,
    RenderedEmail,
    SenderProfile,
    load_assets,
)
from shared.domain.events import load_events
from shared.domain.leads import ConsentState, Enrolment, FormType, Lead, Stage, Touch
from shared.domain.machine_engagement import load_engagement_rules, tracked_links
from shared.domain.programs import (
    ENDINGS,
    EXIT,
    ContentType,
    Engagement,
    Program,
    Step,
    load_programs,
)
from shared.services.capture import RequestInfo, touch_of
from shared.web.submission import FormSubmission

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
EVENTS = load_events()
RENDERER = EmailRenderer(SENDER, events=EVENTS)
NURTURE = [p for p in CATALOG.programs if p.kind == "nurture"]
# An event program's steps are rendered for this event (an online one; the event tests
# render every event of events.yaml).
SAMPLE_EVENT = next(e for e in EVENTS.events if e.online)


def render(
    program: Program, step: Step, lead: Lead, variant: int = 0, **kwargs: Any
) -> RenderedEmail:
    """The step for the lead, as the sender renders it (an event program's for an event)."""
    event = SAMPLE_EVENT if program.kind == "event" else None
    return RENDERER.render(lead, program, step, variant, UNSUBSCRIBE, event=event, **kwargs)


def make_lead(
    locale: str = "ja",
    stage: Stage = Stage.LEAD,
    profile: dict[str, str] | None = None,
    touch: Touch | None = None,
    first_touch: Touch | None = None,
) -> Lead:
    touch = touch or Touch(at=NOW, form_type=FormType.DOWNLOAD)
    return Lead(
        lead_id="0f8e1c2d3b4a59687766554433221100",
        email="taro.yamada@example.co.jp",
        locale=locale,
        stage=stage,
        consent=ConsentState(opted_in=True, at=NOW, wording_version="2026-01"),
        first_touch=first_touch or touch,
        last_touch=touch,
        enrolment=Enrolment(program_id="welcome", enrolled_at=touch.at),  # by that post
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
    return [render(program, step, lead, v) for v in range(step.variants)]


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


TRAP_TAGS = f"link:{load_engagement_rules().trap_link};"


def test_the_renderer_knows_the_trap_link_the_rules_name() -> None:
    from shared.domain.email import TRAP_TAGS as RENDERER_TRAP

    assert f'ses:tags="{TRAP_TAGS}"' == RENDERER_TRAP


def site_links_in_html(html: str) -> list[dict[str, str | None]]:
    """The links a reader sees (the hidden trap link is for scanners only)."""
    return [
        a
        for a in _Html(html).anchors
        if (a.get("href") or "").startswith(SITE)
        and a.get("href") != SENDER.privacy_url
        and a.get("ses:tags") != TRAP_TAGS
    ]


def site_links_in_text(text: str) -> set[str]:
    urls = set(re.findall(r"https?://\S+", text))
    return {u for u in urls if u.startswith(SITE) and u != SENDER.privacy_url}


# -- the program files ------------------------------------------------------------------


def test_the_shipped_programs_load_with_their_ids_priorities_and_segments() -> None:
    summary = {p.id: (p.priority, set(p.entry.stages)) for p in NURTURE}
    assert summary == {
        "welcome": (10, {Stage.LEAD}),
        "re_engagement": (20, {Stage.DORMANT, Stage.LOST}),
        "customer_care": (25, {Stage.CUSTOMER}),
        "customer": (30, {Stage.CUSTOMER}),
    }
    # and the event programs, which only a registration starts, for any stage
    events = {p.id: (set(p.entry.stages), set(p.exit.stages)) for p in CATALOG.programs}
    assert {k: v for k, v in events.items() if k not in summary} == {
        "event": (set(), set()),
        "event_waitlist": (set(), set()),
        "event_cancelled": (set(), set()),
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


@pytest.mark.parametrize("program", NURTURE, ids=lambda p: p.id)
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


@pytest.mark.parametrize("program", NURTURE, ids=lambda p: p.id)
def test_programs_send_on_japanese_business_days_in_business_hours(program: Program) -> None:
    window = program.send_window
    assert window.timezone == "Asia/Tokyo"
    assert set(window.weekdays) <= {"mon", "tue", "wed", "thu", "fri"}
    assert window.skip_public_holidays
    assert window.skip_new_year_holidays
    assert time(8, 0) <= window.start < window.end <= time(19, 0)


# -- the flows, walked through the engine ------------------------------------------------


# How the lead reacts to a step: it opens it, clicks a link whose tags do not matter
# (CLICKED), or clicks the links with these tags (a tuple).
Reaction = Engagement | tuple[str, ...]


def walk(
    program: Program, engaged: Mapping[str, Reaction], lead: Lead | None = None
) -> list[tuple[str, datetime]]:
    """Run an enrolment to its end; the lead engages an hour after each step it names.

    Steps that do not fit the lead are skipped as the sender skips them. Returns the
    steps sent, in order, with their send times.
    """
    lead = lead or make_lead()
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
        reason = nurture.skip_reason(lead, step)
        if reason is not None:
            enrolment = nurture.skip(enrolment, program, step, now, reason)
            continue
        enrolment = nurture.after_send(enrolment, program, step, now, "A", None)
        sent.append((step.id, now))
        reaction = engaged.get(step.id)
        if reaction is None:
            continue
        at = now + timedelta(hours=1)
        enrolment = nurture.record_engagement(enrolment, program, step.id, Engagement.OPENED, at)
        if reaction is not Engagement.OPENED:
            links = reaction if isinstance(reaction, tuple) else ()
            enrolment = nurture.record_engagement(
                enrolment, program, step.id, Engagement.CLICKED, at, links
            )
    return sent


def ids(sent: list[tuple[str, datetime]]) -> list[str]:
    return [step_id for step_id, _ in sent]


def test_welcome_sends_the_reminder_only_to_leads_who_did_not_open_the_whitepaper() -> None:
    program = CATALOG.programs[0]
    assert program.id == "welcome"
    unopened = walk(program, {})
    opened = walk(program, {"whitepaper": Engagement.OPENED})
    clicked = walk(program, {"whitepaper": ("whitepaper",)})

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


def test_only_a_click_on_the_guide_itself_decides_the_whitepaper_branch_at_once() -> None:
    program = CATALOG.programs[0]
    elsewhere = walk(program, {"whitepaper": Engagement.CLICKED})
    assert "whitepaper_reminder" not in ids(elsewhere)  # the click proves the open
    assert dict(elsewhere)["seminar_invitation"] == dict(elsewhere)["whitepaper"] + timedelta(
        days=5 + 3
    )


def _with_forms(lead: Lead, first: FormType, last: FormType) -> Lead:
    return lead.model_copy(
        update={
            "first_touch": Touch(at=NOW, form_type=first),
            "last_touch": Touch(at=NOW, form_type=last),
        }
    )


@pytest.mark.parametrize(
    ("first", "last"),
    [
        pytest.param(FormType.TRIAL, FormType.TRIAL, id="came in through the trial form"),
        pytest.param(FormType.DOWNLOAD, FormType.TRIAL, id="applied for a trial later"),
        pytest.param(FormType.TRIAL, FormType.SEMINAR_REGISTRATION, id="trial first"),
    ],
)
def test_welcome_does_not_offer_a_trial_to_a_lead_who_applied_for_one(
    first: FormType, last: FormType
) -> None:
    program = CATALOG.programs[0]
    trial = _with_forms(make_lead(), first, last)
    assert ids(walk(program, {"whitepaper": ("whitepaper",)}, trial)) == [
        "welcome",
        "case_study",
        "whitepaper",
        "seminar_invitation",
    ]
    downloads = _with_forms(make_lead(), FormType.DOWNLOAD, FormType.SEMINAR_REGISTRATION)
    assert ids(walk(program, {}, downloads))[-1] == "free_trial"


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


def customer_with(*purchases: tuple[int, str]) -> Lead:
    """A customer who bought (yen, product) ``purchases`` in the last month, ranked."""
    lead = make_lead(stage=Stage.CUSTOMER)
    if not purchases:
        return lead
    today = NOW.date()
    summary = None
    for day, (amount, product) in enumerate(purchases):
        bought = Purchase(date=today - timedelta(days=day), amount=amount, product=product)
        summary = adding(summary, bought, today)
    assert summary is not None
    rank = load_customers().rank(summary, None, today)
    return lead.model_copy(update={"purchases": summary, "rank": rank})


@pytest.mark.parametrize(
    ("purchases", "segment", "expected"),
    [
        # Won by sales, no purchase recorded: the general path.
        ((), None, ["onboarding_tips", "success_story", "upsell"]),
        (
            (
                ((300_000, "standard"),),
                "new",
                ["onboarding_tips", "success_story", "cross_sell", "upsell"],
            )
        ),
        (
            ((400_000, "standard"),) * 4 + ((400_000, "enterprise"),),
            "loyal",
            ["success_story", "loyalty_offer", "referral_request", "cross_sell"],
        ),
        (((50_000, "enterprise"), (50_000, "enterprise")), "stable", ["success_story"]),
    ],
)
def test_the_customer_program_branches_by_segment_and_products_owned(
    purchases: tuple[tuple[int, str], ...], segment: str | None, expected: list[str]
) -> None:
    program = CATALOG.get("customer")
    assert program is not None
    lead = customer_with(*purchases)
    assert (lead.rank.segment if lead.rank else None) == segment
    sent = walk(program, {}, lead)
    assert ids(sent) == expected
    assert sent[0][1] == NOW + timedelta(days=7 + (0 if "onboarding_tips" in expected else 14))


@pytest.mark.parametrize(
    ("purchases", "expected"),
    [
        ((), []),
        (((400_000, "standard"),) * 5, ["loyalty_offer", "referral_request"]),
    ],
)
def test_the_care_program_writes_to_loyal_customers_and_checks_in_on_the_others(
    purchases: tuple[tuple[int, str], ...], expected: list[str]
) -> None:
    program = CATALOG.get("customer_care")
    assert program is not None
    assert ids(walk(program, {}, customer_with(*purchases))) == expected
    at_risk = customer_with((1000, "standard"))
    assert at_risk.rank is not None
    at_risk = at_risk.model_copy(
        update={"rank": at_risk.rank.model_copy(update={"segment": "at_risk"})}
    )
    assert ids(walk(program, {}, at_risk)) == ["check_in"]


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
    email = render(program, step, make_lead(locale, profile=FULL))
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


@pytest.mark.parametrize(("program", "step", "locale"), CASES)
def test_every_email_carries_one_hidden_trap_link_that_only_a_machine_follows(
    program: Program, step: Step, locale: str
) -> None:
    email = render(program, step, make_lead(locale, profile=FULL))
    traps = [a for a in _Html(email.html).anchors if a.get("ses:tags") == TRAP_TAGS]
    assert len(traps) == 1
    # Out of sight and out of reach: no keyboard focus, inside a hidden, aria-hidden block
    assert traps[0]["tabindex"] == "-1"
    hidden = re.search(
        r'<div style="display:none;[^"]*" aria-hidden="true"><a [^>]*link:trap;[^>]*>', email.html
    )
    assert hidden is not None
    # and absent from the text part, whose links no scanner is tracked through
    assert traps[0]["href"] not in site_links_in_text(email.text)
    # and, rendered for sending, it carries no lead reference for a scanner to exchange
    sent = render(program, step, make_lead(locale), site_ref="ref.sig")
    (sent_trap,) = [a for a in _Html(sent.html).anchors if a.get("ses:tags") == TRAP_TAGS]
    assert "lnr=" not in (sent_trap["href"] or "")
    assert all("lnr=ref.sig" in (a["href"] or "") for a in site_links_in_html(sent.html))
    # SES tracks it with the reader's links (a webinar's join link too): the burst rule
    # counts them all
    joins = {a["href"] for a in _Html(email.html).anchors if a.get("ses:tags") == "link:join;"}
    site = {a["href"] for a in site_links_in_html(email.html)}
    assert tracked_links(email.html) == len(site | joins) + 1


CONTENT_LINK = {
    ContentType.CASE_STUDY: "link:case_study;",
    ContentType.WHITEPAPER: "link:whitepaper;",
    ContentType.SEMINAR_INVITATION: "link:seminar;",
    ContentType.FREE_TRIAL: "link:trial;",
    ContentType.ONBOARDING: "link:guide;",
    ContentType.SUCCESS_STORY: "link:case_study;",
    ContentType.CROSS_SELL: "link:options;",
    ContentType.UPSELL: "link:pricing;",
    ContentType.CONTENT_ROUNDUP: "link:resources;",
    ContentType.SUNSET_NOTICE: "link:keep_subscribing;",
    ContentType.EVENT_CONFIRMATION: "link:event;",
    ContentType.EVENT_WAITLIST: "link:event;",
    ContentType.EVENT_REMINDER: "link:event;",
    ContentType.EVENT_FOLLOW_UP: "link:meeting;",
    ContentType.EVENT_RECORDING: "link:recording;",
}


@pytest.mark.parametrize(
    ("program", "step", "locale"),
    cases(CONTENT_LINK),
)
def test_each_mail_links_to_what_its_content_type_promises(
    program: Program, step: Step, locale: str
) -> None:
    email = render(program, step, make_lead(locale))
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


# -- branches on a link ------------------------------------------------------------------


@pytest.mark.parametrize("program", CATALOG.programs, ids=lambda p: p.id)
def test_branches_name_only_links_that_the_email_they_read_has(program: Program) -> None:
    assert unknown_links(program, EMAIL_DIR) == []


def test_the_shipped_content_branches_on_a_link_and_skips_a_step_somewhere() -> None:
    steps = [s for p in CATALOG.programs for s in p.steps]
    assert any(r.links for s in steps if s.branch for r in s.branch.rules)
    assert any(s.skip_if or s.only_if for s in steps)


def test_a_branch_on_a_link_the_email_does_not_have_is_reported() -> None:
    document = base_program()
    rule = document["steps"][1]["branch"]["rules"][0]
    rule["links"] = ["whitepaper", "pricing"]  # the whitepaper email links the guide only
    assert unknown_links(Program.model_validate(document), EMAIL_DIR) == [
        "broken/second: whitepaper.ja.html has no link 'pricing'",
        "broken/second: whitepaper.en.html has no link 'pricing'",
    ]
    rule["step"] = "first"  # the welcome email, which does link the pricing page
    rule["links"] = ["pricing"]
    assert unknown_links(Program.model_validate(document), EMAIL_DIR) == []


def test_link_tags_reads_every_tag_of_a_tracked_anchor(tmp_path: Path) -> None:
    source = '<a ses:tags="link:pricing;">a</a><a ses:tags="campaign:x;link:trial;">b</a>'
    (tmp_path / "probe.ja.html").write_text(source, encoding="utf-8")
    assert link_tags("probe", "ja", tmp_path) == {"pricing", "trial"}


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


def _shape(value: Any) -> Any:
    """A dict's keys, each with the shape of its value; None for anything else."""
    return {k: _shape(v) for k, v in value.items()} if isinstance(value, dict) else None


def _context_shape() -> dict[str, Any]:
    """The variables the renderer defines, and the keys of each dict among them."""
    program = CATALOG.programs[0]
    context = RENDERER.context(make_lead(), "ja", program, program.steps[0], UNSUBSCRIBE)
    # and what an event program's steps see besides
    event_program = CATALOG.get("event")
    assert event_program is not None
    context |= RENDERER.context(
        make_lead(), "ja", event_program, event_program.steps[0], UNSUBSCRIBE, SAMPLE_EVENT
    )
    context["subject"] = ""
    shape: dict[str, Any] = _shape(context)
    return shape


def _attribute_path(node: nodes.Node) -> list[str] | None:
    """``lead.first_touch.asset_title`` as ["lead", "first_touch", "asset_title"]."""
    attributes: list[str] = []
    while isinstance(node, nodes.Getattr):
        attributes.insert(0, node.attr)
        node = node.node
    return [node.name, *attributes] if isinstance(node, nodes.Name) else None


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
    # {% set came = lead.last_touch %}: came.<key> is checked against lead.last_touch.
    aliases: dict[str, Any] = {}
    for assign in tree.find_all(nodes.Assign):
        path = _attribute_path(assign.node)
        if isinstance(assign.target, nodes.Name) and path:
            aliases[assign.target.name] = path
    for node in tree.find_all(nodes.Getattr):
        path = _attribute_path(node)
        if path is None:
            continue
        if path[0] in aliases:
            path = [*aliases[path[0]], *path[1:]]
        current = shape.get(path[0])
        for depth, key in enumerate(path[1:], start=1):
            if not isinstance(current, dict):
                break  # a local variable, or a string's method
            assert key in current, f"{name}: {'.'.join(path[: depth + 1])}"
            current = current[key]


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


# -- the product name and why the lead came ------------------------------------------------


def welcome() -> tuple[Program, Step]:
    program = CATALOG.get("welcome")
    assert program is not None
    return program, program.step("welcome")


def visit(form_type: FormType, asset: str | None = None) -> Touch:
    return Touch(at=NOW, form_type=form_type, asset=asset, source="website")


def test_no_template_names_the_product_literally() -> None:
    # The product is the deployment's (sender.product_name in cdk.json), not the copy's.
    named = [p.name for p in EMAIL_DIR.iterdir() if "flowlane" in p.read_text("utf-8").lower()]
    assert named == []


@pytest.mark.parametrize(("program", "step", "locale"), CASES)
def test_every_email_names_the_configured_product(
    program: Program, step: Step, locale: str
) -> None:
    renderer = EmailRenderer(SENDER.model_copy(update={"product_name": "Tsumiki <β> & Co"}))
    event = SAMPLE_EVENT if program.kind == "event" else None
    email = renderer.render(
        make_lead(locale, profile=FULL), program, step, 0, UNSUBSCRIBE, event=event
    )
    # The subjects are program YAML, in the HTML's <title>; the bodies must not name it.
    body = re.sub(r"<title>.*?</title>", "", email.html)
    assert "flowlane" not in (body + email.text).lower()
    assert "Tsumiki <β> & Co" not in email.html
    if "Tsumiki" in email.html:
        assert "Tsumiki &lt;β&gt; &amp; Co" in email.html
        assert "Tsumiki <β> & Co" in email.text


def test_the_default_product_name_is_the_sample_product() -> None:
    program, step = welcome()
    for locale in LOCALES:
        email = RENDERER.render(make_lead(locale), program, step, 0, UNSUBSCRIBE)
        assert "Flowlane" in email.html
        assert "Flowlane" in email.text


def test_a_subject_can_name_the_product(tmp_path: Path) -> None:
    program = _broken_program(tmp_path, subject="{{ brand.product_name }}のご案内")
    _write_probe(tmp_path, "本文")
    renderer = EmailRenderer(SENDER.model_copy(update={"product_name": "Tsumiki"}), tmp_path)
    email = renderer.render(make_lead(), program, program.steps[0], 0, UNSUBSCRIBE)
    assert email.subject == "Tsumikiのご案内"


WELCOME_THANKS = [
    pytest.param(
        visit(FormType.DOWNLOAD, "dx-whitepaper-2026"),
        "このたびは、『DX推進ホワイトペーパー 2026』をダウンロードいただき、",
        "Thank you for downloading “DX Whitepaper 2026”.",
        id="download",
    ),
    pytest.param(
        visit(FormType.DOWNLOAD, "dx-guide-2026.pdf"),
        "このたびは、資料をダウンロードいただき、",
        "Thank you for downloading our materials.",
        id="download of an unknown asset",
    ),
    pytest.param(
        visit(FormType.DOWNLOAD),
        "このたびは、資料をダウンロードいただき、",
        "Thank you for downloading our materials.",
        id="download without an asset",
    ),
    pytest.param(
        visit(FormType.SEMINAR_REGISTRATION, "seminar-dx-basics"),
        "このたびは、セミナー『はじめてのワークフロー電子化（オンライン）』にお申し込みいただき、",
        "Thank you for registering for our seminar, “Getting Started with Digital Workflows",
        id="seminar",
    ),
    pytest.param(
        visit(FormType.SEMINAR_REGISTRATION, "seminar-unknown"),
        "このたびは、セミナーにお申し込みいただき、",
        "Thank you for registering for our seminar.",
        id="unknown seminar",
    ),
    pytest.param(
        visit(FormType.SEMINAR_ATTENDANCE, "seminar-case-study-night"),
        "先日は、セミナー『導入事例ナイト（会場）』にご参加いただき、",
        "Thank you for attending our seminar, “Customer Stories Night (in person)”.",
        id="seminar attendance",
    ),
    pytest.param(
        visit(FormType.INQUIRY),
        "このたびは、お問い合わせをいただき、誠にありがとうございます。",
        "Thank you for your inquiry.",
        id="inquiry",
    ),
    pytest.param(
        visit(FormType.TRIAL),
        "このたびは、Flowlaneの無料トライアルにお申し込みいただき、",
        "Thank you for signing up for a free trial of Flowlane.",
        id="trial",
    ),
    pytest.param(
        visit(FormType.NEWSLETTER),
        "このたびは、メールマガジンにご登録いただき、",
        "Thank you for subscribing to our newsletter.",
        id="newsletter",
    ),
    pytest.param(
        # An imported list or a generic contact form: nothing specific to thank for.
        visit(FormType.CONTACT),
        "このたびは、Flowlaneにご関心をお寄せいただき、",
        "Thank you for your interest in Flowlane.",
        id="no specific form",
    ),
]


@pytest.mark.parametrize(("touch", "ja", "en"), WELCOME_THANKS)
@pytest.mark.parametrize("profile", [FULL, {}], ids=["full", "blank"])
def test_the_welcome_thanks_the_lead_for_what_it_did(
    touch: Touch, ja: str, en: str, profile: dict[str, str]
) -> None:
    program, step = welcome()
    for locale, expected in (("ja", ja), ("en", en)):
        email = RENDERER.render(
            make_lead(locale, profile=profile, touch=touch), program, step, 0, UNSUBSCRIBE
        )
        assert _Html(email.html).errors == []
        for part in (email.html, email.text):
            assert expected in part.replace("\n", ""), (locale, part)
            for wrong in ("None", "『』", "“”", "  ."):
                assert wrong not in part
        if touch.asset:
            # An id is never shown, known or not (a link's URL may hold it).
            assert touch.asset not in re.sub(r"<[^>]*>", "", email.html)
            assert touch.asset not in re.sub(r"https://\S+", "", email.text)
        assert not re.search(r"(^|\n)[ \u3000]*[、。]", email.text)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_welcome_links_to_the_asset_page_tracked_in_both_parts(locale: str) -> None:
    program, step = welcome()
    touch = visit(FormType.DOWNLOAD, "dx-whitepaper-2026")
    email = RENDERER.render(make_lead(locale, touch=touch), program, step, 0, UNSUBSCRIBE)
    url = f"{SITE}/resources/dx-whitepaper-2026/?utm_source=nurture&utm_medium=email"
    url += "&utm_campaign=welcome&utm_content=welcome"
    assert {"href": url, "ses:tags": "link:asset;", "style": "color:#1d4ed8;"} in _Html(
        email.html
    ).anchors
    assert url in site_links_in_text(email.text)
    assert site_links_in_text(email.text) == {a["href"] for a in site_links_in_html(email.html)}


def test_the_asset_a_form_names_is_kept_on_its_touch() -> None:
    submission = FormSubmission.model_validate(
        {"email": "a@example.co.jp", "form_type": "download", "asset": "dx-whitepaper-2026"}
    )
    assert touch_of(submission, NOW, RequestInfo()).asset == "dx-whitepaper-2026"


def test_the_welcome_answers_the_latest_form_not_the_first() -> None:
    program, step = welcome()
    lead = make_lead(
        touch=visit(FormType.SEMINAR_REGISTRATION, "seminar-dx-basics"),
        first_touch=visit(FormType.DOWNLOAD, "dx-whitepaper-2026"),
    )
    email = RENDERER.render(lead, program, step, 0, UNSUBSCRIBE)
    assert "セミナー『はじめてのワークフロー電子化（オンライン）』にお申し込み" in email.text
    assert "ダウンロードいただき" not in email.text


def test_a_lead_sent_back_to_nurturing_is_not_thanked_again_for_its_old_form() -> None:
    # Given an inquiry lead that sales rejected, re-enrolled in welcome a month later
    program, step = welcome()
    lead = make_lead(touch=visit(FormType.INQUIRY, None))
    later = Enrolment(program_id="welcome", enrolled_at=NOW + timedelta(days=30))
    email = RENDERER.render(
        lead.model_copy(update={"enrolment": later}), program, step, 0, UNSUBSCRIBE
    )

    # Then the welcome is the neutral one, not a thank-you for the inquiry
    assert "お問い合わせをいただき" not in email.text
    assert "ご関心をお寄せいただき" in email.text
    # while the same lead enrolled by the inquiry itself is thanked for it
    fresh = RENDERER.render(lead, program, step, 0, UNSUBSCRIBE)
    assert "お問い合わせをいただき" in fresh.text


def test_markup_in_an_asset_id_is_never_rendered() -> None:
    program, step = welcome()
    for form_type in (FormType.DOWNLOAD, FormType.SEMINAR_REGISTRATION):
        touch = visit(form_type, "<b>{{ 7*7 }}</b>")
        email = RENDERER.render(make_lead(touch=touch), program, step, 0, UNSUBSCRIBE)
        assert "&lt;b&gt;" not in email.html
        assert "<b>" not in email.text
        for part in (email.html, email.text):
            assert "7*7" not in part


def test_templates_see_both_touches_with_labels_and_titles() -> None:
    program, step = welcome()
    lead = make_lead(
        "en",
        touch=visit(FormType.SEMINAR_REGISTRATION, "seminar-dx-basics"),
        first_touch=Touch(at=NOW, form_type=FormType.DOWNLOAD, asset="nope"),
    )
    view = RENDERER.context(lead, "en", program, step, UNSUBSCRIBE)["lead"]
    assert view["first_touch"] == {
        "form_type": "download",
        "form_label": "Download",
        "asset_id": "nope",
        "asset_title": "",
        "asset_url": "",
        "source": "",
    }
    assert view["last_touch"] == {
        "form_type": "seminar_registration",
        "form_label": "Seminar registration",
        "asset_id": "seminar-dx-basics",
        "asset_title": "Getting Started with Digital Workflows (online)",
        "asset_url": f"{SITE}/seminars/dx-basics/",
        "source": "website",
    }


def test_every_form_type_has_a_label_in_every_locale() -> None:
    assert set(FORM_LABELS) == set(FormType)
    for labels in FORM_LABELS.values():
        assert set(labels) == set(LOCALES)
        assert all(labels.values())
    assert FORM_LABELS[FormType.DOWNLOAD]["ja"] == "資料ダウンロード"
    assert FORM_LABELS[FormType.SEMINAR_REGISTRATION]["ja"] == "セミナー申込"


# -- the asset titles ----------------------------------------------------------------------

SAMPLE_SITE = Path(__file__).parents[2] / "infra" / "local" / "console" / "templates" / "site.html"


def _sample_site_assets() -> dict[str, str]:
    """Asset id -> the label the console's sample site shows for it."""
    html = SAMPLE_SITE.read_text(encoding="utf-8")
    offered: dict[str, str] = {}
    for select in re.findall(r'<select name="asset">(.*?)</select>', html, re.DOTALL):
        offered |= dict(re.findall(r'<option value="([^"]+)">([^<]+)</option>', select))
    return offered


def test_every_asset_the_sample_site_offers_has_a_title_as_the_site_names_it() -> None:
    offered = _sample_site_assets()
    assert len(offered) >= 4
    assets = load_assets()
    assert set(offered) <= set(assets)
    for asset_id, label in offered.items():
        assert assets[asset_id].ja == label
        assert assets[asset_id].en


def test_asset_urls_are_site_paths_or_https() -> None:
    for asset in load_assets().values():
        assert asset.url == "" or asset.url.startswith(("/", "https://"))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param("x:\n  ja: 資料\n", "en", id="no English title"),
        pytest.param("x:\n  ja: 資料\n  en: ''\n", "at least 1 character", id="empty"),
        pytest.param('x:\n  ja: "資料\\n第2版"\n  en: Guide\n', "one line", id="two lines"),
        pytest.param("x:\n  ja: 資料\n  en: Guide\n  url: /dl/?id=1\n", "without ?", id="query"),
        pytest.param("x:\n  ja: 資料\n  en: Guide\n  url: http://x.jp/\n", "https", id="http"),
        pytest.param("x:\n  ja: 資料\n  en: Guide\n  url: //x.jp/a\n", "site path", id="//"),
        pytest.param("x:\n  ja: 資料\n  en: Guide\n  titel: x\n", "titel", id="misspelt key"),
        pytest.param("- x\n", "dict", id="a list"),
    ],
)
def test_a_broken_assets_file_fails_to_load_naming_the_problem(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        load_assets(path)
    assert str(caught.value).startswith("assets.yaml: ")


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


def _links(doc: dict[str, Any], *links: str, when: str = "clicked") -> None:
    doc["steps"][1]["branch"]["rules"][0].update(links=list(links), when=when)


def _skip_if(doc: dict[str, Any], condition: dict[str, Any], key: str = "skip_if") -> None:
    doc["steps"][3][key] = condition


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
        pytest.param(
            lambda d: _links(d, "link:whitepaper"),
            "write the link tag without 'link:': 'whitepaper'",
            id="link prefix",
        ),
        pytest.param(
            lambda d: _links(d, "White Paper"), "not a link tag: 'White Paper'", id="link syntax"
        ),
        pytest.param(
            lambda d: _links(d, "whitepaper", when="opened"),
            "links only go with clicked or not_clicked, not opened",
            id="links on an open",
        ),
        pytest.param(lambda d: _links(d), "name at least one link tag", id="no links"),
        pytest.param(
            lambda d: _skip_if(d, {"form_types": ["trail"]}),
            "steps.3.skip_if.form_types.0",
            id="unknown form type",
        ),
        pytest.param(
            lambda d: _skip_if(d, {"stages": ["customers"]}, key="only_if"),
            "steps.3.only_if.stages.0",
            id="unknown stage",
        ),
        pytest.param(
            lambda d: _skip_if(d, {"temperatures": ["hot"]}),
            "steps.3.skip_if.temperatures",
            id="no temperature for a step",
        ),
        pytest.param(
            lambda d: _skip_if(d, {"form_type": ["trial"]}),
            "steps.3.skip_if.form_type",
            id="misspelt key",
        ),
        pytest.param(
            lambda d: _skip_if(d, {}), "name at least one of stages, form_types", id="empty"
        ),
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


@pytest.mark.parametrize("locale", LOCALES)
def test_the_seminar_invitation_names_the_next_event_and_links_to_its_page(locale: str) -> None:
    program = CATALOG.get("welcome")
    assert program is not None
    step = program.step("seminar_invitation")
    assert step.invite == "next"
    lead = make_lead(locale, profile=FULL)
    named = RENDERER.render(lead, program, step, 0, UNSUBSCRIBE, event=SAMPLE_EVENT)
    general = RENDERER.render(lead, program, step, 0, UNSUBSCRIBE)
    page = f"{SITE}{SAMPLE_EVENT.page}"
    for part in (named.html, named.text):
        assert SAMPLE_EVENT.title.text(locale) in part
        assert SAMPLE_EVENT.when(locale) in part
        assert page in part
    assert SAMPLE_EVENT.title.text(locale) not in general.html + general.text
    assert page not in general.html + general.text
    (button,) = [a for a in site_links_in_html(named.html) if a.get("ses:tags") == "link:seminar;"]
    assert (button["href"] or "").startswith(page + "?utm_source=nurture")

"""Check and preview the content marketers edit: programs, scoring rules, asset titles,
templates, the list import's column dictionary."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.config import DeploymentConfig
from shared.domain.customers import CustomerRules, load_customers
from shared.domain.email import (
    LOCALES,
    Asset,
    EmailRenderer,
    RenderedEmail,
    SenderProfile,
    load_assets,
)
from shared.domain.events import NEXT, Event, EventCatalog, Localized, load_events
from shared.domain.leads import ConsentState, Enrolment, FormType, Lead, Touch
from shared.domain.lists import load_columns
from shared.domain.machine_engagement import load_engagement_rules
from shared.domain.programs import CONTENT_DIR, Program, ProgramCatalog, load_programs
from shared.domain.scoring import load_scoring

NOW = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
PREVIEW_UNSUBSCRIBE = "https://api.example.com/v1/unsubscribe?t=PREVIEW"
PREVIEW_CANCEL = "https://api.example.com/v1/events/cancel?e=PREVIEW&t=PREVIEW"
SAMPLE_PROFILES: dict[str, dict[str, str]] = {
    "full": {
        "family_name": "山田",
        "given_name": "太郎",
        "name": "山田 太郎",
        "company": "株式会社サンプル商事",
        "department": "情報システム部",
        "job_title": "部長",
        "industry": "製造業",
        "company_size": "100〜299名",
        "prefecture": "東京都",
    },
    "blank": {},
    "hostile": {"name": "<script>alert(1)</script>\"&'", "company": "<b>{{ 7*7 }}</b>"},
}
# The form each sample lead came through: a known asset, none, and one assets.yaml lacks,
# so validation takes each branch of a template that names the asset.
SAMPLE_TOUCHES: dict[str, Touch] = {
    "full": Touch(at=NOW, form_type=FormType.DOWNLOAD, asset="dx-whitepaper-2026"),
    "blank": Touch(at=NOW, form_type=FormType.CONTACT),
    "hostile": Touch(at=NOW, form_type=FormType.SEMINAR_REGISTRATION, asset="<b>{{ 7*7 }}</b>"),
}


# Event programs are rendered for each event of events.yaml, and for these: one online,
# one at a venue, whatever the file holds.
SAMPLE_EVENTS = (
    Event(
        id="sample-webinar",
        title=Localized(ja="サンプルウェビナー", en="Sample webinar"),
        start=datetime(2026, 2, 5, 5, 0, tzinfo=UTC),
        end=datetime(2026, 2, 5, 6, 0, tzinfo=UTC),
        url="https://webinar.example.com/j/1",
        page="/seminars/sample-webinar/",
    ),
    Event(
        id="sample-seminar",
        title=Localized(ja="サンプルセミナー", en="Sample seminar"),
        start=datetime(2026, 2, 5, 9, 30, tzinfo=UTC),
        end=datetime(2026, 2, 5, 11, 30, tzinfo=UTC),
        venue=Localized(ja="東京都千代田区（会場）", en="Chiyoda-ku, Tokyo (venue)"),
        capacity=30,
        page="https://events.example.com/sample-seminar",
    ),
)


@dataclass(frozen=True)
class ContentPaths:
    programs: Path
    email: Path
    scoring: Path
    assets: Path
    engagement: Path
    import_columns: Path
    events: Path
    customers: Path

    @classmethod
    def under(cls, directory: Path | None) -> ContentPaths:
        root = directory or CONTENT_DIR
        return cls(
            root / "programs",
            root / "email",
            root / "scoring.yaml",
            root / "assets.yaml",
            root / "engagement.yaml",
            root / "import_columns.yaml",
            root / "events.yaml",
            root / "customers.yaml",
        )


def sample_lead(locale: str = "ja", profile: str = "full") -> Lead:
    touch = SAMPLE_TOUCHES[profile]
    return Lead(
        lead_id="0f8e1c2d3b4a59687766554433221100",
        email="taro.yamada@example.co.jp",
        locale=locale,
        consent=ConsentState(opted_in=True, at=NOW, wording_version="2026-01"),
        first_touch=touch,
        last_touch=touch,
        # enrolled by that post, as capture enrols: the welcome thanks it
        enrolment=Enrolment(program_id="welcome", enrolled_at=touch.at),
        created_at=NOW,
        updated_at=NOW,
        **SAMPLE_PROFILES[profile],
    )


def deployment_config(cdk_json: Path = Path("cdk.json")) -> DeploymentConfig:
    """The ``lead-nurture`` block of ``cdk.json`` in the working directory, else defaults."""
    return DeploymentConfig.from_cdk_json(cdk_json)


def sender_profile(cdk_json: Path = Path("cdk.json")) -> SenderProfile:
    """The deployment's sender, as the sender function gets it."""
    return SenderProfile(**deployment_config(cdk_json).sender.model_dump())


@dataclass(frozen=True)
class Validation:
    errors: tuple[str, ...]
    programs: int = 0
    steps: int = 0
    renders: int = 0


def validate(paths: ContentPaths, sender: SenderProfile) -> Validation:
    """Load the scoring and machine-engagement rules, asset titles, the import's column
    dictionary and programs; render
    every step, variant and locale for a full, a blank and a hostile sample lead, each
    with the hidden trap link. Every problem is collected."""
    errors: list[str] = []
    groups: set[str] | None = None
    try:
        groups = set(load_scoring(paths.scoring).pages.groups)
    except (OSError, ValueError) as exc:
        errors.append(f"scoring: {exc}")
    trap: str | None = None
    try:
        trap = f'ses:tags="link:{load_engagement_rules(paths.engagement).trap_link};"'
    except (OSError, ValueError) as exc:
        errors.append(f"engagement: {exc}")
    assets: dict[str, Asset] = {}
    try:
        assets = load_assets(paths.assets)
    except (OSError, ValueError) as exc:
        errors.append(f"assets: {exc}")
    events = EventCatalog()
    try:
        events = load_events(paths.events)
    except (OSError, ValueError) as exc:
        errors.append(f"events: {exc}")
    try:
        load_columns(paths.import_columns)
    except (OSError, ValueError) as exc:
        errors.append(f"import columns: {exc}")
    customers: CustomerRules | None = None
    try:
        customers = load_customers(paths.customers)
    except (OSError, ValueError) as exc:
        errors.append(f"customers: {exc}")
    try:
        catalog = load_programs(paths.programs)
    except (OSError, ValueError) as exc:
        return Validation((*errors, f"programs: {exc}"))
    if not catalog.programs:
        errors.append(f"programs: no *.yaml in {paths.programs}")
    errors.extend(f"events: {problem}" for problem in event_problems(events, catalog))
    renderer = EmailRenderer(sender, paths.email, assets, events)
    renders = 0
    for program in catalog.programs:
        for step in program.steps:
            # An event program's steps for each event; an invitation also for none ahead.
            samples: tuple[Event | None, ...] = (None,)
            if program.kind == "event" or step.invite is not None:
                samples = (*SAMPLE_EVENTS, *events.events)
            if step.invite is not None:
                samples = (None, *samples)
            for locale in LOCALES:
                failed: set[str] = set()
                for profile in SAMPLE_PROFILES:
                    lead = sample_lead(locale, profile)
                    for variant in range(step.variants):
                        for event in samples:
                            try:
                                email = renderer.render(
                                    lead,
                                    program,
                                    step,
                                    variant,
                                    PREVIEW_UNSUBSCRIBE,
                                    event=event,
                                    cancel_url=PREVIEW_CANCEL,
                                )
                                renders += 1
                            except Exception as exc:  # any template error is a finding
                                failed.add(f"{type(exc).__name__}: {exc}")
                                continue
                            if trap is not None and trap not in email.html:
                                failed.add(f"no hidden link {trap} (engagement.yaml's trap_link)")
                errors.extend(
                    f"{program.id}/{step.id} ({locale}, template {step.template}): {problem}"
                    for problem in sorted(failed)
                )
    for program in catalog.programs:
        errors.extend(f"programs: {problem}" for problem in unknown_links(program, paths.email))
        if groups is not None:
            errors.extend(
                f"programs: {program.id} names page group {name}, which scoring.yaml's pages"
                " do not define"
                for name in sorted(program.page_groups() - groups)
            )
        if customers is not None:
            errors.extend(
                f"programs: {program.id} names customer {what} {name}, which customers.yaml "
                "does not define"
                for what, named, known in zip(
                    ("segment", "CPM label"),
                    program.customer_terms(),
                    (customers.segment_ids, tuple(c.id for c in customers.cpm)),
                    strict=True,
                )
                for name in sorted(named - set(known))
            )
    steps = sum(len(p.steps) for p in catalog.programs)
    return Validation(tuple(errors), len(catalog.programs), steps, renders)


def event_problems(events: EventCatalog, catalog: ProgramCatalog) -> list[str]:
    """Each event's programs exist and are event programs, and its reminders (steps timed
    before the start) come before the start and in the program's send window."""
    problems = [
        f"{program.id}/{step.id} invites to {step.invite!r}, which is not an event"
        for program in catalog.programs
        for step in program.steps
        if step.invite not in (None, NEXT) and events.get(step.invite) is None
    ]
    for event in events.events:
        for program_id in (event.program, event.waitlist_program, event.cancellation_program):
            program = catalog.get(program_id)
            if program is None or program.kind != "event":
                problems.append(f"{event.id}: {program_id!r} is not an event program")
                continue
            for step in program.steps:
                timing = step.timing
                if timing is None:
                    continue
                moment = timing.moment(event)
                if timing.before == "start" and moment >= event.start:
                    problems.append(f"{event.id}: {program_id}/{step.id} is not before the start")
                if not program.send_window.contains(moment):
                    problems.append(
                        f"{event.id}: {program_id}/{step.id} falls outside the send window"
                        f" ({moment.astimezone(event.zone):%Y-%m-%d %H:%M})"
                    )
    return problems


def link_tags(template: str, locale: str, directory: Path) -> set[str]:
    """The ``link`` tags of the template's tracked anchors (``ses:tags="link:<tag>;"``)."""
    source = (directory / f"{template}.{locale}.html").read_text(encoding="utf-8")
    return {
        tag
        for tags in re.findall(r'ses:tags="([^"]*)"', source)
        for tag in re.findall(r"(?:^|;)link:([^;]*)", tags)
    }


def unknown_links(program: Program, directory: Path) -> list[str]:
    """Tags that branch rules name but the email they read has no link with, per locale.

    A misspelt tag would be valid YAML and would never match a click: the lead would
    silently take another way.
    """
    problems = []
    for step in program.steps:
        for rule in step.branch.rules if step.branch else ():
            read = program.step(rule.step or step.id)
            for locale in LOCALES:
                found = link_tags(read.template, locale, directory)
                problems += [
                    f"{program.id}/{step.id}: {read.template}.{locale}.html has no link {tag!r}"
                    for tag in rule.links or ()
                    if tag not in found
                ]
    return problems


class PreviewError(Exception):
    pass


def render_step(
    catalog: ProgramCatalog,
    renderer: EmailRenderer,
    lead: Lead,
    program_id: str,
    step_id: str,
    variant: int = 0,
    event: Event | None = None,
) -> RenderedEmail:
    """One step for ``lead``; an event program's for ``event`` (else a sample event)."""
    program = catalog.get(program_id)
    if program is None:
        known = ", ".join(p.id for p in catalog.programs)
        raise PreviewError(f"no program {program_id!r} (programs: {known})")
    step = next((s for s in program.steps if s.id == step_id), None)
    if step is None:
        known = ", ".join(s.id for s in program.steps)
        raise PreviewError(f"program {program_id} has no step {step_id!r} (steps: {known})")
    if not 0 <= variant < step.variants:
        raise PreviewError(f"step {step_id} has variants 0..{step.variants - 1}")
    if program.kind != "event" and step.invite is None:
        event = None
    elif event is None and program.kind == "event":
        event = SAMPLE_EVENTS[0]
    return renderer.render(
        lead, program, step, variant, PREVIEW_UNSUBSCRIBE, event=event, cancel_url=PREVIEW_CANCEL
    )


def write_preview(rendered: RenderedEmail, step_id: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"{step_id}.{rendered.locale}.html"
    text = out / f"{step_id}.{rendered.locale}.txt"
    html.write_text(rendered.html, encoding="utf-8")
    text.write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    return [html, text]

"""Nurture programs as content.

A program is a YAML file under ``shared/content/programs`` that a marketer edits: which
segment it serves (entry), when a lead leaves it (exit), when it may send (send window)
and its ordered steps, each an email after a wait, optionally branching on how the lead
engaged with an earlier step (or with particular links in it) and optionally skipped for
leads it does not fit. Files are validated here when loaded and by the tests.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shared.domain.events import Event
from shared.domain.leads import FormType, Lead, Registration, Stage
from shared.domain.scoring import Temperature
from shared.domain.send_windows import WEEKDAYS, SendWindow
from shared.yamlfile import read_yaml

CONTENT_DIR = Path(__file__).parents[1] / "content"
PROGRAMS_DIR = CONTENT_DIR / "programs"


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntryRule(_Content):
    """Which leads a program serves; an empty list means "any"."""

    stages: tuple[Stage, ...] = (Stage.LEAD,)
    form_types: tuple[FormType, ...] = ()
    industries: tuple[str, ...] = ()
    company_sizes: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    # hot (今すぐ客), warm (お悩み客), cold (そのうち客): from score and grade.
    temperatures: tuple[Temperature, ...] = ()
    # Website page groups (scoring.yaml ``pages``): any one of them read.
    pages: tuple[str, ...] = ()
    # Customers: their segment and CPM label (customers.yaml).
    segments: tuple[str, ...] = ()
    cpm: tuple[str, ...] = ()

    def matches(
        self,
        lead: Lead,
        form_type: FormType | None,
        temperature: Temperature | None = None,
    ) -> bool:
        def allowed(rule: Sequence[object], value: object) -> bool:
            return not rule or value in rule

        return (
            allowed(self.stages, lead.stage)
            and allowed(self.form_types, form_type)
            and allowed(self.industries, lead.industry)
            and allowed(self.company_sizes, lead.company_size)
            and allowed(self.locales, lead.locale)
            and allowed(self.temperatures, temperature)
            and (not self.interests or bool(set(self.interests) & set(lead.interests)))
            and (not self.pages or bool(set(self.pages) & set(lead.page_groups)))
            and allowed(self.segments, segment_of(lead))
            and allowed(self.cpm, cpm_of(lead))
        )


def segment_of(lead: Lead) -> str | None:
    return lead.rank.segment if lead.rank is not None else None


def cpm_of(lead: Lead) -> str | None:
    return lead.rank.cpm if lead.rank is not None else None


_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(value: object) -> timedelta:
    """An ISO-8601 duration in weeks, days, hours, minutes, seconds (P3D, PT12H, P1W).

    Months and years are refused: their length depends on the calendar.
    """
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().upper()
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"not an ISO-8601 duration of weeks/days/hours/minutes: {value!r}")
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
StepId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)]
EXIT = "exit"
# Like exit, and the lead gets no more marketing email at all (the end of re-engagement).
SUNSET = "sunset"
ENDINGS = frozenset({EXIT, SUNSET})


class Engagement(StrEnum):
    OPENED = "opened"
    CLICKED = "clicked"
    NOT_OPENED = "not_opened"
    NOT_CLICKED = "not_clicked"


class ContentType(StrEnum):
    """What a step's email is, for the ``email_sent`` activity and reports by kind of mail.

    Values are stored on every send's activity: add new ones, never rename or remove.
    """

    NEWSLETTER = "newsletter"
    SEMINAR_INVITATION = "seminar_invitation"
    CASE_STUDY = "case_study"  # a prospect reads how another company did it
    WHITEPAPER = "whitepaper"
    FREE_TRIAL = "free_trial"
    WELCOME = "welcome"
    RE_ENGAGEMENT = "re_engagement"  # a dormant or lost lead is asked back
    CROSS_SELL = "cross_sell"  # add-ons next to the customer's plan
    UPSELL = "upsell"  # a larger plan
    ONBOARDING = "onboarding"  # how to get going, for a new customer
    SUCCESS_STORY = "success_story"  # how another customer got more out of it
    CONTENT_ROUNDUP = "content_roundup"  # several popular resources in one mail
    SUNSET_NOTICE = "sunset_notice"  # last call before marketing email stops
    WELCOME_BACK = "welcome_back"  # a re-engaged lead's next step
    # Customers by segment (customers.yaml):
    LOYALTY_OFFER = "loyalty_offer"  # a loyal customer's special offer
    REFERRAL_REQUEST = "referral_request"  # a loyal customer asked to introduce others
    CHECK_IN = "check_in"  # an at-risk or dormant customer asked how it goes
    # Event programs (shared/content/events.yaml):
    EVENT_CONFIRMATION = "event_confirmation"  # registered: the details and an .ics file
    EVENT_WAITLIST = "event_waitlist"  # the event was full: on the waiting list
    EVENT_REMINDER = "event_reminder"
    EVENT_FOLLOW_UP = "event_follow_up"  # attended: the materials and a meeting offer
    EVENT_RECORDING = "event_recording"  # registered and absent: the recording
    EVENT_CANCELLED = "event_cancelled"  # a registration cancelled: the calendar update


_LINK_TAG = re.compile(r"^[a-z0-9_]{1,40}$")


def _link_tag(value: str) -> str:
    if value.startswith("link:"):
        raise ValueError(f"write the link tag without 'link:': {value[5:]!r}")
    if not _LINK_TAG.match(value):
        raise ValueError(
            f"not a link tag: {value!r} (lowercase letters, digits and _, as in "
            'the template\'s ses:tags="link:<tag>;")'
        )
    return value


LinkTag = Annotated[str, AfterValidator(_link_tag)]


class BranchRule(_Content):
    """``if <step> was <when> go to <goto>``; ``step`` defaults to the step being sent.

    ``links`` narrows a click to the links tagged so in the template
    (``ses:tags="link:pricing;"``): ``clicked`` holds once one of them was clicked,
    ``not_clicked`` while none of them was.
    """

    when: Engagement
    goto: StepId
    step: StepId | None = None
    links: tuple[LinkTag, ...] | None = None

    @model_validator(mode="after")
    def _links(self) -> BranchRule:
        if self.links is None:
            return self
        if self.when not in (Engagement.CLICKED, Engagement.NOT_CLICKED):
            raise ValueError(f"links only go with clicked or not_clicked, not {self.when.value}")
        if not self.links:
            raise ValueError("links: name at least one link tag, or leave links out")
        return self


class Branch(_Content):
    """After a step is sent, wait up to ``wait_up_to`` for the engagement that decides.

    A click or open that satisfies a rule decides at once; otherwise, when the wait is
    over, the first matching rule wins, then ``otherwise`` (default: the next step).
    """

    wait_up_to: Duration
    rules: tuple[BranchRule, ...] = Field(min_length=1)
    otherwise: StepId | None = None


def form_types_of(lead: Lead) -> frozenset[FormType]:
    """The kinds of form the lead is known to have posted.

    The lead keeps its first and latest touch and the form of its latest opt-in, not
    every post, so a form posted between others may not be among them.
    """
    found = {lead.first_touch.form_type, lead.last_touch.form_type, lead.consent.form_type}
    return frozenset(f for f in found if f is not None)


class StepCondition(_Content):
    """Which leads a step's ``skip_if`` or ``only_if`` is about.

    As in an entry rule, any value in a list matches and every key given must match.
    There is no temperature here: the sender decides without the lead's score.
    """

    stages: tuple[Stage, ...] = ()
    # Any form the lead posted (see form_types_of), not only the one that enrolled it.
    form_types: tuple[FormType, ...] = ()
    industries: tuple[str, ...] = ()
    company_sizes: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    # Website page groups the lead has read (scoring.yaml ``pages``).
    pages: tuple[str, ...] = ()
    # Event programs: whether the lead attended the enrolment's event.
    attendance: tuple[Literal["attended", "absent"], ...] = ()
    # Customers: their segment and CPM label (customers.yaml), and the products they own
    # (any one of them bought).
    segments: tuple[str, ...] = ()
    cpm: tuple[str, ...] = ()
    products: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> StepCondition:
        # An empty condition would match every lead: a step nobody gets, or everybody.
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError("name at least one of " + ", ".join(type(self).model_fields))
        return self

    def hits(self, lead: Lead, registration: Registration | None = None) -> dict[str, list[str]]:
        """Per key given (named in the singular): the lead's values it lists, if any
        (``registration``: the lead's for the event of an event program's enrolment)."""
        attended = registration is not None and registration.attended_at is not None
        keys: dict[str, tuple[Sequence[object], Collection[object]]] = {
            "stage": (self.stages, {lead.stage}),
            "form_type": (self.form_types, form_types_of(lead)),
            "industry": (self.industries, {lead.industry}),
            "company_size": (self.company_sizes, {lead.company_size}),
            "interest": (self.interests, set(lead.interests)),
            "locale": (self.locales, {lead.locale}),
            "page": (self.pages, set(lead.page_groups)),
            "attendance": (self.attendance, {"attended" if attended else "absent"}),
            "segment": (self.segments, {segment_of(lead)}),
            "cpm": (self.cpm, {cpm_of(lead)}),
            "product": (self.products, set(lead.purchases.products if lead.purchases else ())),
        }
        return {
            name: [str(value) for value in rule if value in have]
            for name, (rule, have) in keys.items()
            if rule
        }

    def matches(self, lead: Lead, registration: Registration | None = None) -> bool:
        return all(self.hits(lead, registration).values())


class SendSlot(_Content):
    """When a variant is sent: one of ``weekdays`` at ``hour`` (the window's timezone)."""

    weekdays: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    hour: int = Field(ge=0, le=23)

    @field_validator("weekdays")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not set(value) <= set(WEEKDAYS):
            raise ValueError(f"weekdays must be some of {WEEKDAYS}, got {list(value)}")
        return value


class Experiment(_Content):
    """How a step's variants are given out and judged (``report experiments``).

    ``split`` gives each lead a variant by a hash of its id: equal shares. ``bandit``
    gives the next send the variant Thompson sampling picks from the results of the
    last ``window`` (unique human clicks, or MQLs within 14 days, per email sent), each
    variant keeping at least ``min_share`` of the sends. ``winner`` closes the test:
    every lead gets that variant. ``templates`` gives each variant its own template,
    ``send_times`` its own weekday and hour (None: the program's time); a variant's time
    is known when the step before is sent, so send times go with ``split`` only.
    """

    allocation: Literal["split", "bandit"] = "split"
    metric: Literal["clicks", "mql"] = "clicks"
    min_share: float = Field(default=0.1, ge=0, le=0.5)
    window: Duration = timedelta(days=28)
    winner: str | None = Field(default=None, pattern=r"^[A-Z]$")
    templates: tuple[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")], ...] = ()
    send_times: tuple[SendSlot | None, ...] = ()


class EventTiming(_Content):
    """When a step of an event program is due: ``by`` before or after the event's start
    or end, moved to ``at`` (the event's local time) on that day if given.

    ``{before: start, by: P1D, at: "10:00"}`` is the day before at 10:00;
    ``{before: start, by: PT2H}`` two hours before; ``{after: end, by: P1D, at: "10:00"}``
    the next morning.
    """

    before: Literal["start", "end"] | None = None
    after: Literal["start", "end"] | None = None
    by: Duration = timedelta(0)
    at: time | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        if isinstance(value, int | float):  # unquoted 10:00 is a number to YAML (base 60)
            raise ValueError('write the hour in quotes, e.g. "10:00"')
        return value

    @model_validator(mode="after")
    def _one_anchor(self) -> EventTiming:
        if (self.before is None) == (self.after is None):
            raise ValueError("timing names one of before: start|end or after: start|end")
        return self

    def moment(self, event: Event) -> datetime:
        anchor = event.start if (self.before or self.after) == "start" else event.end
        moment = anchor - self.by if self.before else anchor + self.by
        if self.at is None:
            return moment
        day = moment.astimezone(event.zone).date()
        return datetime.combine(day, self.at, tzinfo=event.zone)


class Step(_Content):
    id: StepId
    # Counted from entry for the first step, from the previous send (or decision) after.
    wait: Duration = timedelta(0)
    # Event programs: due at a time relative to the event instead (a registration after
    # that time skips the step).
    timing: EventTiming | None = None
    # Event programs: the event goes with the email as an .ics file.
    # ``cancel``: the update that takes it off the calendar (a cancellation's email).
    calendar: bool | Literal["cancel"] = False
    # Nurture programs: the event the email invites to (``event`` in the template), an id
    # of events.yaml or ``next``; None there when none is ahead. A lead registered for it
    # is not invited (the step is skipped).
    invite: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,59}$")
    template: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    content_type: ContentType
    # Subject lines per locale; several are A/B variants, assigned per lead.
    subject: dict[Literal["ja", "en"], tuple[str, ...]]
    branch: Branch | None = None
    # Checked when the step is due: a lead it does not fit moves on without the email.
    skip_if: StepCondition | None = None
    only_if: StepCondition | None = None
    experiment: Experiment = Experiment()

    @model_validator(mode="after")
    def _subjects(self) -> Step:
        if "ja" not in self.subject:
            raise ValueError(f"step {self.id}: a Japanese subject is required")
        counts = {len(v) for v in self.subject.values()}
        if 0 in counts or len(counts) != 1:
            raise ValueError(f"step {self.id}: every locale needs the same number of variants")
        experiment = self.experiment
        if experiment.templates and len(experiment.templates) != self.variants:
            raise ValueError(f"step {self.id}: experiment.templates needs one per variant")
        if experiment.winner is not None and ord(experiment.winner) - ord("A") >= self.variants:
            raise ValueError(f"step {self.id}: winner {experiment.winner} is not a variant")
        if experiment.min_share * self.variants > 1:
            raise ValueError(f"step {self.id}: min_share times the variants is over 1")
        if experiment.send_times and len(experiment.send_times) != self.variants:
            raise ValueError(f"step {self.id}: experiment.send_times needs one per variant")
        if experiment.send_times and experiment.allocation != "split":
            raise ValueError(f"step {self.id}: send_times need allocation split")
        if self.timing is not None and (self.wait or experiment.send_times):
            raise ValueError(f"step {self.id}: a step with a timing has no wait or send_times")
        return self

    @property
    def variants(self) -> int:
        return len(self.subject["ja"])

    def template_for(self, variant: int) -> str:
        templates = self.experiment.templates
        return templates[variant] if templates else self.template


class ExitRule(_Content):
    """Leads in these stages leave the program. Unsubscribed, bounced and complained
    leads always leave every program: that is the law and the sender's reputation."""

    stages: tuple[Stage, ...] = (Stage.MQL, Stage.SQL, Stage.CUSTOMER, Stage.LOST)


class Completion(_Content):
    """What finishing a program's steps (not sunset, not leaving it) does to the lead."""

    # Answering a re-engagement brings a dormant or lost lead back to nurturing.
    stage: Literal[Stage.LEAD]


# The stages a program's completion may move a lead out of.
RETURNING_STAGES = frozenset({Stage.DORMANT, Stage.LOST})


class SendTiming(_Content):
    """Send-time optimisation (``shared.domain.sendtime``): a lead with at least
    ``min_engagements`` opens and clicks gets its next email at its best hour and weekday
    inside the send window, at most ``max_delay`` after the program's time; a ``holdout``
    share of leads keeps the program's time, to measure the lift."""

    optimise: bool = False
    holdout: float = Field(default=0.2, ge=0, le=0.9)
    min_engagements: int = Field(default=3, ge=1)
    max_delay: Duration = timedelta(days=3)


class Program(_Content):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    description: str = ""
    # ``event``: the emails of an event's registrants (events.yaml names the program),
    # followed beside the nurture program; never chosen for a segment, exempt from the
    # frequency cap (the registrant asked for them).
    kind: Literal["nurture", "event"] = "nurture"
    # Lower runs first when several programs' entry rules match the same lead.
    priority: int = 100
    entry: EntryRule
    exit: ExitRule = ExitRule()
    send_window: SendWindow = SendWindow()
    send_time: SendTiming = SendTiming()
    steps: tuple[Step, ...] = Field(min_length=1)
    on_complete: Completion | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Program:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids) or ENDINGS & set(ids):
            raise ValueError(f"program {self.id}: step ids must be unique and not exit/sunset")
        for step in self.steps:
            if step.branch is None:
                continue
            targets = [r.goto for r in step.branch.rules] + [step.branch.otherwise or EXIT]
            sources = [r.step for r in step.branch.rules if r.step]
            for target in targets:
                if target not in ENDINGS and target not in ids:
                    raise ValueError(f"step {step.id}: unknown goto target {target!r}")
                # Forward only: each step is sent at most once per enrolment.
                if target not in ENDINGS and ids.index(target) <= ids.index(step.id):
                    raise ValueError(f"step {step.id}: goto {target!r} does not move forward")
            for source in sources:
                if source not in ids[: ids.index(step.id) + 1]:
                    raise ValueError(f"step {step.id}: rule reads {source!r}, not sent before")
        event_only = [s.id for s in self.steps if s.timing is not None or s.calendar]
        if self.kind != "event" and event_only:
            raise ValueError(
                f"program {self.id}: timing and calendar are for event programs: {event_only}"
            )
        inviting = [s.id for s in self.steps if s.invite is not None]
        if self.kind == "event" and inviting:
            raise ValueError(f"program {self.id}: invite is for nurture programs: {inviting}")
        if self.kind == "event" and (self.on_complete or self.send_time.optimise):
            raise ValueError(f"program {self.id}: an event program has no on_complete or send_time")
        overlap = set(self.entry.stages) & set(self.exit.stages)
        if overlap:
            raise ValueError(f"program {self.id}: stages both enter and exit: {overlap}")
        if self.on_complete is not None and (
            not self.entry.stages or not set(self.entry.stages) <= RETURNING_STAGES
        ):
            # A customer or a sales lead must not be moved back to ``lead`` by content.
            raise ValueError(
                f"program {self.id}: on_complete is only for programs that dormant or "
                f"lost leads enter (entry stages {[s.value for s in self.entry.stages]})"
            )
        return self

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def page_groups(self) -> set[str]:
        """The website page groups its entry rule and steps name (scoring.yaml ``pages``
        must define each: a misspelt group would never match)."""
        named = set(self.entry.pages)
        for step in self.steps:
            for condition in (step.skip_if, step.only_if):
                if condition is not None:
                    named.update(condition.pages)
        return named

    def customer_terms(self) -> tuple[set[str], set[str]]:
        """The customer segments and CPM labels its entry rule and steps name
        (customers.yaml must define each)."""
        segments, labels = set(self.entry.segments), set(self.entry.cpm)
        for step in self.steps:
            for condition in (step.skip_if, step.only_if):
                if condition is not None:
                    segments.update(condition.segments)
                    labels.update(condition.cpm)
        return segments, labels

    def step_after(self, step_id: str) -> Step | None:
        ids = [s.id for s in self.steps]
        index = ids.index(step_id) + 1
        return self.steps[index] if index < len(self.steps) else None


class ProgramCatalog:
    def __init__(self, programs: Iterable[Program]) -> None:
        self.programs = tuple(sorted(programs, key=lambda p: (p.priority, p.id)))

    def get(self, program_id: str) -> Program | None:
        return next((p for p in self.programs if p.id == program_id), None)

    def program_for(
        self,
        lead: Lead,
        form_type: FormType | None = None,
        temperature: Temperature | None = None,
    ) -> Program | None:
        """The default program for the lead's segment, or None if none serves it."""
        return next(
            (
                p
                for p in self.programs
                if p.kind == "nurture" and p.entry.matches(lead, form_type, temperature)
            ),
            None,
        )

    def program_for_segment(self, lead: Lead) -> Program | None:
        """The program a customer that moved into its segment enters: the first nurture
        program whose entry names segments and matches (a program for every customer,
        as at winning the deal, is not entered again by a move)."""
        return next(
            (
                p
                for p in self.programs
                if p.kind == "nurture" and p.entry.segments and p.entry.matches(lead, None)
            ),
            None,
        )

    def next_sending_time(self, moment: datetime) -> datetime:
        """The earliest time, from ``moment`` on, when some nurture program's window is
        open (an event program's emails go at its events' times, not at openings)."""
        if not self.programs:
            raise ValueError("no programs")
        nurture = [p for p in self.programs if p.kind == "nurture"] or self.programs
        return min(p.send_window.next_open(moment) for p in nurture)


def load_programs(directory: Path = PROGRAMS_DIR) -> ProgramCatalog:
    programs = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            document = read_yaml(path)
            programs.append(Program.model_validate(document))
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from exc
    ids = [p.id for p in programs]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate program ids: {sorted(duplicates)}")
    return ProgramCatalog(programs)

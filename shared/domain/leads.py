"""The lead and what is recorded about it: consent, activities, touches, enrolment."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FormType(StrEnum):
    INQUIRY = "inquiry"
    DOWNLOAD = "download"
    SEMINAR_REGISTRATION = "seminar_registration"
    # Checked in at a seminar: a venue check-in form, or the attendee list imported after.
    SEMINAR_ATTENDANCE = "seminar_attendance"
    TRIAL = "trial"
    NEWSLETTER = "newsletter"
    CONTACT = "contact"


class Stage(StrEnum):
    """Where a lead stands in the funnel."""

    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    CUSTOMER = "customer"
    DORMANT = "dormant"
    LOST = "lost"


class ActivityType(StrEnum):
    FORM_SUBMITTED = "form_submitted"
    ENROLLED = "enrolled"
    EMAIL_SENT = "email_sent"
    # SES's answer to a send was lost (a 5xx, a timeout, a crash): the email may have
    # gone, so the step counts as sent and is never sent again.
    EMAIL_SEND_UNCERTAIN = "email_send_uncertain"
    RESCHEDULED = "rescheduled"
    STEP_SKIPPED = "step_skipped"
    PROGRAM_EXITED = "program_exited"
    PROGRAM_COMPLETED = "program_completed"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    EMAIL_BOUNCED = "email_bounced"
    EMAIL_COMPLAINED = "email_complained"
    EMAIL_REJECTED = "email_rejected"
    EMAIL_RENDERING_FAILED = "email_rendering_failed"
    EMAIL_DELAYED = "email_delayed"
    EMAIL_SEND_ACCEPTED = "email_send_accepted"
    QUALIFIED = "qualified"
    STAGE_CHANGED = "stage_changed"
    PAGE_VIEWED = "page_viewed"
    # Seminars and webinars (shared/content/events.yaml).
    EVENT_REGISTERED = "event_registered"
    EVENT_WAITLISTED = "event_waitlisted"
    EVENT_CANCELLED = "event_cancelled"
    EVENT_ATTENDED = "event_attended"
    # Customers (shared/domain/customers.py).
    PURCHASED = "purchased"
    SEGMENT_CHANGED = "segment_changed"  # a customer's RFM segment moved


# What ``new_id`` makes: 32 lower-case hex digits (the due index shards by the first 8).
LEAD_ID = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    return uuid.uuid4().hex


def is_lead_id(text: str) -> bool:
    return LEAD_ID.fullmatch(text) is not None


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Touch(_Record):
    """Where a lead came from on one visit (first-touch and last-touch attribution)."""

    at: datetime
    form_type: FormType
    asset: str | None = None  # the whitepaper or seminar the form named, for the emails
    source: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    referrer: str | None = None
    page_url: str | None = None


class Consent(_Record):
    """Evidence of an opt-in (or of a form posted without one), kept as its own record."""

    consent_id: str = Field(default_factory=new_id)
    given: bool
    at: datetime
    form_type: FormType
    form_id: str | None = None
    wording_version: str
    ip: str | None = None
    user_agent: str | None = None
    page_url: str | None = None


class ConsentState(_Record):
    """The lead's current marketing-email permission, summarised from its consent records."""

    opted_in: bool = False
    at: datetime | None = None
    wording_version: str | None = None
    form_type: FormType | None = None


class SentStep(_Record):
    """One step's email as sent to the lead, and how the lead engaged with it."""

    sent_at: datetime
    variant: str
    message_id: str | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    # Tags of the links clicked (``ses:tags="link:pricing;"``), for branches on a link.
    clicked_links: tuple[str, ...] = ()

    @property
    def opened(self) -> bool:
        # A click proves the mail was opened even when image blocking hid the open.
        return self.opened_at is not None or self.clicked_at is not None

    @property
    def clicked(self) -> bool:
        return self.clicked_at is not None


class Enrolment(_Record):
    """The nurture program a lead follows and its position in it.

    Exactly one of these holds while the program runs: ``step_id`` names the next step
    to send at ``due_at``, or ``awaiting`` names the sent step whose branch is decided
    at ``due_at``. A finished enrolment has ``completed_at`` and no ``due_at``.
    """

    program_id: str
    enrolled_at: datetime
    # An event program's enrolment: the event its steps are timed by (kept on the
    # lead's registration for it, beside the nurture program's enrolment).
    event_id: str | None = None
    step_id: str | None = None
    awaiting: str | None = None
    due_at: datetime | None = None
    sent: dict[str, SentStep] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)  # step id -> why it did not fit
    completed_at: datetime | None = None
    outcome: str | None = None  # completed, exited:<reason>


class RegistrationStatus(StrEnum):
    REGISTERED = "registered"  # has a place
    WAITLISTED = "waitlisted"  # the event was full: waiting for a place
    CANCELLED = "cancelled"
    WALK_IN = "walk_in"  # attended without a place (came without registering)


class Registration(_Record):
    """The lead's registration for one event, and the event program it follows."""

    status: RegistrationStatus
    registered_at: datetime
    changed_at: datetime
    waitlisted_at: datetime | None = None  # it waited for its place (a confirmation says so)
    attended_at: datetime | None = None
    enrolment: Enrolment | None = None

    @property
    def holds_place(self) -> bool:
        return self.status is RegistrationStatus.REGISTERED

    @property
    def pending(self) -> bool:
        """Holds a place or a turn on the waiting list: what a cancellation gives up."""
        return self.status in (RegistrationStatus.REGISTERED, RegistrationStatus.WAITLISTED)


class Seats(_Record):
    """Who holds a place at an event with a capacity, and who waits for one (oldest
    first), kept on one item and written in the same transaction as the lead whose
    registration changes it, conditional on its ``version``."""

    event_id: str
    holders: frozenset[str] = frozenset()
    waiting: dict[str, datetime] = Field(default_factory=dict)
    version: int = 0

    def free(self, capacity: int) -> int:
        return max(capacity - len(self.holders), 0)

    def next_waiting(self) -> str | None:
        return min(self.waiting, key=lambda k: (self.waiting[k], k), default=None)

    def taking(self, lead_id: str) -> Seats:
        waiting = {k: v for k, v in self.waiting.items() if k != lead_id}
        return self.model_copy(update={"holders": self.holders | {lead_id}, "waiting": waiting})

    def queueing(self, lead_id: str, at: datetime) -> Seats:
        return self.model_copy(update={"waiting": {**self.waiting, lead_id: at}})

    def leaving(self, lead_id: str) -> Seats:
        waiting = {k: v for k, v in self.waiting.items() if k != lead_id}
        return self.model_copy(update={"holders": self.holders - {lead_id}, "waiting": waiting})


class SendRecord(_Record):
    """The ledger entry of one step's email to one lead: claimed before the send, then
    completed (sent or rejected) in the same write that moves the lead on."""

    lead_id: str
    key: str  # program, enrolment time and step: see shared.services.sending.ledger_key
    status: Literal["sending", "sent", "rejected", "uncertain"]
    at: datetime
    message_id: str | None = None


class Outcome(_Record):
    """What sales finally made of a lead (won, lost, rejected), listed by month for the
    scoring backtest (``shared.domain.backtest``): a list to read instead of scanning leads.
    Holds no personal data."""

    lead_id: str
    disposition: Literal["won", "lost", "rejected"]
    at: datetime


class Purchases(_Record):
    """What a customer has bought, summed up on the lead: what its RFM scores and CPM
    label are computed from (each purchase is an activity on the timeline)."""

    count: int = 0
    total: int = 0  # yen
    first_on: date
    last_on: date
    products: tuple[str, ...] = ()  # what the customer owns (bought at least once), sorted
    # Yen per month (``YYYY-MM``, Japanese months) of the last twelve: the CPM's current value.
    by_month: dict[str, int] = Field(default_factory=dict)


class Rank(_Record):
    """A customer's RFM scores (1 to 5 each), its named segment and CPM label, as of
    ``on`` (a Japanese day); ``changes_on`` is the first day they change without a new
    purchase (recency drops, a month leaves the year), when they are computed again."""

    r: int
    f: int
    m: int
    segment: str
    cpm: str | None = None  # None: the company's size is not known
    on: date
    changes_on: date | None = None


class Activity(_Record):
    """One entry on a lead's timeline."""

    activity_id: str = Field(default_factory=new_id)
    lead_id: str
    type: ActivityType
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


def _sorted_groups(value: Any) -> Any:
    # Stored as a string set: read back in any order.
    return tuple(sorted(value)) if isinstance(value, set | frozenset | list | tuple) else value


class Lead(_Record):
    lead_id: str
    email: str
    family_name: str | None = None
    given_name: str | None = None
    name: str | None = None
    name_kana: str | None = None
    company: str | None = None
    department: str | None = None
    job_title: str | None = None
    phone: str | None = None  # the company's (a card's 代表 or TEL会社), or as a form said
    phone_normalized: str | None = None
    phone_department: str | None = None
    phone_direct: str | None = None
    mobile: str | None = None
    postcode: str | None = None  # 123-4567
    address: str | None = None  # as written; without the prefecture when a list has it apart
    website: str | None = None
    industry: str | None = None
    company_size: str | None = None
    prefecture: str | None = None
    country: str | None = None
    interests: tuple[str, ...] = ()
    message: str | None = None
    sales_owner: str | None = None  # whose card it was (名刺所有者), from a list import
    locale: str = "ja"
    stage: Stage = Stage.LEAD
    first_touch: Touch
    last_touch: Touch
    consent: ConsentState = ConsentState()
    enrolment: Enrolment | None = None
    unsubscribed: bool = False
    suppressed: bool = False
    suppression_reason: str | None = None
    # Send times of the last 7 days, for the per-lead frequency cap.
    recent_sends: tuple[datetime, ...] = ()
    # Behaviour score in decay-free units (see shared.domain.scoring); changed only by atomic ADD.
    score_units: Decimal = Decimal(0)
    # Points each capped rule gave on recent Japanese days (``<yyyy-mm-dd>#<rule>``), kept
    # on the lead so that a rule's daily cap is checked by the write that scores.
    daily_points: dict[str, int] = Field(default_factory=dict)
    last_engaged_at: datetime | None = None
    # Opens and clicks by people per local hour ("0".."23") and weekday ("mon"..): when
    # to send (shared.domain.sendtime).
    engaged_hours: dict[str, int] = Field(default_factory=dict)
    engaged_weekdays: dict[str, int] = Field(default_factory=dict)
    # Website page groups the lead has read (scoring.yaml ``pages``); changed only by ADD.
    page_groups: tuple[str, ...] = ()
    transient_bounces: int = 0  # soft bounces in a row (by event time)
    soft_bounce_keys: tuple[str, ...] = ()  # their event keys: a redelivery counts once
    last_soft_bounce_at: datetime | None = None
    last_delivered_at: datetime | None = None
    stage_changed_at: datetime | None = None
    qualified_at: datetime | None = None
    qualification: dict[str, Any] | None = None  # score, grade, reason at qualification
    requalify_after: datetime | None = None  # cool-down after sales rejected the lead
    # When to check a lead outside any program for dormancy (due index, no scans).
    review_at: datetime | None = None
    sunset: bool = False  # re-engagement got no response: no more marketing email
    revenue: int = 0  # yen, from the deals sales reported won with an amount
    # Events registered for (or attended), by event id; each with its own enrolment.
    registrations: dict[str, Registration] = Field(default_factory=dict)
    purchases: Purchases | None = None
    rank: Rank | None = None  # a customer with purchases (shared.domain.customers)
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @field_validator("page_groups", mode="before")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        return _sorted_groups(value)

    def due_track(self, program_id: str, step_id: str | None) -> Enrolment | None:
        """The running enrolment a send job (program and step) is about: the nurture
        program's, else the event enrolment at that step due first (the one the due index
        shows)."""
        enrolment = self.enrolment
        if (
            enrolment is not None
            and enrolment.completed_at is None
            and (enrolment.program_id, enrolment.step_id) == (program_id, step_id)
        ):
            return enrolment
        return earliest_event(self, program_id, step_id)

    def track(self, event_id: str | None) -> Enrolment | None:
        """The enrolment a send job names: the nurture program's, or an event's."""
        if event_id is None:
            return self.enrolment
        registration = self.registrations.get(event_id)
        return registration.enrolment if registration else None

    def placing(self, enrolment: Enrolment) -> dict[str, Any]:
        """The update that puts ``enrolment`` back where it belongs on the lead."""
        if enrolment.event_id is None:
            return {"enrolment": enrolment}
        registration = self.registrations[enrolment.event_id]
        placed = registration.model_copy(update={"enrolment": enrolment})
        return {"registrations": {**self.registrations, enrolment.event_id: placed}}

    @property
    def reviewed(self) -> bool:
        """Whether ``review_at`` puts the lead on the due index: a mailable lead's dormancy
        review, and any customer's rank review (its segment counts in the reports whether
        it is mailed or not)."""
        return self.review_at is not None and (self.mailable or self.stage is Stage.CUSTOMER)

    @property
    def mailable(self) -> bool:
        return (
            self.consent.opted_in
            and not self.unsubscribed
            and not self.suppressed
            and not self.sunset
        )


def earliest_event(
    lead: Lead, program_id: str | None = None, step_id: str | None = None
) -> Enrolment | None:
    """The lead's running event enrolment due first (at ``program_id``'s ``step_id``, if
    given)."""
    running = [
        e
        for registration in lead.registrations.values()
        if (e := registration.enrolment) is not None
        and e.completed_at is None
        and e.due_at is not None
        and (program_id is None or (e.program_id, e.step_id) == (program_id, step_id))
    ]
    return min(running, key=lambda e: (e.due_at, e.event_id or ""), default=None)

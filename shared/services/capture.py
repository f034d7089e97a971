"""Lead capture: turn one form post into a stored lead, deduplicated by email.

A second post with the same address updates the same lead: non-empty new values win,
the first-touch source is kept and the last-touch source updated. Two posts racing
for a new address cannot make two leads (the repository claims the address in the
same transaction that creates the lead); a lost race or a concurrent update is
retried from a fresh read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from shared.domain.clock import Clock, to_iso
from shared.domain.events import Event, EventCatalog
from shared.domain.leads import (
    Activity,
    ActivityType,
    Consent,
    ConsentState,
    FormType,
    Lead,
    Seats,
    Stage,
    Touch,
    new_id,
)
from shared.domain.nurture import start
from shared.domain.prefectures import prefecture_of_address
from shared.domain.programs import ProgramCatalog
from shared.domain.scoring import FORM_SIGNALS
from shared.domain.transitions import stage_changed, staged
from shared.ports import (
    MAX_REVISIONS,
    POST_REVISIONS,
    EmailTaken,
    LeadRepository,
    Marker,
    Record,
    Revision,
    Snapshot,
    VersionConflict,
)
from shared.services.qualification import ScoreKeeper
from shared.services.registration import Registered, attend, register
from shared.services.review import schedule_review
from shared.web.submission import FormSubmission

# A post with the same content within this time is the same post sent again (a browser
# retrying, a double click), answered as the first was; later, it is a new post.
REPOST_WINDOW = timedelta(hours=1)

# The forms about an event (``asset`` names it): a registration, a check-in or an
# attendee list.
EVENT_FORMS = frozenset({FormType.SEMINAR_REGISTRATION, FormType.SEMINAR_ATTENDANCE})

# Profile fields where a non-empty new value replaces the stored one.
PROFILE_FIELDS = (
    "family_name",
    "given_name",
    "name_kana",
    "company",
    "department",
    "job_title",
    "phone",
    "phone_department",
    "phone_direct",
    "mobile",
    "postcode",
    "address",
    "website",
    "industry",
    "company_size",
    "prefecture",
    "country",
    "message",
    "locale",
    "sales_owner",
)


@dataclass(frozen=True)
class RequestInfo:
    """What the request itself says about the post (not the form fields)."""

    ip: str | None = None
    user_agent: str | None = None
    referrer: str | None = None


@dataclass(frozen=True)
class CaptureResult:
    lead_id: str
    created: bool
    enrolled_in: str | None = None
    qualified: bool = False
    # The same post sent again: the first post's answer, nothing recorded this time.
    repeat: bool = False
    # A registration form's event: registered, waitlisted (it was full), walk_in.
    registration: str | None = None


class CaptureConflict(Exception):
    """The lead kept changing under us; the caller may retry the whole request."""


def touch_of(submission: FormSubmission, at: datetime, request: RequestInfo) -> Touch:
    return Touch(
        at=at,
        form_type=submission.form_type,
        asset=submission.asset,
        source=submission.source,
        utm_source=submission.utm_source,
        utm_medium=submission.utm_medium,
        utm_campaign=submission.utm_campaign,
        utm_term=submission.utm_term,
        utm_content=submission.utm_content,
        referrer=submission.referrer or request.referrer,
        page_url=submission.page_url,
    )


def met_at(submission: FormSubmission, touch: Touch) -> Touch | None:
    """The touch at the time the list says the lead was met (名刺交換日, 来場日時), never
    later than it was recorded; None when the submission does not say."""
    if submission.touched_at is None:
        return None
    return touch.model_copy(update={"at": min(submission.touched_at, touch.at)})


def consent_of(
    submission: FormSubmission, at: datetime, request: RequestInfo, default_version: str
) -> Consent:
    return Consent(
        given=submission.consent,
        at=at,
        form_type=submission.form_type,
        form_id=submission.form_id,
        wording_version=submission.consent_version or default_version,
        ip=request.ip,
        user_agent=request.user_agent,
        page_url=submission.page_url,
    )


def _profile(submission: FormSubmission) -> dict[str, Any]:
    values: dict[str, Any] = {f: getattr(submission, f) for f in PROFILE_FIELDS}
    values["name"] = submission.display_name
    values["phone_normalized"] = submission.phone_normalized
    if not submission.prefecture and submission.address:
        # Segments and sales routing go by prefecture: an address names it.
        found = prefecture_of_address(submission.address)
        values["prefecture"] = found.name if found else None
    return {k: v for k, v in values.items() if v not in (None, "")}


def new_lead(
    submission: FormSubmission, lead_id: str, at: datetime, touch: Touch, consent: Consent
) -> Lead:
    return Lead(
        lead_id=lead_id,
        email=submission.email,
        interests=submission.interests,
        first_touch=met_at(submission, touch) or touch,
        last_touch=touch,
        consent=_consent_state(ConsentState(), consent),
        created_at=at,
        updated_at=at,
        **_profile(submission),
    )


def merge(existing: Lead, submission: FormSubmission, touch: Touch, consent: Consent) -> Lead:
    """Apply a later post to a stored lead (pure: no I/O, no clock)."""
    changes = _profile(submission)
    changes["interests"] = interests_union(existing.interests, submission.interests)
    changes["last_touch"] = touch
    met = met_at(submission, touch)
    if met is not None and met.at < existing.first_touch.at:
        # A card exchanged before the lead's first known touch is where it began.
        changes["first_touch"] = met
    changes["consent"] = _consent_state(existing.consent, consent)
    if consent.given:
        # A fresh opt-in on a form re-subscribes, and lifts a sunset (that was our call,
        # this is theirs); bounces and complaints stay suppressed.
        changes["unsubscribed"] = False
        changes["sunset"] = False
    changes["updated_at"] = touch.at
    return existing.model_copy(update=changes)


def _consent_state(current: ConsentState, consent: Consent) -> ConsentState:
    if not consent.given:
        return current
    return ConsentState(
        opted_in=True,
        at=consent.at,
        wording_version=consent.wording_version,
        form_type=consent.form_type,
    )


class LeadCapture:
    def __init__(
        self,
        repository: LeadRepository,
        programs: ProgramCatalog,
        clock: Clock,
        consent_version: str,
        id_factory: Callable[[], str] = new_id,
        scores: ScoreKeeper | None = None,
        review_after: timedelta = timedelta(days=90),
        max_revisions: int = POST_REVISIONS,
        events: EventCatalog | None = None,
    ) -> None:
        self._events = events or EventCatalog()
        self._max_revisions = max_revisions
        self._scores = scores
        self._review_after = review_after
        self._repository = repository
        self._programs = programs
        self._clock = clock
        self._consent_version = consent_version
        self._new_id = id_factory

    def capture(self, submission: FormSubmission, request: RequestInfo) -> CaptureResult:
        """Store the post: one read of the address (and its erasure), then one write for a
        new lead; a known lead is read with the post's marker and written once. A post
        sent again (a browser retrying after a lost answer) finds its marker and gets the
        first answer; nothing is recorded or scored twice."""
        post = Marker(f"post:{post_key(submission)}", self._clock.now(), REPOST_WINDOW)
        event = self.event_of(submission)
        # An event with a capacity: its seats are read (and written) with the lead.
        seats = event.id if event is not None and event.capacity is not None else None
        for _ in range(MAX_REVISIONS):
            lead_id, erased = self._repository.lead_of(submission.email)
            known = None
            if lead_id is None:
                lead_id = self._new_id()
                known = Snapshot(None) if seats is None else None
            try:
                revised = self._repository.revise(
                    lead_id,
                    partial(self._change, lead_id=lead_id, post=(submission, request, erased)),
                    marker=post,
                    seats=seats,
                    known=known,
                    max_revisions=self._max_revisions,
                )
            except EmailTaken:
                continue  # a concurrent first post won the address: merge into its lead
            except VersionConflict as exc:
                raise CaptureConflict("lead changed concurrently too many times") from exc
            note = (
                revised.note
                if revised.duplicate
                else (revised.revision.note if revised.revision else {})
            )
            return CaptureResult(
                lead_id,
                created=bool(note.get("created")),
                enrolled_in=note.get("enrolled_in"),
                qualified=bool(note.get("qualified")),
                repeat=revised.duplicate,
                registration=note.get("registration"),
            )
        raise CaptureConflict("lead changed concurrently too many times")

    def _change(
        self,
        snapshot: Snapshot,
        *,
        lead_id: str,
        post: tuple[FormSubmission, RequestInfo, bool],
    ) -> Revision:
        submission, request, erased = post
        now = self._clock.now()
        touch = touch_of(submission, now, request)
        consent = consent_of(submission, now, request, self._consent_version)
        existing = snapshot.lead
        if existing is None:
            lead = new_lead(submission, lead_id, now, touch, consent)
            if erased:
                # Erased on request: kept as a lead for sales, never mailed again.
                lead = lead.model_copy(update={"suppressed": True, "suppression_reason": "erased"})
        else:
            lead = merge(existing, submission, touch, consent)
        lead, back = self._won_back(lead, submission, now)
        lead, enrolled = self._enrol(lead, submission, now)
        event = self.event_of(submission)
        registered = self._register(lead, submission, event, now, snapshot.seats)
        if registered is not None:
            lead = registered.lead
        posted, *records = self._records(
            lead, submission, consent, enrolled, created=existing is None
        )
        records.extend([back] if back else [])
        records.extend(registered.activities if registered else ())
        # A form about an event scores what it changes: registering or attending again
        # (another post of the form, a list imported twice) earns nothing more.
        repeated = event is not None and registered is None
        qualified = False
        if self._scores is not None and isinstance(posted, Activity) and not repeated:
            # The form's points, noted on its activity, and MQL on high intent.
            taken = self._scores.take(
                lead,
                FORM_SIGNALS[submission.form_type],
                now,
                now,
                reason=f"form:{submission.form_type.value}",
                high_intent=submission.form_type in self._scores.rules.high_intent,
                always=True,
            )
            lead, qualified = taken.lead, taken.qualified
            if taken.award.rules:
                details = {**posted.details, **taken.award.as_details()}
                posted = posted.model_copy(update={"details": details})
            records.extend(taken.records)
        program_id = lead.enrolment.program_id if enrolled and lead.enrolment else None
        note: dict[str, object] = {
            "created": existing is None,
            "enrolled_in": program_id,
            "qualified": qualified,
        }
        seats = None
        if registered is not None and event is not None:
            note["registration"] = lead.registrations[event.id].status.value
            seats = registered.seats
        return Revision(lead, [posted, *records], note=note, seats=seats)

    def event_of(self, submission: FormSubmission) -> Event | None:
        """The event a registration or attendance form names (its ``asset``)."""
        if submission.form_type not in EVENT_FORMS:
            return None
        return self._events.get(submission.asset)

    def _register(
        self,
        lead: Lead,
        submission: FormSubmission,
        event: Event | None,
        now: datetime,
        seats: Seats | None,
    ) -> Registered | None:
        if event is None:
            return None
        if submission.form_type is FormType.SEMINAR_ATTENDANCE:
            return attend(lead, event, self._programs, now, seats)
        return register(lead, event, self._programs, now, seats)

    def _won_back(
        self, lead: Lead, submission: FormSubmission, now: datetime
    ) -> tuple[Lead, Activity | None]:
        """A dormant lead who posts a form is back: nurtured as a lead again (out of its
        re-engagement) and reviewed for dormancy anew. A lost lead is not: sales closed
        it, and its old score could hand it straight back; it returns by answering
        re-engagement, or to sales by a high-intent form (``qualify``)."""
        if lead.stage is not Stage.DORMANT:
            return lead, None
        back = staged(lead, Stage.LEAD, now).model_copy(update={"review_at": None})
        activity = stage_changed(lead, Stage.LEAD, now, f"form:{submission.form_type.value}")
        return schedule_review(back, now, self._review_after), activity

    def _enrol(self, lead: Lead, submission: FormSubmission, now: datetime) -> tuple[Lead, bool]:
        """Put a mailable lead that follows no program into its segment's default program."""
        if lead.enrolment is not None or not lead.mailable:
            return lead, False
        temperature = None
        if self._scores is not None:
            rules = self._scores.rules
            score = rules.evaluate(lead, now)
            temperature = rules.temperature(score.score, score.grade)
        program = self._programs.program_for(lead, submission.form_type, temperature)
        if program is None:
            return lead, False
        return lead.model_copy(update={"enrolment": start(program, now)}), True

    @staticmethod
    def _records(
        lead: Lead,
        submission: FormSubmission,
        consent: Consent,
        enrolled: bool,
        *,
        created: bool,
    ) -> list[Record]:
        details = {
            "form_type": submission.form_type.value,
            "form_id": submission.form_id,
            "asset": submission.asset,
            "source": submission.source,
            "utm_source": submission.utm_source,
            "utm_medium": submission.utm_medium,
            "utm_campaign": submission.utm_campaign,
            "page_url": submission.page_url,
            "message": submission.message,
            "touched_at": to_iso(submission.touched_at) if submission.touched_at else None,
            "consent": submission.consent,
            "created": created,
        }
        records: list[Record] = [
            Activity(
                lead_id=lead.lead_id,
                type=ActivityType.FORM_SUBMITTED,
                at=consent.at,
                details={k: v for k, v in details.items() if v is not None},
            ),
            consent,
        ]
        if enrolled and lead.enrolment is not None:
            records.append(
                Activity(
                    lead_id=lead.lead_id,
                    type=ActivityType.ENROLLED,
                    at=consent.at,
                    details={"program_id": lead.enrolment.program_id},
                )
            )
        return records


def interests_union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for group in groups for item in group))


def post_key(submission: FormSubmission) -> str:
    """The post's content as a key: the same fields filled in the same way."""
    content = json.dumps(submission.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(content.encode()).hexdigest()[:32]

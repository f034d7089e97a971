"""The sender's use case: take one send job and make the right email go out, once.

A job only says "this lead's program step may be due". Everything is checked again on
a fresh read, because the lead may have changed since the scheduler saw it: consent,
suppression, unsubscription, stage (exit rule), the send window and the frequency cap.
A ledger record per (lead, enrolment, step) claimed before the send makes duplicate
jobs, retried batches and overlapping ticks harmless.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from shared.domain.calendar import CANCEL_CONTENT_TYPE as CANCEL_CALENDAR_TYPE
from shared.domain.calendar import CONTENT_TYPE as CALENDAR_TYPE
from shared.domain.calendar import event_ics
from shared.domain.clock import Clock, to_iso
from shared.domain.customers import CustomerRules, current_rank
from shared.domain.email import (
    Attachment,
    EmailRenderer,
    Mailer,
    OutgoingEmail,
    SendFailed,
    SendRejected,
    SendThrottled,
    SendUncertain,
)
from shared.domain.events import Event, EventCatalog
from shared.domain.experiments import Arm, arms
from shared.domain.funnel import SENDTIME_PREFIX, ReportCount, business_day, email_key
from shared.domain.jobs import JobKind, SendJob
from shared.domain.leads import Activity, ActivityType, Enrolment, Lead, SendRecord
from shared.domain.machine_engagement import tracked_links
from shared.domain.nurture import (
    EVENT_TIME_PASSED,
    after_send,
    decide,
    exit_reason,
    finish,
    prune_sends,
    skip,
    skip_reason,
    too_late,
    variant_label,
    variant_of,
    within_cap,
)
from shared.domain.programs import SUNSET, Program, ProgramCatalog, Step
from shared.domain.sendtime import SendTimeGroup, best_slot, group_of, next_slot
from shared.domain.tokens import UnsubscribeTokens, cancel_link
from shared.domain.transitions import suppressed
from shared.ports import (
    LeadRepository,
    Record,
    Revision,
    SendLedger,
    Snapshot,
    VariantResults,
)
from shared.services.lifecycle import returning
from shared.services.review import LeadReview, schedule_review

# A send takes at most this long from its claim (the function's timeout is shorter): a
# claim older than this with no record of the send was interrupted.
SEND_GRACE = timedelta(minutes=5)
# Retries of the write after SES accepted an email when the table fails to answer (only
# this run knows the message id).
WRITE_RETRIES = 3


class StepBeingSent(Exception):
    """Another run claimed the step moments ago and may be sending it: retry later."""


class Outcome(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # the step was sent before; the lead was moved on
    RESCHEDULED = "rescheduled"  # outside the send window or over the frequency cap
    DECIDED = "decided"  # a branch was decided; the chosen step is due later
    SKIPPED = "skipped"  # the step does not fit the lead; the next one is due later
    COMPLETED = "completed"
    EXITED = "exited"
    REJECTED = "rejected"  # SES refused the address for good: suppressed
    THROTTLED = "throttled"  # SES said slow down: due again shortly
    STALE = "stale"  # the job no longer matches the lead
    UNCERTAIN = "uncertain"  # SES's answer was lost: counted as sent, never sent again
    DORMANT = "dormant"  # a review found no engagement: the lead enters re-engagement
    RANKED = "ranked"  # a review ranked a customer again


@dataclass(frozen=True)
class DeliverySettings:
    from_address: str
    unsubscribe_url: str
    frequency_cap: int = 3  # marketing emails per lead per rolling 7 days
    throttle_backoff: timedelta = timedelta(minutes=5)
    dormant_after: timedelta = timedelta(days=90)  # no engagement for this long: dormant


def ledger_key(enrolment: Enrolment, step: Step) -> str:
    # The enrolment time is part of the key: a lead re-enrolled later may get the step again.
    # An event program's enrolments are told apart by their event too.
    program = enrolment.program_id
    if enrolment.event_id is not None:
        program = f"{program}:{enrolment.event_id}"
    return f"{program}#{to_iso(enrolment.enrolled_at)}#{step.id}"


class NurtureSender:
    def __init__(
        self,
        leads: LeadRepository,
        ledger: SendLedger,
        mailer: Mailer,
        programs: ProgramCatalog,
        renderer: EmailRenderer,
        tokens: UnsubscribeTokens,
        clock: Clock,
        settings: DeliverySettings,
        results: VariantResults | None = None,
        events: EventCatalog | None = None,
        customers: CustomerRules | None = None,
    ) -> None:
        self._customers = customers
        self._reviews = LeadReview(leads, programs, clock, settings.dormant_after, customers)
        self._results = results
        self._events = events or EventCatalog()
        self._leads = leads
        self._ledger = ledger
        self._mailer = mailer
        self._programs = programs
        self._renderer = renderer
        self._tokens = tokens
        self._clock = clock
        self._settings = settings

    def process(self, job: SendJob) -> Outcome:
        if job.kind is JobKind.REVIEW:
            return Outcome(self._reviews.review(job.lead_id).value)
        return self._process(job)

    # -- deciding -----------------------------------------------------------------------

    def _process(self, job: SendJob, known: Snapshot | None = None) -> Outcome:
        """Decide what the job does to the lead as read, and write it; a step to send is
        sent after the read (claim, SES, one write)."""
        decided: list[_Decision] = []

        def change(snapshot: Snapshot) -> Revision | None:
            decided[:] = [self._decide(snapshot.lead, job)]
            return decided[0].revision

        revised = self._leads.revise(job.lead_id, change, known=known)
        decision = decided[0]
        if decision.send is not None and revised.before is not None:
            return self._send(revised.before, *decision.send)
        if decision.then is not None and revised.after is not None:
            # The next step is due at once: carry on as its own job would.
            return self._process(decision.then, known=Snapshot(revised.after))
        return decision.outcome

    def _decide(self, lead: Lead | None, job: SendJob) -> _Decision:
        # A job the sender made itself names the event; the scheduler's, read from the
        # due index, names the program and step only.
        if lead is None:
            enrolment = None
        elif job.event_id is not None:
            enrolment = lead.track(job.event_id)
        else:
            enrolment = lead.due_track(job.program_id, job.step_id)
        if lead is None or enrolment is None or enrolment.completed_at is not None:
            return _Decision(Outcome.STALE)
        if enrolment.program_id != job.program_id or enrolment.step_id != job.step_id:
            return _Decision(Outcome.STALE)
        now = self._clock.now()
        if enrolment.due_at is None or enrolment.due_at > now:
            return _Decision(Outcome.STALE)
        lead = self._ranked(lead, now)
        program = self._programs.get(enrolment.program_id)
        event = self._events.get(enrolment.event_id)
        reason = exit_reason(lead, program) if program else "program_removed"
        if enrolment.event_id is not None and event is None:
            reason = "event_removed"
        if program is None or reason:
            return self._exit(lead, enrolment, now, reason or "program_removed")

        if enrolment.awaiting is not None:
            enrolment = decide(enrolment, program, now, event)
            if enrolment.completed_at is not None:
                return self._complete(lead, enrolment, now)
            revision = self._revision(lead, now, enrolment=enrolment)
            if enrolment.due_at is not None and enrolment.due_at > now:
                return _Decision(Outcome.DECIDED, revision)
            then = SendJob(lead.lead_id, program.id, enrolment.step_id, enrolment.event_id)
            return _Decision(Outcome.DECIDED, revision, then=then)
        step = self._step(program, enrolment.step_id)
        if step is None:
            return self._exit(lead, enrolment, now, "step_removed")
        registration = lead.registrations.get(enrolment.event_id or "")
        unfit = (
            skip_reason(lead, step, registration)
            or too_late(step, event, now)
            or self._invited_before(lead, step, now)
        )
        if unfit is not None:
            return self._skip(lead, enrolment, program, step, now, unfit)

        window = program.send_window
        if not window.contains(now):
            return self._reschedule(lead, enrolment, now, window.next_open(now), "send_window")
        # An event's emails were asked for by registering: the cap does not hold them back.
        capped = program.kind != "event"
        ages_out = within_cap(lead.recent_sends, now, self._settings.frequency_cap)
        if capped and ages_out is not None:
            later = window.next_open(ages_out)
            return self._reschedule(lead, enrolment, now, later, "frequency_cap")
        return _Decision(Outcome.SENT, send=(enrolment, program, step, now))

    def _ranked(self, lead: Lead, now: datetime) -> Lead:
        """A customer ranked as of now: what its steps' segment rules read (kept by the
        write the decision makes)."""
        if self._customers is None or lead.purchases is None:
            return lead
        rank = current_rank(lead, self._customers, business_day(now))
        return lead if rank == lead.rank else lead.model_copy(update={"rank": rank})

    @staticmethod
    def _step(program: Program, step_id: str | None) -> Step | None:
        return next((s for s in program.steps if s.id == step_id), None)

    def _skip(
        self,
        lead: Lead,
        enrolment: Enrolment,
        program: Program,
        step: Step,
        now: datetime,
        reason: str,
    ) -> _Decision:
        moved = skip(enrolment, program, step, now, reason, self._events.get(enrolment.event_id))
        skipped = self._activity(
            lead.lead_id, ActivityType.STEP_SKIPPED, now, program.id, step_id=step.id, reason=reason
        )
        if moved.completed_at is not None:
            return self._complete(lead, moved, now, skipped)
        revision = self._revision(lead, now, [skipped], enrolment=moved)
        if moved.due_at is not None and moved.due_at > now:
            return _Decision(Outcome.SKIPPED, revision)
        then = SendJob(lead.lead_id, program.id, moved.step_id, moved.event_id)
        return _Decision(Outcome.SKIPPED, revision, then=then)

    # -- sending ------------------------------------------------------------------------

    def _send(
        self, lead: Lead, enrolment: Enrolment, program: Program, step: Step, now: datetime
    ) -> Outcome:
        key = ledger_key(enrolment, step)
        variant = variant_of(lead.lead_id, program, step, self._arms(program, step, now))
        label = variant_label(variant)
        found = self._ledger.claim(lead.lead_id, key, now)
        if found is not None:
            return self._claimed_before(lead, enrolment, program, step, label, found, now)

        unsubscribe_url = f"{self._settings.unsubscribe_url}?t={self._tokens.sign(lead.lead_id)}"
        # Site links carry a signed lead reference: a visit through one is the lead's.
        site_ref = self._tokens.site_references().sign(lead.lead_id)
        event = self._events.get(enrolment.event_id)
        if step.invite is not None:
            event = self._events.invitation(step.invite, now)
        registration = lead.registrations.get(enrolment.event_id or "")
        cancel_url = None
        if enrolment.event_id is not None and registration is not None and registration.pending:
            token = self._tokens.cancellations().sign(lead.lead_id, enrolment.event_id)
            query = urlencode({"e": enrolment.event_id, "t": token})
            cancel_url = f"{cancel_link(self._settings.unsubscribe_url)}?{query}"
        rendered = self._renderer.render(
            lead,
            program,
            step,
            variant,
            unsubscribe_url,
            site_ref=site_ref,
            event=event,
            registration=registration,
            cancel_url=cancel_url,
        )
        attachments: tuple[Attachment, ...] = ()
        if step.calendar and event is not None:
            cancelled = step.calendar == "cancel"
            attachments = (self._calendar(lead, event, rendered.locale, now, cancelled),)
        email = OutgoingEmail(
            from_address=self._settings.from_address,
            to_address=lead.email,
            rendered=rendered,
            unsubscribe_url=unsubscribe_url,
            tags={
                "lead_id": lead.lead_id,
                "program": program.id,
                "step": step.id,
                "variant": label,
                # How many links the email has, for telling a scanner's burst of clicks.
                "links": str(tracked_links(rendered.html)),
                # Whose time this send kept: the report's send-time lift.
                "send_time": group_of(lead.lead_id, lead.engaged_hours, program.send_time).value,
            },
            attachments=attachments,
        )
        try:
            message_id = self._mailer.send(email)
        except SendThrottled:
            self._ledger.release(lead.lead_id, key)
            later = now + self._settings.throttle_backoff
            return self._reschedule_fresh(lead.lead_id, enrolment, now, later, "throttled")
        except SendFailed:
            # SES answered, so nothing went out: free the step and let SQS retry the job.
            self._ledger.release(lead.lead_id, key)
            raise
        except SendRejected as exc:
            rejected = SendRecord(lead_id=lead.lead_id, key=key, status="rejected", at=now)
            return self._suppress(lead.lead_id, now, f"ses:{exc}", rejected)
        except SendUncertain as exc:
            # It may have gone out: the step counts as sent, explained on the timeline.
            uncertain = SendRecord(lead_id=lead.lead_id, key=key, status="uncertain", at=now)
            self._advance(lead, enrolment, program, step, label, uncertain, str(exc))
            return Outcome.UNCERTAIN
        sent = SendRecord(
            lead_id=lead.lead_id, key=key, status="sent", at=now, message_id=message_id
        )
        self._advance(lead, enrolment, program, step, label, sent, rendered.subject)
        return Outcome.SENT

    def _invited_before(self, lead: Lead, step: Step, now: datetime) -> str | None:
        """An invitation to an event the lead has registered for (or been to) is skipped."""
        event = self._events.invitation(step.invite, now) if step.invite else None
        registration = lead.registrations.get(event.id) if event else None
        if event is None or registration is None or registration.status.value == "cancelled":
            return None
        return f"registered:{event.id}"

    def _calendar(
        self, lead: Lead, event: Event, locale: str, now: datetime, cancelled: bool
    ) -> Attachment:
        """The event as an .ics file for this lead (the same UID in every confirmation, and
        in the cancellation that takes it off the calendar)."""
        domain = self._settings.from_address.rpartition("@")[2].strip("> ")
        page = self._renderer.event_page(event)
        data = event_ics(event, lead.lead_id, locale, now, domain, page, cancelled=cancelled)
        kind = CANCEL_CALENDAR_TYPE if cancelled else CALENDAR_TYPE
        return Attachment(filename=f"{event.id}.ics", content_type=kind, data=data)

    @staticmethod
    def _timed(lead: Lead, program: Program, enrolment: Enrolment) -> Enrolment:
        """The next step moved to its variant's send time (an experiment on send times),
        else to the lead's best slot if its times are known (and it is not held out).
        An event's step keeps its time."""
        due = enrolment.due_at
        following = NurtureSender._step(program, enrolment.step_id)
        if following is None or due is None or following.timing is not None:
            return enrolment
        slots = following.experiment.send_times
        chosen = slots[variant_of(lead.lead_id, program, following)] if slots else None
        if chosen is not None:
            timed = next_slot(due, chosen, program.send_window)
            return enrolment.model_copy(update={"due_at": timed})
        group = group_of(lead.lead_id, lead.engaged_hours, program.send_time)
        if group is not SendTimeGroup.OPTIMISED:
            return enrolment
        best = best_slot(
            due,
            lead.engaged_hours,
            lead.engaged_weekdays,
            program.send_window,
            program.send_time.max_delay,
        )
        return enrolment.model_copy(update={"due_at": best})

    def _arms(self, program: Program, step: Step, now: datetime) -> list[Arm]:
        """A bandit's results so far: each variant's sends and successes in its window."""
        experiment = step.experiment
        if experiment.allocation != "bandit" or experiment.winner or self._results is None:
            return []
        since = business_day(now - experiment.window)
        counts = self._results.of(program.id, step.id, since)
        labels = [variant_label(v) for v in range(step.variants)]
        return arms(labels, counts, experiment.metric)

    def _claimed_before(
        self,
        lead: Lead,
        enrolment: Enrolment,
        program: Program,
        step: Step,
        label: str,
        found: SendRecord,
        now: datetime,
    ) -> Outcome:
        """The step was claimed before: sent (the lead moved on in that write), rejected,
        or left ``sending`` by a run that stopped between the claim and its write. Past
        the grace a send takes at most, that email is uncertain: counted as sent, never
        sent again."""
        if found.status == "rejected":
            return Outcome.DUPLICATE
        if found.status != "sending":
            # Sent (or uncertain) and recorded in the write that moved the lead on, which
            # then finds it done; a step claimed before that write existed moves on now.
            self._advance(lead, enrolment, program, step, label, found, None)
            return Outcome.DUPLICATE
        if now - found.at < SEND_GRACE:
            raise StepBeingSent(found.key)  # another run may be sending it now
        uncertain = found.model_copy(update={"status": "uncertain"})
        self._advance(lead, enrolment, program, step, label, uncertain, "interrupted")
        return Outcome.UNCERTAIN

    def _advance(
        self,
        snapshot: Lead,
        sent_from: Enrolment,
        program: Program,
        step: Step,
        variant: str,
        sent: SendRecord,
        detail: str | None,
    ) -> None:
        """Record the send and move the lead past ``step``, in one write: the completed
        send record, the ``email_sent`` (or ``email_send_uncertain``) activity, the step
        advanced and the send in ``recent_sends`` (the frequency cap).

        The first attempt uses the lead as read before the send. Only SES knows the
        message id now, so a write that fails for a transient reason is tried again here
        (a retried write that had committed finds the lead moved on and writes nothing).
        """
        certain = sent.status == "sent"
        details: dict[str, Any] = {
            "program_id": program.id,
            "step_id": step.id,
            "variant": variant,
            "content_type": step.content_type.value,
        }
        if certain:
            details.update(subject=detail, message_id=sent.message_id)
        else:
            details["reason"] = detail
        activity = Activity(
            activity_id=hashlib.sha256(sent.key.encode()).hexdigest()[:32],
            lead_id=snapshot.lead_id,
            type=ActivityType.EMAIL_SENT if certain else ActivityType.EMAIL_SEND_UNCERTAIN,
            at=sent.at,
            details=details,
        )

        def change(current: Snapshot) -> Revision | None:
            lead = current.lead
            if lead is None:
                return None  # erased meanwhile
            enrolment = lead.track(sent_from.event_id)
            same = enrolment is not None and _same_enrolment(enrolment, sent_from)
            # This write committed before: the enrolment holds the step as sent; a lead
            # that left it meanwhile holds the send time (an event's email and a nurture
            # email can go at the same instant, so the step is the precise mark).
            if enrolment is not None and same:
                committed = step.id in enrolment.sent
            else:
                committed = sent.at in lead.recent_sends
            if committed:
                return None
            now = self._clock.now()
            changes: dict[str, Any] = {
                "recent_sends": (*prune_sends(lead.recent_sends, now), sent.at)
            }
            records: list[Record] = [sent, activity]
            # The lead may have left the program meanwhile; the send is recorded anyway.
            if (
                enrolment is not None
                and same
                and enrolment.step_id == step.id
                and enrolment.awaiting is None
            ):
                event = self._events.get(enrolment.event_id)
                advanced = after_send(
                    enrolment, program, step, now, variant, sent.message_id, event
                )
                advanced = self._timed(lead, program, advanced)
                changes["enrolment"] = advanced
                if advanced.completed_at is not None:
                    records.append(
                        self._activity(
                            lead.lead_id, ActivityType.PROGRAM_COMPLETED, now, program.id
                        )
                    )
                    stage, back = returning(lead, advanced, program, now)
                    changes.update(stage)
                    records.extend([back] if back else [])
            revision = self._revision(lead, now, records, **changes)
            # The sender counts what it sent: SES's own events may never come.
            day, counted = business_day(sent.at), {"sent" if certain else "uncertain": 1}
            group = group_of(lead.lead_id, lead.engaged_hours, program.send_time)
            counts = [
                ReportCount(day, email_key(program.id, step.id, variant), counted),
                ReportCount(day, SENDTIME_PREFIX + group, counted),
            ]
            return Revision(revision.lead, revision.records, counts)

        self._leads.revise(
            snapshot.lead_id, change, known=Snapshot(snapshot), error_retries=WRITE_RETRIES
        )

    # -- state changes -------------------------------------------------------------------

    def _revision(
        self, lead: Lead, now: datetime, records: list[Record] | None = None, **changes: Any
    ) -> Revision:
        records = list(records or [])
        enrolment = changes.get("enrolment")
        if enrolment is not None:
            records.extend(self._passed(lead, enrolment, now))
            if enrolment.event_id is not None:
                del changes["enrolment"]
                changes.update(lead.placing(enrolment))
        updated = lead.model_copy(update={**changes, "updated_at": now})
        # Out of its program now? Then the due index watches it for dormancy instead.
        updated = schedule_review(updated, now, self._settings.dormant_after)
        return Revision(updated, records)

    def _passed(self, lead: Lead, enrolment: Enrolment, now: datetime) -> list[Activity]:
        """A ``step_skipped`` for each step the move passed by because its event time had
        gone (``shared.domain.nurture``)."""
        before = lead.track(enrolment.event_id)
        noted = before.skipped if before is not None and _same_enrolment(before, enrolment) else {}
        return [
            self._activity(
                lead.lead_id,
                ActivityType.STEP_SKIPPED,
                now,
                enrolment.program_id,
                step_id=step_id,
                reason=reason,
                event_id=enrolment.event_id,
            )
            for step_id, reason in enrolment.skipped.items()
            if reason == EVENT_TIME_PASSED and step_id not in noted
        ]

    @staticmethod
    def _activity(
        lead_id: str, kind: ActivityType, at: datetime, program_id: str, **details: Any
    ) -> Activity:
        return Activity(
            lead_id=lead_id, type=kind, at=at, details={"program_id": program_id, **details}
        )

    def _reschedule(
        self, lead: Lead, enrolment: Enrolment, now: datetime, to: datetime, reason: str
    ) -> _Decision:
        activity = self._activity(
            lead.lead_id,
            ActivityType.RESCHEDULED,
            now,
            enrolment.program_id,
            step_id=enrolment.step_id,
            reason=reason,
            due_at=to_iso(to),
        )
        moved = enrolment.model_copy(update={"due_at": to})
        outcome = Outcome.THROTTLED if reason == "throttled" else Outcome.RESCHEDULED
        return _Decision(outcome, self._revision(lead, now, [activity], enrolment=moved))

    def _reschedule_fresh(
        self, lead_id: str, enrolment: Enrolment, now: datetime, to: datetime, reason: str
    ) -> Outcome:
        def change(snapshot: Snapshot) -> Revision | None:
            lead = snapshot.lead
            current = lead.track(enrolment.event_id) if lead else None
            if lead is None or current is None or not _same_enrolment(current, enrolment):
                return None
            return self._reschedule(lead, current, now, to, reason).revision

        revised = self._leads.revise(lead_id, change)
        return Outcome.THROTTLED if revised.changed else Outcome.STALE

    def _exit(self, lead: Lead, enrolment: Enrolment, now: datetime, reason: str) -> _Decision:
        activity = self._activity(
            lead.lead_id, ActivityType.PROGRAM_EXITED, now, enrolment.program_id, reason=reason
        )
        finished = finish(enrolment, now, f"exited:{reason}")
        return _Decision(Outcome.EXITED, self._revision(lead, now, [activity], enrolment=finished))

    def _complete(
        self, lead: Lead, enrolment: Enrolment, now: datetime, *records: Record
    ) -> _Decision:
        activity = self._activity(
            lead.lead_id,
            ActivityType.PROGRAM_COMPLETED,
            now,
            enrolment.program_id,
            outcome=enrolment.outcome,
        )
        # Re-engagement that ends unanswered: stop mailing, for the sender's reputation.
        sunset = enrolment.outcome == SUNSET
        stage, back = returning(lead, enrolment, self._programs.get(enrolment.program_id), now)
        revision = self._revision(
            lead,
            now,
            [*records, activity, *([back] if back else [])],
            enrolment=enrolment,
            sunset=lead.sunset or sunset,
            **stage,
        )
        return _Decision(Outcome.COMPLETED, revision)

    def _suppress(self, lead_id: str, now: datetime, reason: str, record: SendRecord) -> Outcome:
        def change(snapshot: Snapshot) -> Revision | None:
            if snapshot.lead is None:
                return None
            lead = suppressed(snapshot.lead, now, reason) or snapshot.lead
            activity = Activity(
                lead_id=lead_id, type=ActivityType.SUPPRESSED, at=now, details={"reason": reason}
            )
            return self._revision(lead, now, [activity, record])

        revised = self._leads.revise(lead_id, change)
        return Outcome.REJECTED if revised.changed else Outcome.STALE


@dataclass(frozen=True)
class _Decision:
    """What a job does to the lead as read: an outcome, the revision to write, and then
    either a step to send (after the write) or the next job due at once."""

    outcome: Outcome
    revision: Revision | None = None
    send: tuple[Enrolment, Program, Step, datetime] | None = None
    then: SendJob | None = None


def _same_enrolment(a: Enrolment, b: Enrolment) -> bool:
    return (
        a.program_id == b.program_id
        and a.event_id == b.event_id
        and a.enrolled_at == b.enrolled_at
        and a.completed_at is None
    )

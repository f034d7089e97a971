"""The sender's use case: take one send job and make the right email go out, once.

A job only says "this lead's program step may be due". Everything is checked again on
a fresh read, because the lead may have changed since the scheduler saw it: consent,
suppression, unsubscription, stage (exit rule), the send window and the frequency cap.
A ledger record per (lead, enrolment, step) claimed before the send makes duplicate
jobs, retried batches and overlapping ticks harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.clock import Clock, to_iso
from shared.email import (
    EmailRenderer,
    Mailer,
    OutgoingEmail,
    SendFailed,
    SendRejected,
    SendThrottled,
)
from shared.funnel import SUNSET_PREFIX, SUPPRESSED_REJECTED, Counters, count_list, count_transition
from shared.leads import Activity, ActivityType, Enrolment, Lead, SendRecord
from shared.lifecycle import returning, review, schedule_review
from shared.machine_engagement import tracked_links
from shared.nurture import (
    after_send,
    decide,
    exit_reason,
    finish,
    leave,
    prune_sends,
    skip,
    skip_reason,
    variant_label,
    variant_of,
    within_cap,
)
from shared.programs import SUNSET, Program, ProgramCatalog, Step
from shared.qualification import business_day
from shared.repository import REVIEW, LeadRepository, Record, SendLedger, VersionConflict
from shared.tokens import UnsubscribeTokens

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class SendJob:
    lead_id: str
    program_id: str
    step_id: str | None  # None: the job is to decide a branch (and send if due)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, body: str) -> SendJob:
        data: dict[str, Any] = json.loads(body)
        return cls(str(data["lead_id"]), str(data["program_id"]), data.get("step_id"))


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
    DORMANT = "dormant"  # a review found no engagement: the lead enters re-engagement


@dataclass(frozen=True)
class DeliverySettings:
    from_address: str
    unsubscribe_url: str
    frequency_cap: int = 3  # marketing emails per lead per rolling 7 days
    throttle_backoff: timedelta = timedelta(minutes=5)
    dormant_after: timedelta = timedelta(days=90)  # no engagement for this long: dormant


def ledger_key(enrolment: Enrolment, step: Step) -> str:
    # The enrolment time is part of the key: a lead re-enrolled later may get the step again.
    return f"{enrolment.program_id}#{to_iso(enrolment.enrolled_at)}#{step.id}"


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
        counters: Counters | None = None,
    ) -> None:
        self._leads = leads
        self._ledger = ledger
        self._mailer = mailer
        self._programs = programs
        self._renderer = renderer
        self._tokens = tokens
        self._clock = clock
        self._settings = settings
        self._counters = counters

    def process(self, job: SendJob) -> Outcome:
        if job.program_id == REVIEW:
            return self._retrying(lambda: self._review(job.lead_id))
        return self._retrying(lambda: self._process(job))

    def _review(self, lead_id: str) -> Outcome:
        lead = self._leads.get(lead_id)
        now = self._clock.now()
        if lead is None or lead.review_at is None or lead.review_at > now:
            return Outcome.STALE
        changes, activity = review(lead, now, self._settings.dormant_after, self._programs)
        self._save(lead, now, records=[activity] if activity else [], **changes)
        if activity:
            day = business_day(now)
            count_transition(self._counters, day, lead.stage, changes["stage"])
        return Outcome.DORMANT if activity else Outcome.RESCHEDULED

    def _retrying(self, attempt: Callable[[], Outcome]) -> Outcome:
        for _ in range(MAX_ATTEMPTS):
            try:
                return attempt()
            except VersionConflict:
                continue  # the lead changed under us: read it again
        raise VersionConflict("lead kept changing; the job will be retried")

    # -- deciding -----------------------------------------------------------------------

    def _process(self, job: SendJob) -> Outcome:
        lead = self._leads.get(job.lead_id)
        enrolment = lead.enrolment if lead else None
        if lead is None or enrolment is None or enrolment.completed_at is not None:
            return Outcome.STALE
        if enrolment.program_id != job.program_id or enrolment.step_id != job.step_id:
            return Outcome.STALE
        now = self._clock.now()
        if enrolment.due_at is None or enrolment.due_at > now:
            return Outcome.STALE
        program = self._programs.get(enrolment.program_id)
        reason = exit_reason(lead, program) if program else "program_removed"
        if program is None or reason:
            return self._exit(lead, enrolment, now, reason or "program_removed")

        if enrolment.awaiting is not None:
            enrolment = decide(enrolment, program, now)
            if enrolment.completed_at is not None:
                return self._complete(lead, enrolment, now)
            self._save(lead, now, enrolment=enrolment)
            if enrolment.due_at is not None and enrolment.due_at > now:
                return Outcome.DECIDED
            # The chosen step is due at once: carry on as its own job would.
            return self._process(SendJob(lead.lead_id, program.id, enrolment.step_id))
        step = self._step(program, enrolment.step_id)
        if step is None:
            return self._exit(lead, enrolment, now, "step_removed")
        unfit = skip_reason(lead, step)
        if unfit is not None:
            return self._skip(lead, enrolment, program, step, now, unfit)

        window = program.send_window
        if not window.contains(now):
            return self._reschedule(lead, enrolment, now, window.next_open(now), "send_window")
        ages_out = within_cap(lead.recent_sends, now, self._settings.frequency_cap)
        if ages_out is not None:
            later = window.next_open(ages_out)
            return self._reschedule(lead, enrolment, now, later, "frequency_cap")
        return self._send(lead, enrolment, program, step, now)

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
    ) -> Outcome:
        moved = skip(enrolment, program, step, now, reason)
        skipped = self._activity(
            lead.lead_id, ActivityType.STEP_SKIPPED, now, program.id, step_id=step.id, reason=reason
        )
        if moved.completed_at is not None:
            return self._complete(lead, moved, now, skipped)
        self._save(lead, now, records=[skipped], enrolment=moved)
        if moved.due_at is not None and moved.due_at > now:
            return Outcome.SKIPPED
        # The next step is due at once: carry on as its own job would.
        return self._process(SendJob(lead.lead_id, program.id, moved.step_id))

    # -- sending ------------------------------------------------------------------------

    def _send(
        self, lead: Lead, enrolment: Enrolment, program: Program, step: Step, now: datetime
    ) -> Outcome:
        key = ledger_key(enrolment, step)
        variant = variant_of(lead.lead_id, program, step)
        label = variant_label(variant)
        if not self._ledger.claim(lead.lead_id, key, now):
            # Sent already (a duplicate job, or a crash after the send): only move on.
            moved = self._advance(lead, enrolment, program, step, label, None, None)
            return Outcome.DUPLICATE if moved else Outcome.STALE

        unsubscribe_url = f"{self._settings.unsubscribe_url}?t={self._tokens.sign(lead.lead_id)}"
        # Site links carry a signed lead reference: a visit through one is the lead's.
        site_ref = self._tokens.site_references().sign(lead.lead_id)
        rendered = self._renderer.render(
            lead, program, step, variant, unsubscribe_url, site_ref=site_ref
        )
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
            },
        )
        try:
            message_id = self._mailer.send(email)
        except SendThrottled:
            self._ledger.release(lead.lead_id, key)
            later = now + self._settings.throttle_backoff
            return self._retrying(
                lambda: self._reschedule_fresh(lead.lead_id, enrolment, now, later, "throttled")
            )
        except SendFailed:
            # SES answered, so nothing went out: free the step and let SQS retry the job.
            # (A transport error is left claimed: the email may have gone, and a
            # duplicate is worse for the recipient and the sender's reputation.)
            self._ledger.release(lead.lead_id, key)
            raise
        except SendRejected as exc:
            reason = f"ses:{exc}"
            rejected = SendRecord(lead_id=lead.lead_id, key=key, status="rejected", at=now)
            return self._retrying(lambda: self._suppress(lead.lead_id, now, reason, rejected))
        sent = SendRecord(
            lead_id=lead.lead_id, key=key, status="sent", at=now, message_id=message_id
        )
        self._advance(lead, enrolment, program, step, label, sent, rendered.subject)
        return Outcome.SENT

    def _advance(
        self,
        snapshot: Lead,
        sent_from: Enrolment,
        program: Program,
        step: Step,
        variant: str,
        sent: SendRecord | None,
        subject: str | None,
    ) -> bool:
        """Record the send and move the lead past ``step``, unless it has moved already.

        The ``email_sent`` activity and the completed send record are written first, with
        keys that make rewriting them harmless; then the lead moves on, conditional on
        its version. A crash in between leaves a "sent" record, so the retried job moves
        the lead on without sending again. The first attempt uses the lead as read
        before the send; a version conflict re-reads it.
        """
        lead_id = snapshot.lead_id
        if sent is not None:
            activity = Activity(
                activity_id=hashlib.sha256(sent.key.encode()).hexdigest()[:32],
                lead_id=lead_id,
                type=ActivityType.EMAIL_SENT,
                at=sent.at,
                details={
                    "program_id": program.id,
                    "step_id": step.id,
                    "variant": variant,
                    "content_type": step.content_type.value,
                    "subject": subject,
                    "message_id": sent.message_id,
                },
            )
            self._leads.append([sent, activity])
        unread: list[Lead] = [snapshot]

        def attempt() -> Outcome:
            lead = unread.pop() if unread else self._leads.get(lead_id)
            current = lead.enrolment if lead else None
            if lead is None or current is None or not _same_enrolment(current, sent_from):
                return Outcome.STALE
            now = self._clock.now()
            changes: dict[str, Any] = {}
            records: list[Record] = []
            # A concurrent duplicate job may have moved the lead on already; the send
            # still counts towards the frequency cap.
            back: Activity | None = None
            if current.step_id == step.id and current.awaiting is None:
                message_id = sent.message_id if sent else None
                advanced = after_send(current, program, step, now, variant, message_id)
                changes["enrolment"] = advanced
                if advanced.completed_at is not None:
                    records.append(
                        self._activity(lead_id, ActivityType.PROGRAM_COMPLETED, now, program.id)
                    )
                    stage, back = returning(lead, advanced, program, now)
                    changes.update(stage)
                    records.extend([back] if back else [])
            if sent is not None and sent.at not in lead.recent_sends:
                changes["recent_sends"] = (*prune_sends(lead.recent_sends, now), sent.at)
            if not changes:
                return Outcome.STALE
            self._save(lead, now, records=records, **changes)
            if back is not None:
                count_transition(self._counters, business_day(now), lead.stage, changes["stage"])
            return Outcome.SENT

        return self._retrying(attempt) is Outcome.SENT

    # -- state changes -------------------------------------------------------------------

    def _save(
        self, lead: Lead, now: datetime, records: list[Record] | None = None, **changes: Any
    ) -> None:
        updated = lead.model_copy(
            update={**changes, "updated_at": now, "version": lead.version + 1}
        )
        # Out of its program now? Then the due index watches it for dormancy instead.
        updated = schedule_review(updated, now, self._settings.dormant_after)
        self._leads.replace(updated, lead.version, records or [])

    @staticmethod
    def _activity(
        lead_id: str, kind: ActivityType, at: datetime, program_id: str, **details: Any
    ) -> Activity:
        return Activity(
            lead_id=lead_id, type=kind, at=at, details={"program_id": program_id, **details}
        )

    def _reschedule(
        self, lead: Lead, enrolment: Enrolment, now: datetime, to: datetime, reason: str
    ) -> Outcome:
        activity = self._activity(
            lead.lead_id,
            ActivityType.RESCHEDULED,
            now,
            enrolment.program_id,
            step_id=enrolment.step_id,
            reason=reason,
            due_at=to_iso(to),
        )
        self._save(
            lead, now, records=[activity], enrolment=enrolment.model_copy(update={"due_at": to})
        )
        return Outcome.THROTTLED if reason == "throttled" else Outcome.RESCHEDULED

    def _reschedule_fresh(
        self, lead_id: str, enrolment: Enrolment, now: datetime, to: datetime, reason: str
    ) -> Outcome:
        lead = self._leads.get(lead_id)
        if lead is None or lead.enrolment is None or not _same_enrolment(lead.enrolment, enrolment):
            return Outcome.STALE
        return self._reschedule(lead, lead.enrolment, now, to, reason)

    def _exit(self, lead: Lead, enrolment: Enrolment, now: datetime, reason: str) -> Outcome:
        activity = self._activity(
            lead.lead_id, ActivityType.PROGRAM_EXITED, now, enrolment.program_id, reason=reason
        )
        self._save(
            lead, now, records=[activity], enrolment=finish(enrolment, now, f"exited:{reason}")
        )
        return Outcome.EXITED

    def _complete(
        self, lead: Lead, enrolment: Enrolment, now: datetime, *records: Record
    ) -> Outcome:
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
        self._save(
            lead,
            now,
            records=[*records, activity, *([back] if back else [])],
            enrolment=enrolment,
            sunset=lead.sunset or sunset,
            **stage,
        )
        if sunset and not lead.sunset:
            count_list(self._counters, business_day(now), SUNSET_PREFIX + lead.stage.value)
        if back is not None:
            count_transition(self._counters, business_day(now), lead.stage, stage["stage"])
        return Outcome.COMPLETED

    def _suppress(self, lead_id: str, now: datetime, reason: str, record: SendRecord) -> Outcome:
        lead = self._leads.get(lead_id)
        if lead is None:
            return Outcome.STALE
        changes: dict[str, Any] = {
            "suppressed": True,
            "suppression_reason": reason,
            "enrolment": leave(lead.enrolment, now, "exited:suppressed"),
        }
        activity = Activity(
            lead_id=lead_id, type=ActivityType.SUPPRESSED, at=now, details={"reason": reason}
        )
        self._save(lead, now, records=[activity, record], **changes)
        if not lead.suppressed:
            count_list(self._counters, business_day(now), SUPPRESSED_REJECTED)
        return Outcome.REJECTED


def _same_enrolment(a: Enrolment, b: Enrolment) -> bool:
    return (
        a.program_id == b.program_id and a.enrolled_at == b.enrolled_at and a.completed_at is None
    )

"""Engagement: what each SES event does to its lead.

Events arrive at least once and in any order. Each is recognised as a duplicate by its
dedupe key before it changes anything. Suppression only ever switches on: a permanent
bounce or a complaint suppresses the address for good, and a later (or earlier-sent)
open cannot undo it. Opens and clicks feed the program's branches and the score.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.clock import Clock
from shared.funnel import (
    SUPPRESSED_BOUNCE,
    SUPPRESSED_COMPLAINT,
    SUPPRESSED_PREFIX,
    UNSUBSCRIBED,
    Counters,
    count_list,
)
from shared.leads import Activity, ActivityType, Lead
from shared.nurture import leave, record_engagement
from shared.programs import Engagement, ProgramCatalog
from shared.qualification import Award, ScoreKeeper, business_day
from shared.repository import LeadRepository, VersionConflict
from shared.scoring import Signal
from shared.ses_events import EmailEvent, EmailEventType

MAX_ATTEMPTS = 8

ACTIVITY = {
    EmailEventType.SEND: ActivityType.EMAIL_SEND_ACCEPTED,
    EmailEventType.DELIVERY: ActivityType.EMAIL_DELIVERED,
    EmailEventType.OPEN: ActivityType.EMAIL_OPENED,
    EmailEventType.CLICK: ActivityType.EMAIL_CLICKED,
    EmailEventType.BOUNCE: ActivityType.EMAIL_BOUNCED,
    EmailEventType.COMPLAINT: ActivityType.EMAIL_COMPLAINED,
    EmailEventType.REJECT: ActivityType.EMAIL_REJECTED,
    EmailEventType.RENDERING_FAILURE: ActivityType.EMAIL_RENDERING_FAILED,
    EmailEventType.DELIVERY_DELAY: ActivityType.EMAIL_DELAYED,
    EmailEventType.SUBSCRIPTION: ActivityType.UNSUBSCRIBED,
}
# Report counter names per event type.
METRIC = {
    EmailEventType.SEND: "sent",
    EmailEventType.DELIVERY: "delivered",
    EmailEventType.OPEN: "opens",
    EmailEventType.CLICK: "clicks",
    EmailEventType.BOUNCE: "bounces",
    EmailEventType.COMPLAINT: "complaints",
    EmailEventType.REJECT: "rejects",
    EmailEventType.RENDERING_FAILURE: "rendering_failures",
    EmailEventType.DELIVERY_DELAY: "delays",
    EmailEventType.SUBSCRIPTION: "unsubscribes",
}
# List-health counter per suppression reason (see shared.funnel).
SUPPRESSION_METRIC = {
    "bounce:permanent": SUPPRESSED_BOUNCE,
    "bounce:transient": SUPPRESSED_BOUNCE,
    "complaint": SUPPRESSED_COMPLAINT,
}


class EngagementOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    UNKNOWN_LEAD = "unknown_lead"


class EngagementRecorder:
    def __init__(
        self,
        leads: LeadRepository,
        scores: ScoreKeeper,
        programs: ProgramCatalog,
        clock: Clock,
        transient_bounce_limit: int = 3,
        counters: Counters | None = None,
    ) -> None:
        self._leads = leads
        self._scores = scores
        self._programs = programs
        self._clock = clock
        self._transient_limit = transient_bounce_limit
        self._counters = counters

    def record(self, event: EmailEvent) -> EngagementOutcome:
        """Apply the event once, however often it is delivered.

        Lead state changes are idempotent and run on every delivery, so a retry finishes
        what a failed attempt began. The counted parts (score, daily caps, report
        counter) commit in one write with the event's marker: exactly once. A lead
        taken off the list is counted after the write that did it (list health), so
        an event that finds it off already counts nothing. The activity is keyed by
        the event, so writing it again is harmless.
        """
        lead = self._find(event)
        if lead is None:
            return EngagementOutcome.UNKNOWN_LEAD
        lead_id = lead.lead_id
        signal = self._state(lead, event)
        counter = None
        if event.program_id:
            counter = (
                business_day(event.at),
                f"email#{event.program_id}#{event.step_id}#{event.variant}",
                METRIC[event.type],
            )
        award, duplicate = self._scores.record_event(
            lead_id, event.dedupe_key, signal, event.at, event.link_tags, counter
        )
        self._leads.append([self._activity(lead_id, event, event.dedupe_key, award)])
        if award.points > 0:
            self._scores.qualify(lead_id, reason="score")
        return EngagementOutcome.DUPLICATE if duplicate else EngagementOutcome.RECORDED

    def _find(self, event: EmailEvent) -> Lead | None:
        if event.lead_id:
            lead = self._leads.get(event.lead_id)
            if lead is not None:
                return lead
        for address in event.recipients:
            lead = self._leads.find_by_email(address)
            if lead is not None:
                return lead
        return None

    def _state(self, lead: Lead, event: EmailEvent) -> Signal | None:
        """Change the lead as the event says (idempotently); the signal it scores, if any."""
        if event.type in (EmailEventType.OPEN, EmailEventType.CLICK):
            self._update(lead, lambda current: self._engaged(current, event))
            return Signal.OPEN if event.type is EmailEventType.OPEN else Signal.CLICK
        if event.type is EmailEventType.BOUNCE:
            self._update(lead, lambda current: self._bounced(current, event))
            return Signal.BOUNCE if event.permanent_bounce else None
        if event.type is EmailEventType.COMPLAINT:
            self._update(lead, lambda current: _suppress(current, event.at, "complaint"))
        elif event.type is EmailEventType.DELIVERY:
            self._update(lead, lambda current: _delivered(current, event.at))
        elif event.unsubscribed_all:
            self._update(lead, lambda current: _unsubscribe(current, event.at))
            return Signal.UNSUBSCRIBE
        return None

    def _update(self, found: Lead, change: Callable[[Lead], dict[str, Any] | None]) -> None:
        """Write ``change`` of the lead, starting from the copy just found; read again
        only when another writer got there first."""
        lead_id = found.lead_id
        unread: list[Lead] = [found]
        for _ in range(MAX_ATTEMPTS):
            lead = unread.pop() if unread else self._leads.get(lead_id)
            if lead is None:
                return
            changes = change(lead)
            if not changes:
                return
            now = self._clock.now()
            updated = lead.model_copy(
                update={**changes, "updated_at": now, "version": lead.version + 1}
            )
            try:
                self._leads.replace(updated, lead.version, [])
            except VersionConflict:
                continue
            self._count_opt_out(lead, updated, now)
            return
        raise VersionConflict(lead_id)

    def _count_opt_out(self, before: Lead, after: Lead, now: datetime) -> None:
        """List health, counted on the write that switched the flag: a redelivered event
        finds it switched already and writes nothing, so it counts once."""
        day = business_day(now)
        if after.suppressed and not before.suppressed:
            reason = after.suppression_reason or ""
            metric = SUPPRESSION_METRIC.get(reason, SUPPRESSED_PREFIX + reason)
            count_list(self._counters, day, metric)
        elif after.unsubscribed and not before.unsubscribed:
            count_list(self._counters, day, UNSUBSCRIBED)

    def _engaged(self, lead: Lead, event: EmailEvent) -> dict[str, Any] | None:
        enrolment = lead.enrolment
        if enrolment is None or event.step_id is None or enrolment.program_id != event.program_id:
            return None
        kind = Engagement.OPENED if event.type is EmailEventType.OPEN else Engagement.CLICKED
        program = self._programs.get(enrolment.program_id)
        changed = record_engagement(
            enrolment, program, event.step_id, kind, event.at, event.link_tags
        )
        return {"enrolment": changed} if changed != enrolment else None

    def _bounced(self, lead: Lead, event: EmailEvent) -> dict[str, Any] | None:
        if event.permanent_bounce:
            return _suppress(lead, event.at, "bounce:permanent")
        # Events arrive out of order: a bounce older than the last delivery is not part
        # of the current run; a redelivered bounce is already counted.
        if lead.last_delivered_at is not None and event.at <= lead.last_delivered_at:
            return None
        key = event.dedupe_key
        if key in lead.soft_bounce_keys:
            return None
        keys = (*lead.soft_bounce_keys, key)
        count = len(keys)
        changes: dict[str, Any] = {
            "transient_bounces": count,
            "soft_bounce_keys": keys,
            "last_soft_bounce_at": max(event.at, lead.last_soft_bounce_at or event.at),
        }
        if count >= self._transient_limit:
            changes.update(_suppress(lead, event.at, "bounce:transient") or {})
        return changes

    @staticmethod
    def _activity(lead_id: str, event: EmailEvent, key: str, award: Award) -> Activity:
        details: dict[str, Any] = {
            "message_id": event.message_id,
            "program_id": event.program_id,
            "step_id": event.step_id,
            "variant": event.variant,
        }
        if event.link:
            details["link"] = event.link
            details["link_tags"] = list(event.link_tags)
        if event.type is EmailEventType.BOUNCE:
            details["bounce_type"] = event.detail.get("bounceType")
            details["bounce_subtype"] = event.detail.get("bounceSubType")
        if event.type is EmailEventType.COMPLAINT:
            details["feedback_type"] = event.detail.get("complaintFeedbackType")
        if award.rules:
            details.update(award.as_details())
        return Activity(
            activity_id=key,
            lead_id=lead_id,
            type=ACTIVITY[event.type],
            at=event.at,
            details={k: v for k, v in details.items() if v is not None},
        )


def _delivered(lead: Lead, at: datetime) -> dict[str, Any] | None:
    """Soft bounces count "in a row": a delivery after the last of them ends the run."""
    changes: dict[str, Any] = {}
    if lead.last_delivered_at is None or at > lead.last_delivered_at:
        changes["last_delivered_at"] = at
    after_bounces = lead.last_soft_bounce_at is None or at > lead.last_soft_bounce_at
    if lead.transient_bounces and after_bounces:
        changes.update(transient_bounces=0, soft_bounce_keys=())
    return changes or None


def _suppress(lead: Lead, at: datetime, reason: str) -> dict[str, Any] | None:
    if lead.suppressed:
        return None  # for good: the first reason stays
    return {
        "suppressed": True,
        "suppression_reason": reason,
        "enrolment": leave(lead.enrolment, at, "exited:suppressed"),
    }


def _unsubscribe(lead: Lead, at: datetime) -> dict[str, Any] | None:
    if lead.unsubscribed:
        return None
    return {"unsubscribed": True, "enrolment": leave(lead.enrolment, at, "exited:unsubscribed")}

"""Engagement: what each SES event does to its lead.

Events arrive at least once and in any order. Each is recognised as a duplicate by its
dedupe key before it changes anything. Suppression only ever switches on: a permanent
bounce or a complaint suppresses the address for good, and a later (or earlier-sent)
open cannot undo it. A person's opens and clicks feed the program's branches and the
score; a machine's (``shared.machine_engagement``) are only recorded, labelled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
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
from shared.machine_engagement import (
    EngagementRules,
    Kind,
    MailAction,
    MailRecord,
    as_details,
    counter_delta,
    load_engagement_rules,
    screen,
)
from shared.nurture import leave, record_engagement, recount_engagement
from shared.programs import Engagement, ProgramCatalog
from shared.qualification import Award, ReportCount, ScoreKeeper, business_day
from shared.repository import LeadRepository, VersionConflict
from shared.scoring import Signal
from shared.ses_events import EmailEvent, EmailEventType

MAX_ATTEMPTS = 8
# An email's record is written by each of its events; a scanner's burst of a dozen clicks
# processed at once must all get through.
MAIL_ATTEMPTS = 40
# Events kept on the email's record (``shared.machine_engagement``).
KINDS = {EmailEventType.OPEN: Kind.OPEN, EmailEventType.CLICK: Kind.CLICK}
EVENT_TYPES = {kind: event_type for event_type, kind in KINDS.items()}
SIGNALS = {Kind.OPEN: Signal.OPEN, Kind.CLICK: Signal.CLICK}

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
        machines: EngagementRules | None = None,
    ) -> None:
        self._leads = leads
        self._scores = scores
        self._programs = programs
        self._clock = clock
        self._transient_limit = transient_bounce_limit
        self._counters = counters
        self._machines = load_engagement_rules() if machines is None else machines

    def record(self, event: EmailEvent, peers: Sequence[EmailEvent] = ()) -> EngagementOutcome:
        """Apply the event once, however often it is delivered.

        Lead state changes are idempotent and run on every delivery, so a retry finishes
        what a failed attempt began. The counted parts (score, daily caps, report
        counters, the email's record of opens and clicks) commit in one write with the
        event's marker: exactly once. A lead taken off the list is counted after the
        write that did it (list health), so an event that finds it off already counts
        nothing. Activities are keyed by their event, so writing one again is harmless.
        ``peers`` are the other events of the batch: a scanner's clicks on one email
        arrive together, and each is known for a machine's from the first.
        """
        lead = self._find(event)
        if lead is None:
            return EngagementOutcome.UNKNOWN_LEAD
        lead_id = lead.lead_id
        signal = self._state(lead, event)
        if event.type in KINDS or event.type is EmailEventType.DELIVERY:
            award, duplicate = self._screened(lead, event, peers)
        else:
            award, duplicate = self._scores.record_event(
                lead_id,
                event.dedupe_key,
                signal,
                event.at,
                event.link_tags,
                self._counter(event, {METRIC[event.type]: 1}),
            )
            self._leads.append([self._activity(lead_id, event, award)])
        if award.points > 0:
            self._scores.qualify(lead_id, reason="score")
        return EngagementOutcome.DUPLICATE if duplicate else EngagementOutcome.RECORDED

    @staticmethod
    def _counter(event: EmailEvent, metrics: dict[str, int]) -> ReportCount | None:
        if not event.program_id:
            return None
        key = f"email#{event.program_id}#{event.step_id}#{event.variant}"
        return ReportCount(business_day(event.at), key, metrics)

    def _screened(
        self, lead: Lead, event: EmailEvent, peers: Sequence[EmailEvent]
    ) -> tuple[Award, bool]:
        """An open, click or delivery: screened for machines on the email's record and
        committed with it; then the program and the timeline follow what people did."""
        lead_id = lead.lead_id
        key = event.dedupe_key
        kind = KINDS.get(event.type)
        others = [
            self._action(peer, Kind.CLICK)
            for peer in peers
            if peer.type is EmailEventType.CLICK
            and peer.message_id == event.message_id
            and peer.dedupe_key != key
        ]
        for _ in range(MAIL_ATTEMPTS):
            done = self._attempt(lead, event, kind, others)
            if done is not None:
                return done
            # Another event of the email got there first: screen it again.
        raise VersionConflict(lead_id)

    def _attempt(
        self, lead: Lead, event: EmailEvent, kind: Kind | None, others: Sequence[MailAction]
    ) -> tuple[Award, bool] | None:
        """One read-screen-commit of the email's record; None if the record changed."""
        lead_id = lead.lead_id
        key = event.dedupe_key
        stored = self._scores.mail_record(lead_id, event.message_id)
        base = stored or MailRecord(
            lead_id=lead_id, message_id=event.message_id, sent_at=event.sent_at, links=event.links
        )
        if kind is not None and base.find(key) is not None:
            # Committed before (the record and the marker are one write).
            award = self._scores.recorded(lead_id, key)
            self._follow(lead, event, base, award, turned=None)
            return award, True
        draft = base
        if event.sent_at is not None and (base.sent_at is None or event.sent_at < base.sent_at):
            draft = draft.model_copy(update={"sent_at": event.sent_at})
        if event.type is EmailEventType.DELIVERY and (
            draft.delivered_at is None or event.at < draft.delivered_at
        ):
            draft = draft.model_copy(update={"delivered_at": event.at})
        if kind is not None:
            draft = draft.with_event(self._action(event, kind))
        screened, turned = screen(draft, self._machines, others)
        action = screened.find(key) if kind is not None else None
        human = action is not None and not action.machine
        taken_back = sum((a.units for a in screened.events if a.key in turned), Decimal(0))
        metrics = {METRIC[event.type]: 1, **counter_delta(base.tally(), screened.tally())}
        built: list[MailRecord] = []

        def build(award: Award, units: Decimal) -> MailRecord:
            record = screened
            if action is not None:
                scored = action.model_copy(update={"points": award.points, "units": units})
                record = record.replace_event(scored)
            built.append(record.model_copy(update={"version": base.version + 1}))
            return built[-1]

        try:
            award, duplicate = self._scores.record_event(
                lead_id,
                key,
                SIGNALS[kind] if kind is not None and human else None,
                event.at,
                event.link_tags,
                self._counter(event, metrics),
                engaged=human if kind is not None else None,
                mail=build if screened != base else None,
                taken_back=taken_back,
            )
        except VersionConflict:
            return None
        if duplicate:
            record = self._scores.mail_record(lead_id, event.message_id) or base
            self._follow(lead, event, record, award, turned=None)
        else:
            self._follow(lead, event, built[-1] if built else base, award, turned=turned)
        return award, duplicate

    def _action(self, event: EmailEvent, kind: Kind) -> MailAction:
        return MailAction(
            key=event.dedupe_key,
            kind=kind,
            at=event.at,
            link=event.link,
            link_tags=event.link_tags,
            agent=self._machines.agent_reasons(kind, event.user_agent, event.ip_address),
        )

    def _follow(
        self,
        lead: Lead,
        event: EmailEvent,
        record: MailRecord,
        award: Award,
        turned: tuple[str, ...] | None,
    ) -> None:
        """The program and the timeline, after the commit (idempotent: a retry redoes it).

        ``turned``: the opens and clicks this event showed to be a machine's; None on a
        retry, which redoes it for every one the record shows taken back.
        """
        key = event.dedupe_key
        action = record.find(key)
        taken = [
            a
            for a in record.events
            if a.machine and a.points and (turned is None or a.key in turned) and a.key != key
        ]
        human = action is not None and not action.machine
        if human or taken:
            self._update(lead, lambda current: self._engaged(current, event, record, human, taken))
        if action is not None and action.machine and action.points:
            # Redelivered after a later click showed it a machine's: it stays taken back.
            activities = [self._taken_back(lead.lead_id, event, action)]
        else:
            activities = [self._activity(lead.lead_id, event, award, action)]
        activities.extend(self._taken_back(lead.lead_id, event, a) for a in taken)
        self._leads.append(activities)

    def _taken_back(self, lead_id: str, event: EmailEvent, action: MailAction) -> Activity:
        """The activity of an earlier open or click, now known for a machine's."""
        details: dict[str, Any] = {
            "message_id": event.message_id,
            "program_id": event.program_id,
            "step_id": event.step_id,
            "variant": event.variant,
            "link": action.link,
            "link_tags": list(action.link_tags) if action.kind is Kind.CLICK else None,
            **as_details(action),
            "points": 0,
            "points_taken_back": action.points,
        }
        return Activity(
            activity_id=action.key,
            lead_id=lead_id,
            type=ACTIVITY[EVENT_TYPES[action.kind]],
            at=action.at,
            details={k: v for k, v in details.items() if v is not None},
        )

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

    def _engaged(
        self,
        lead: Lead,
        event: EmailEvent,
        record: MailRecord,
        human: bool,
        taken: Sequence[MailAction],
    ) -> dict[str, Any] | None:
        """Note a person's open or click on the sent step (it may decide a branch); set the
        step to what people did when earlier ones turned out a machine's."""
        enrolment = lead.enrolment
        if enrolment is None or event.step_id is None or enrolment.program_id != event.program_id:
            return None
        program = self._programs.get(enrolment.program_id)
        changed = enrolment
        if taken:
            opens = record.human(Kind.OPEN)
            clicks = record.human(Kind.CLICK)
            changed = recount_engagement(
                changed,
                program,
                event.step_id,
                opened_at=min((a.at for a in (*opens, *clicks)), default=None),
                clicked_at=min((a.at for a in clicks), default=None),
                links=[tag for a in clicks for tag in a.link_tags],
            )
        if human:
            kind = Engagement.OPENED if event.type is EmailEventType.OPEN else Engagement.CLICKED
            changed = record_engagement(
                changed, program, event.step_id, kind, event.at, event.link_tags
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
    def _activity(
        lead_id: str, event: EmailEvent, award: Award, action: MailAction | None = None
    ) -> Activity:
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
        if action is not None:
            details.update(as_details(action))
        if award.rules:
            details.update(award.as_details())
        return Activity(
            activity_id=event.dedupe_key,
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

"""Engagement: what each SES event does to its lead.

Events arrive at least once and in any order. Each is recognised as a duplicate by its
dedupe key (its marker, written with everything the event changes) before it changes
anything. Suppression only ever switches on: a permanent
bounce or a complaint suppresses the address for good, and a later (or earlier-sent)
open cannot undo it. A person's opens and clicks feed the program's branches and the
score; a machine's (``shared.domain.machine_engagement``) are only recorded, labelled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from shared.domain.clock import Clock
from shared.domain.funnel import SENDTIME_PREFIX, ReportCount, business_day, email_key
from shared.domain.leads import Activity, ActivityType, Enrolment, Lead
from shared.domain.machine_engagement import (
    EngagementRules,
    Kind,
    MailAction,
    MailRecord,
    as_details,
    counter_delta,
    load_engagement_rules,
    screen,
)
from shared.domain.nurture import record_engagement, recount_engagement
from shared.domain.programs import Engagement, ProgramCatalog
from shared.domain.scoring import Signal
from shared.domain.sendtime import SendTimeGroup, engaged
from shared.domain.ses_events import EmailEvent, EmailEventType
from shared.domain.transitions import opted_out, suppressed
from shared.ports import LeadRepository, Marker, Revision, Snapshot
from shared.services.qualification import Award, ScoreKeeper

# Events kept on the email's record (``shared.domain.machine_engagement``).
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
# Report counter names per event type. The sender counts what it sent itself, and a
# lead's opt-out counts its unsubscribe (``shared.domain.funnel.lead_counts``): SES's Send is
# "accepted", and its subscription event counts nothing more.
METRIC = {
    EmailEventType.SEND: "accepted",
    EmailEventType.DELIVERY: "delivered",
    EmailEventType.OPEN: "opens",
    EmailEventType.CLICK: "clicks",
    EmailEventType.BOUNCE: "bounces",
    EmailEventType.COMPLAINT: "complaints",
    EmailEventType.REJECT: "rejects",
    EmailEventType.RENDERING_FAILURE: "rendering_failures",
    EmailEventType.DELIVERY_DELAY: "delays",
}


HARD_BOUNCES = "hard_bounces"


_ABOUT_EACH_RECIPIENT = frozenset({EmailEventType.BOUNCE, EmailEventType.COMPLAINT})


class EngagementOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    UNKNOWN_LEAD = "unknown_lead"


@dataclass(frozen=True)
class Recorded:
    """What one event did, for the function to count."""

    outcome: EngagementOutcome
    # An open or click recorded now: whether it was a machine's when it arrived (a later
    # event may still show it was); None for other events and for one recorded before.
    machine: bool | None = None
    qualified: bool = False  # it made the lead an MQL
    opted_out: bool = False  # it unsubscribed the lead (an SES subscription event)


class EngagementRecorder:
    def __init__(
        self,
        leads: LeadRepository,
        scores: ScoreKeeper,
        programs: ProgramCatalog,
        clock: Clock,
        transient_bounce_limit: int = 3,
        machines: EngagementRules | None = None,
    ) -> None:
        self._leads = leads
        self._scores = scores
        self._programs = programs
        self._clock = clock
        self._transient_limit = transient_bounce_limit
        self._machines = load_engagement_rules() if machines is None else machines

    def record(self, event: EmailEvent, peers: Sequence[EmailEvent] = ()) -> Recorded:
        """Apply the event once, however often it is delivered: one read (the lead, the
        email's record and the event's marker) and one write of everything it changes
        (the lead's state, score and program, the email's record, the activities, the
        report counters, the marker), or nothing if the marker says it was done.

        ``peers`` are the other events of the batch: a scanner's clicks on one email
        arrive together, and each is known for a machine's from the first.
        """
        # A bounce or complaint about a mail we did not tag (an identity notification)
        # may name several recipients: each one's lead is affected, not the first alone.
        every = event.lead_id is None and event.type in _ABOUT_EACH_RECIPIENT
        found = Recorded(EngagementOutcome.UNKNOWN_LEAD)
        for lead_id in self._lead_ids(event):
            recorded = self._record(lead_id, event, peers)
            if recorded.outcome is EngagementOutcome.UNKNOWN_LEAD:
                continue
            if not every:
                return recorded
            if found.outcome is not EngagementOutcome.RECORDED:
                found = recorded
        return found

    def _record(self, lead_id: str, event: EmailEvent, peers: Sequence[EmailEvent]) -> Recorded:
        others = [
            self._action(peer, Kind.CLICK)
            for peer in peers
            if peer.type is EmailEventType.CLICK
            and peer.message_id == event.message_id
            and peer.dedupe_key != event.dedupe_key
        ]
        screened = event.type in KINDS or event.type is EmailEventType.DELIVERY
        revised = self._leads.revise(
            lead_id,
            partial(self._change, event=event, others=others),
            marker=Marker(event.dedupe_key, event.at),
            mail=event.message_id if screened else None,
        )
        if revised.duplicate:
            return Recorded(EngagementOutcome.DUPLICATE)
        if revised.before is None:
            return Recorded(EngagementOutcome.UNKNOWN_LEAD)
        mail = revised.revision.mail if revised.revision else None
        action = mail.find(event.dedupe_key) if mail is not None and event.type in KINDS else None
        return Recorded(
            EngagementOutcome.RECORDED,
            machine=action.machine if action is not None else None,
            qualified=revised.qualified,
            opted_out=revised.opted_out,
        )

    def _lead_ids(self, event: EmailEvent) -> Iterator[str]:
        """The lead the email was sent to: its tag, or else (no tag, or a stale one) the
        lead that owns its address, each read only if wanted (the one before was not found,
        or the event is about each recipient)."""
        if event.lead_id:
            yield event.lead_id
        for address in event.recipients:
            lead_id, _ = self._leads.lead_of(address)
            if lead_id is not None and lead_id != event.lead_id:
                yield lead_id

    def _change(
        self, snapshot: Snapshot, *, event: EmailEvent, others: Sequence[MailAction]
    ) -> Revision | None:
        lead = snapshot.lead
        if lead is None:
            return None
        now = self._clock.now()
        changed, signal = self._state(lead, event)
        kind = KINDS.get(event.type)
        if kind is None and event.type is not EmailEventType.DELIVERY:
            taken = self._scores.take(
                changed, signal, event.at, now, link_tags=event.link_tags, reason="score"
            )
            activity = self._activity(lead.lead_id, event, taken.award)
            metric = METRIC.get(event.type)
            metrics = {metric: 1} if metric else {}
            if event.type is EmailEventType.BOUNCE and event.permanent_bounce:
                metrics[HARD_BOUNCES] = 1  # what SES's bounce rate (and the guard) counts
            counter = self._counter(event, metrics) if metrics else []
            return self._revision(lead, taken.lead, now, [activity, *taken.records], counter)
        return self._screened(lead, changed, snapshot.mail, event, kind, others, now)

    def _screened(
        self,
        lead: Lead,
        changed: Lead,
        stored: MailRecord | None,
        event: EmailEvent,
        kind: Kind | None,
        others: Sequence[MailAction],
        now: datetime,
    ) -> Revision | None:
        """An open, click or delivery: screened for machines on the email's record and
        written with it; the program and the timeline follow what people did."""
        lead_id, key = lead.lead_id, event.dedupe_key
        base = stored or MailRecord(
            lead_id=lead_id, message_id=event.message_id, sent_at=event.sent_at, links=event.links
        )
        if kind is not None and base.find(key) is not None:
            return None  # on the email's record already: written with its marker
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
        taken = self._scores.take(
            changed,
            SIGNALS[kind] if kind is not None and human else None,
            event.at,
            now,
            link_tags=event.link_tags,
            engaged=human if kind is not None else None,
            taken_back=taken_back,
            reason="score",
        )
        record = screened
        if action is not None:
            action = action.model_copy(update={"points": taken.award.points, "units": taken.units})
            record = record.replace_event(action)
        # Earlier opens and clicks this event showed to be a machine's, with their points.
        machine = [a for a in record.events if a.key in turned and a.points and a.key != key]
        updated = taken.lead
        if human:
            hours, weekdays = engaged(updated.engaged_hours, updated.engaged_weekdays, event.at)
            updated = updated.model_copy(
                update={"engaged_hours": hours, "engaged_weekdays": weekdays}
            )
        if human or machine:
            enrolment = self._engaged(updated, event, record, human, machine)
            if enrolment is not None:
                updated = updated.model_copy(update={"enrolment": enrolment})
        activities = [self._activity(lead_id, event, taken.award, action)]
        activities.extend(self._taken_back(lead_id, event, a) for a in machine)
        metrics = {METRIC[event.type]: 1, **counter_delta(base.tally(), screened.tally())}
        revision = self._revision(
            lead, updated, now, [*activities, *taken.records], self._counter(event, metrics)
        )
        mail = record.model_copy(update={"version": base.version + 1}) if record != base else None
        return Revision(revision.lead, revision.records, revision.counts, mail=mail)

    @staticmethod
    def _revision(
        before: Lead,
        after: Lead,
        now: datetime,
        records: list[Activity],
        counter: list[ReportCount],
    ) -> Revision:
        if after != before:
            after = after.model_copy(update={"updated_at": now})
        return Revision(after, records, counter)

    @staticmethod
    def _counter(event: EmailEvent, metrics: dict[str, int]) -> list[ReportCount]:
        """The email's counts, and its send-time group's (``shared.domain.sendtime``)."""
        if not event.program_id:
            return []
        day = business_day(event.at)
        counts = [
            ReportCount(day, email_key(event.program_id, event.step_id, event.variant), metrics)
        ]
        group = event.tags.get("send_time")
        if group in set(SendTimeGroup):
            counts.append(ReportCount(day, SENDTIME_PREFIX + group, metrics))
        return counts

    def _action(self, event: EmailEvent, kind: Kind) -> MailAction:
        return MailAction(
            key=event.dedupe_key,
            kind=kind,
            at=event.at,
            link=event.link,
            link_tags=event.link_tags,
            agent=self._machines.agent_reasons(kind, event.user_agent, event.ip_address),
        )

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

    def _state(self, lead: Lead, event: EmailEvent) -> tuple[Lead, Signal | None]:
        """The lead as the event leaves its state (unchanged if it is so already), and the
        signal it scores, if any."""
        if event.type is EmailEventType.BOUNCE:
            signal = Signal.BOUNCE if event.permanent_bounce else None
            return self._bounced(lead, event) or lead, signal
        if event.type is EmailEventType.COMPLAINT:
            return suppressed(lead, event.at, "complaint") or lead, None
        if event.type is EmailEventType.DELIVERY:
            return _delivered(lead, event.at) or lead, None
        if event.unsubscribed_all:
            return opted_out(lead, event.at) or lead, Signal.UNSUBSCRIBE
        return lead, None

    def _engaged(
        self,
        lead: Lead,
        event: EmailEvent,
        record: MailRecord,
        human: bool,
        taken: Sequence[MailAction],
    ) -> Enrolment | None:
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
        return changed if changed != enrolment else None

    def _bounced(self, lead: Lead, event: EmailEvent) -> Lead | None:
        if event.permanent_bounce:
            return suppressed(lead, event.at, "bounce:permanent")
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
        counted = lead.model_copy(update=changes)
        if count >= self._transient_limit:
            return suppressed(counted, event.at, "bounce:transient") or counted
        return counted

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


def _delivered(lead: Lead, at: datetime) -> Lead | None:
    """Soft bounces count "in a row": a delivery after the last of them ends the run."""
    changes: dict[str, Any] = {}
    if lead.last_delivered_at is None or at > lead.last_delivered_at:
        changes["last_delivered_at"] = at
    after_bounces = lead.last_soft_bounce_at is None or at > lead.last_soft_bounce_at
    if lead.transient_bounces and after_bounces:
        changes.update(transient_bounces=0, soft_bounce_keys=())
    return lead.model_copy(update=changes) if changes else None

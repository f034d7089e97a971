"""Opting out: one click in a mail client or a button on the page stops all marketing email."""

from __future__ import annotations

from shared.clock import Clock
from shared.funnel import UNSUBSCRIBED, Counters, count_list
from shared.leads import Activity, ActivityType
from shared.nurture import leave
from shared.qualification import ScoreKeeper, business_day
from shared.repository import LeadRepository, VersionConflict
from shared.scoring import Signal

MAX_ATTEMPTS = 5


class UnknownLead(LookupError):
    pass


def unsubscribe(
    repository: LeadRepository,
    clock: Clock,
    lead_id: str,
    via: str,
    scores: ScoreKeeper | None = None,
    counters: Counters | None = None,
) -> bool:
    """Opt the lead out now; True if it changed, False if it was already out (idempotent).

    The lead leaves its program, which also removes it from the due index. Opting out
    is a signal too: with a score keeper it costs the "unsubscribe" rule's points,
    noted on the activity. With counters it counts on the day's list health, once.
    """
    for _ in range(MAX_ATTEMPTS):
        lead = repository.get(lead_id)
        if lead is None:
            raise UnknownLead(lead_id)
        if lead.unsubscribed:
            return False
        now = clock.now()
        enrolment = lead.enrolment
        enrolment = leave(enrolment, now, "exited:unsubscribed")
        updated = lead.model_copy(
            update={
                "unsubscribed": True,
                "enrolment": enrolment,
                "updated_at": now,
                "version": lead.version + 1,
            }
        )
        activity = Activity(
            lead_id=lead_id, type=ActivityType.UNSUBSCRIBED, at=now, details={"via": via}
        )
        try:
            repository.replace(updated, lead.version, [activity])
        except VersionConflict:
            continue
        count_list(counters, business_day(now), UNSUBSCRIBED)
        if scores is not None:
            scores.award_activity(activity, Signal.UNSUBSCRIBE)
        return True
    raise VersionConflict(lead_id)

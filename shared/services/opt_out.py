"""Opting out: one click in a mail client or a button on the page stops all marketing email."""

from __future__ import annotations

from shared.domain.clock import Clock
from shared.domain.leads import Activity, ActivityType
from shared.domain.scoring import Signal
from shared.domain.transitions import opted_out
from shared.ports import LeadRepository, Revision, Snapshot, UnknownLead
from shared.services.qualification import ScoreKeeper


def unsubscribe(
    repository: LeadRepository,
    clock: Clock,
    lead_id: str,
    via: str,
    scores: ScoreKeeper | None = None,
) -> bool:
    """Opt the lead out now; True if it changed, False if it was already out (idempotent).

    The lead leaves its program, which also removes it from the due index. Opting out
    is a signal too: with a score keeper it costs the "unsubscribe" rule's points,
    noted on the activity. The list-health count is part of the same write.
    """

    def change(snapshot: Snapshot) -> Revision | None:
        if snapshot.lead is None:
            raise UnknownLead(lead_id)
        now = clock.now()
        updated = opted_out(snapshot.lead, now)
        if updated is None:
            return None
        activity = Activity(
            lead_id=lead_id, type=ActivityType.UNSUBSCRIBED, at=now, details={"via": via}
        )
        if scores is not None:
            taken = scores.take(updated, Signal.UNSUBSCRIBE, now, now)
            updated = taken.lead
            if taken.award.rules:
                details = {**activity.details, **taken.award.as_details()}
                activity = activity.model_copy(update={"details": details})
        return Revision(updated, [activity])

    return repository.revise(lead_id, change).changed

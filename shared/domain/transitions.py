"""Changes of a lead that several paths make, defined once (pure).

Each returns the changed lead, or None when the lead is that way already, so that a
repeated request changes nothing (and counts nothing: ``shared.domain.funnel.lead_counts``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.domain.leads import Activity, ActivityType, Lead, Stage
from shared.domain.nurture import leave


def opted_out(lead: Lead, at: datetime) -> Lead | None:
    """Unsubscribed from all marketing email; out of its program (and the due index)."""
    if lead.unsubscribed:
        return None
    return lead.model_copy(
        update={
            "unsubscribed": True,
            **_out_of_programs(lead, at, "exited:unsubscribed"),
            "updated_at": at,
        }
    )


def suppressed(lead: Lead, at: datetime, reason: str) -> Lead | None:
    """Never mailed again (a hard bounce, a complaint, SES's refusal); for good: the
    first reason stays."""
    if lead.suppressed:
        return None
    return lead.model_copy(
        update={
            "suppressed": True,
            "suppression_reason": reason,
            **_out_of_programs(lead, at, "exited:suppressed"),
            "updated_at": at,
        }
    )


def staged(lead: Lead, stage: Stage, at: datetime) -> Lead:
    """Moved to ``stage``, leaving the program it followed (``exited:stage:<stage>``)."""
    return lead.model_copy(
        update={
            "stage": stage,
            "stage_changed_at": at,
            "enrolment": leave(lead.enrolment, at, f"exited:stage:{stage.value}"),
            "updated_at": at,
        }
    )


def _out_of_programs(lead: Lead, at: datetime, outcome: str) -> dict[str, Any]:
    """Out of its nurture program and its events' programs: a lead mailed again later
    (a fresh opt-in) must not get an event's emails out of their time."""
    registrations = {
        event_id: registration.model_copy(
            update={"enrolment": leave(registration.enrolment, at, outcome)}
        )
        for event_id, registration in lead.registrations.items()
    }
    return {"enrolment": leave(lead.enrolment, at, outcome), "registrations": registrations}


def stage_changed(
    lead: Lead, target: Stage, at: datetime, reason: str | None, **details: Any
) -> Activity:
    """The timeline's record of a stage change, with why and whatever else explains it."""
    return Activity(
        lead_id=lead.lead_id,
        type=ActivityType.STAGE_CHANGED,
        at=at,
        details={"from": lead.stage.value, "to": target.value, "reason": reason, **details},
    )

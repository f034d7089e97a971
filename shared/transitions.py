"""Changes of a lead that several paths make, defined once (pure).

Each returns the changed lead, or None when the lead is that way already, so that a
repeated request changes nothing (and counts nothing: ``shared.funnel.lead_counts``).
"""

from __future__ import annotations

from datetime import datetime

from shared.leads import Lead, Stage
from shared.nurture import leave


def opted_out(lead: Lead, at: datetime) -> Lead | None:
    """Unsubscribed from all marketing email; out of its program (and the due index)."""
    if lead.unsubscribed:
        return None
    return lead.model_copy(
        update={
            "unsubscribed": True,
            "enrolment": leave(lead.enrolment, at, "exited:unsubscribed"),
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
            "enrolment": leave(lead.enrolment, at, "exited:suppressed"),
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

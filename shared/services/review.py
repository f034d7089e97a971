"""The review of a lead outside any program, on the due index (a ``review`` job on the
send queue): a mailable lead with no engagement for the dormancy period becomes dormant
and enters re-engagement; a customer is ranked again on the day its rank changes
(``shared.domain.customers``). ``schedule_review`` puts a lead that leaves its program
under review."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.domain.clock import Clock
from shared.domain.customers import CustomerRules, reranked, review_time
from shared.domain.funnel import business_day
from shared.domain.leads import Activity, Lead, Stage
from shared.domain.nurture import start
from shared.domain.programs import ProgramCatalog
from shared.domain.transitions import stage_changed
from shared.ports import LeadRepository, Revision, Snapshot


class Reviewed(StrEnum):
    """What a review did."""

    STALE = "stale"  # not due (a repeated job, or the lead moved on)
    DORMANT = "dormant"  # no engagement: dormant, in re-engagement
    RANKED = "ranked"  # a customer ranked again (its segment may have moved)
    RESCHEDULED = "rescheduled"  # engaged meanwhile: reviewed again later


class LeadReview:
    """The review a lead outside any program gets on the due index (a ``review`` job):
    a lead's dormancy, a customer's rank on the day it changes."""

    def __init__(
        self,
        leads: LeadRepository,
        programs: ProgramCatalog,
        clock: Clock,
        dormant_after: timedelta,
        customers: CustomerRules | None = None,
    ) -> None:
        self._leads = leads
        self._programs = programs
        self._clock = clock
        self._dormant_after = dormant_after
        self._customers = customers

    def review(self, lead_id: str) -> Reviewed:
        outcome = [Reviewed.STALE]

        def change(snapshot: Snapshot) -> Revision | None:
            lead, now = snapshot.lead, self._clock.now()
            if lead is None or lead.review_at is None or lead.review_at > now:
                outcome[0] = Reviewed.STALE
                return None
            changes, activity = review(
                lead, now, self._dormant_after, self._programs, self._customers
            )
            if lead.stage is Stage.CUSTOMER:
                outcome[0] = Reviewed.RANKED
            elif activity is not None:
                outcome[0] = Reviewed.DORMANT
            else:
                outcome[0] = Reviewed.RESCHEDULED
            updated = lead.model_copy(update={**changes, "updated_at": now})
            # Out of any program still: the due index keeps it under review.
            updated = schedule_review(updated, now, self._dormant_after)
            return Revision(updated, [activity] if activity else [])

        self._leads.revise(lead_id, change)
        return outcome[0]


def schedule_review(lead: Lead, now: datetime, dormant_after: timedelta) -> Lead:
    """A mailable lead that follows no program gets a dormancy review on the due index;
    a customer with purchases, the review of its rank on the day it changes."""
    active = lead.enrolment is not None and lead.enrolment.completed_at is None
    if active or lead.review_at:
        return lead
    if lead.stage is Stage.CUSTOMER:
        review_at = review_time(lead.rank)
        return lead.model_copy(update={"review_at": review_at}) if review_at else lead
    if lead.stage is not Stage.LEAD or not lead.mailable:
        return lead
    return lead.model_copy(update={"review_at": now + dormant_after})


def review(
    lead: Lead,
    now: datetime,
    dormant_after: timedelta,
    programs: ProgramCatalog,
    customers: CustomerRules | None = None,
) -> tuple[dict[str, Any], Activity | None]:
    """The dormancy review: no engagement for ``dormant_after`` → dormant + re-engagement.

    Otherwise the review moves to when that period would end; engagement itself never
    has to touch the review (no write per open or click). A customer's review ranks it
    again (``shared.domain.customers.reranked``).
    """
    active = lead.enrolment is not None and lead.enrolment.completed_at is None
    if lead.stage is Stage.CUSTOMER and customers is not None and not active:
        today = business_day(now)
        purchases = lead.purchases
        rank = customers.rank(purchases, lead.company_size, today) if purchases else None
        ranked, activities = reranked(lead, rank, programs, now)
        return ranked, activities[0] if activities else None
    if active or lead.stage is not Stage.LEAD or not lead.mailable:
        return {"review_at": None}, None
    last = max(t for t in (lead.last_engaged_at, lead.created_at) if t is not None)
    if last + dormant_after > now:
        return {"review_at": last + dormant_after}, None
    dormant = lead.model_copy(update={"stage": Stage.DORMANT})
    program = programs.program_for(dormant)
    changes: dict[str, Any] = {
        "stage": Stage.DORMANT,
        "stage_changed_at": now,
        "review_at": None,
        "enrolment": start(program, now) if program else lead.enrolment,
    }
    activity = stage_changed(
        lead,
        Stage.DORMANT,
        now,
        f"no engagement for {dormant_after.days} days",
        program_id=program.id if program else None,
    )
    return changes, activity

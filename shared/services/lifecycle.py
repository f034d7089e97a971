"""Sales feedback and data-subject requests: stage changes that come from people.

Sales report a disposition on a lead they were handed: accepted (SQL), rejected (back
to nurturing with a reason and a cool-down before it can qualify again), won (customer,
enters the customer program) or lost (enters re-engagement after a waiting period).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.domain.clock import Clock
from shared.domain.leads import Activity, Enrolment, Lead, Outcome, Stage
from shared.domain.nurture import COMPLETED, start
from shared.domain.programs import RETURNING_STAGES, Program, ProgramCatalog
from shared.domain.transitions import stage_changed, staged
from shared.ports import LeadRepository, Record, Revision, Snapshot, UnknownLead
from shared.services.review import schedule_review


class Disposition(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WON = "won"
    LOST = "lost"


# What sales finally made of a lead: listed for the scoring backtest.
OUTCOMES = frozenset({"won", "lost", "rejected"})
# Which stages each disposition may be reported from.
ALLOWED_FROM: dict[Disposition, frozenset[Stage]] = {
    Disposition.ACCEPTED: frozenset({Stage.MQL}),
    Disposition.REJECTED: frozenset({Stage.MQL, Stage.SQL}),
    Disposition.WON: frozenset({Stage.MQL, Stage.SQL}),
    Disposition.LOST: frozenset({Stage.MQL, Stage.SQL}),
}
TARGET: dict[Disposition, Stage] = {
    Disposition.ACCEPTED: Stage.SQL,
    Disposition.REJECTED: Stage.LEAD,
    Disposition.WON: Stage.CUSTOMER,
    Disposition.LOST: Stage.LOST,
}


class DispositionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    disposition: Disposition
    reason: str | None = Field(default=None, max_length=500)
    by: str | None = Field(default=None, max_length=200)  # the sales rep or system
    # The deal's value in yen (``won`` only): revenue by source and lifetime value.
    amount: int | None = Field(default=None, ge=0, le=10**12)

    @field_validator("amount")
    @classmethod
    def _amount_of_a_deal(cls, amount: int | None, info: ValidationInfo) -> int | None:
        if amount is not None and info.data.get("disposition") is not Disposition.WON:
            raise ValueError("amount is for a won deal only")
        return amount


@dataclass(frozen=True)
class LifecycleSettings:
    rejected_cooldown: timedelta = timedelta(days=30)
    lost_dormant_after: timedelta = timedelta(days=60)
    dormant_after: timedelta = timedelta(days=90)


class InvalidTransition(Exception):
    def __init__(self, stage: Stage, disposition: Disposition) -> None:
        super().__init__(f"a {stage.value} lead cannot be {disposition.value}")
        self.stage = stage
        self.disposition = disposition


class SalesFeedback:
    def __init__(
        self,
        leads: LeadRepository,
        programs: ProgramCatalog,
        clock: Clock,
        settings: LifecycleSettings,
    ) -> None:
        self._leads = leads
        self._programs = programs
        self._clock = clock
        self._settings = settings

    def report(self, lead_id: str, request: DispositionRequest, caller: str | None = None) -> Lead:
        """Apply sales' disposition. ``caller`` is the authenticated principal (IAM), kept
        beside the self-reported ``by`` so the timeline says who really made the change."""

        def change(snapshot: Snapshot) -> Revision:
            lead = snapshot.lead
            if lead is None:
                raise UnknownLead(lead_id)
            if lead.stage not in ALLOWED_FROM[request.disposition]:
                raise InvalidTransition(lead.stage, request.disposition)
            now = self._clock.now()
            updated = self._apply(lead, request, now)
            activity = stage_changed(
                lead,
                updated.stage,
                now,
                request.reason,
                disposition=request.disposition.value,
                by=request.by or caller,
                caller=caller,
                program_id=_active_program(updated),
            )
            records: list[Record] = [activity]
            if request.disposition in OUTCOMES:
                # Listed with the change itself: the backtest reads outcomes, never scans.
                outcome = Outcome(lead_id=lead_id, disposition=request.disposition.value, at=now)
                records.append(outcome)
            return Revision(updated, records)

        revised = self._leads.revise(lead_id, change)
        if revised.after is None:  # the change always returns a revision
            raise UnknownLead(lead_id)
        return revised.after

    def _apply(self, lead: Lead, request: DispositionRequest, now: datetime) -> Lead:
        moved = staged(lead, TARGET[request.disposition], now)
        changes: dict[str, Any] = {}
        enrolment = moved.enrolment
        begins = now
        if request.disposition is Disposition.REJECTED:
            changes["requalify_after"] = now + self._settings.rejected_cooldown
            begins = now + self._settings.rejected_cooldown
        elif request.disposition is Disposition.LOST:
            begins = now + self._settings.lost_dormant_after
        elif request.amount:
            changes["revenue"] = lead.revenue + request.amount
        program = self._programs.program_for(moved)
        if program is not None and request.disposition is not Disposition.ACCEPTED:
            enrolment = _delayed(start(program, begins), enrolled_at=now)
        changes["enrolment"] = enrolment
        # Back in ``lead`` with no program to follow (none matches): watched for dormancy.
        return schedule_review(moved.model_copy(update=changes), now, self._settings.dormant_after)


def _active_program(lead: Lead) -> str | None:
    enrolment = lead.enrolment
    return enrolment.program_id if enrolment and enrolment.completed_at is None else None


def _delayed(enrolment: Enrolment, enrolled_at: datetime) -> Enrolment:
    """An enrolment recorded now whose first step waits for a later start."""
    return enrolment.model_copy(update={"enrolled_at": enrolled_at})


def returning(
    lead: Lead, enrolment: Enrolment, program: Program | None, now: datetime
) -> tuple[dict[str, Any], Activity | None]:
    """A dormant or lost lead that answered its re-engagement (the program completed,
    says ``on_complete``, and one of its emails was clicked) is nurtured as a lead again;
    ``schedule_review`` then puts it back under the dormancy review. The changes and the
    stage change's activity.

    The click is checked, not only the outcome: a program can also complete by a skipped
    last step or a ``goto: exit``, which is no answer at all.
    """
    answered = any(sent.clicked_at is not None for sent in enrolment.sent.values())
    if (
        program is None
        or program.on_complete is None
        or enrolment.outcome != COMPLETED
        or not answered
        or lead.stage not in RETURNING_STAGES
    ):
        return {}, None
    target = program.on_complete.stage
    activity = stage_changed(lead, target, now, f"answered {program.id}", program_id=program.id)
    return {"stage": target, "stage_changed_at": now, "review_at": None}, activity

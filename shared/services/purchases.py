"""Recording a customer's purchase (the admin API's ``POST /leads/{id}/purchases`` and
``lead-nurture import-purchases``): once per purchase, however often it is sent.

A purchase adds to the lead's summary (``Purchases``) and ranks it again
(``shared.domain.customers``); a lead that was not a customer becomes one, leaves its program
and enters the program for customers, as when sales report a deal won. The purchase is
an activity on the timeline, and its key (the order number, or the day, product and
amount) a lasting marker written in the same transaction: a retried request or a file
imported again finds it and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.clock import Clock
from shared.domain.customers import CustomerRules, Purchase, adding, reranked
from shared.domain.funnel import business_day
from shared.domain.leads import Activity, ActivityType, Lead, Stage
from shared.domain.nurture import start
from shared.domain.programs import ProgramCatalog
from shared.domain.transitions import stage_changed, staged
from shared.ports import LeadRepository, Marker, Record, Revision, Snapshot, UnknownLead

PURCHASE_REASON = "purchase"


@dataclass(frozen=True)
class Recorded:
    """The lead after the purchase, and whether it had been recorded before (nothing
    changed)."""

    lead: Lead
    duplicate: bool


class PurchaseBook:
    def __init__(
        self,
        leads: LeadRepository,
        programs: ProgramCatalog,
        customers: CustomerRules,
        clock: Clock,
    ) -> None:
        self._leads = leads
        self._programs = programs
        self._customers = customers
        self._clock = clock

    def record(self, lead_id: str, purchase: Purchase, caller: str | None = None) -> Recorded:
        """Add ``purchase`` to the lead (``UnknownLead``; ``FutureDate`` for one dated after
        today in Japan)."""
        now = self._clock.now()
        marker = Marker(key=f"purchase#{purchase.key}", at=now, lasting=True)

        def change(snapshot: Snapshot) -> Revision:
            lead = snapshot.lead
            if lead is None:
                raise UnknownLead(lead_id)
            today = business_day(now)
            purchases = adding(lead.purchases, purchase, today)
            records: list[Record] = []
            customer = lead
            if lead.stage is not Stage.CUSTOMER:
                customer = staged(lead, Stage.CUSTOMER, now)
                program = self._programs.program_for(customer)
                customer = customer.model_copy(
                    update={
                        "enrolment": start(program, now) if program else customer.enrolment,
                        "review_at": None,
                    }
                )
                records.append(
                    stage_changed(
                        lead,
                        Stage.CUSTOMER,
                        now,
                        PURCHASE_REASON,
                        by=caller,
                        program_id=program.id if program else None,
                    )
                )
            customer = customer.model_copy(update={"purchases": purchases, "updated_at": now})
            rank = self._customers.rank(purchases, customer.company_size, today)
            changes, moved = reranked(customer, rank, self._programs, now)
            details = {
                **purchase.model_dump(mode="json"),
                "segment": rank.segment,
                "by": caller,
            }
            records.append(
                Activity(lead_id=lead_id, type=ActivityType.PURCHASED, at=now, details=details)
            )
            records.extend(moved)
            return Revision(customer.model_copy(update=changes), records)

        revised = self._leads.revise(lead_id, change, marker=marker)
        lead = revised.after or revised.before
        if lead is None:
            raise UnknownLead(lead_id)
        return Recorded(lead, revised.duplicate)

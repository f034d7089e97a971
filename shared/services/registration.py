"""Registering for an event, attending it, cancelling, and a waiting lead's place (pure).

Each function takes the lead as read (and, for an event with a capacity, its ``Seats``
as read) and returns the changed lead, the timeline's records and the seats to write,
or None when the lead is that way already: a repeated request changes nothing. The
caller writes the result with ``LeadRepository.revise`` (the seats in the same
transaction, conditional on their version), and the report counts follow from the
lead before and after (``shared.domain.funnel.lead_counts``).

A registration for a full event (or one with lead waiting already: places go in turn)
is put on the waiting list and enters the event's ``waitlist_program``; when a place
frees (a cancellation), the lead that has waited longest gets it and enters the event's
``program`` from its first step, its confirmation saying the place came free.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from shared.domain.clock import Clock
from shared.domain.events import Event, EventCatalog
from shared.domain.leads import (
    Activity,
    ActivityType,
    Enrolment,
    Lead,
    Registration,
    RegistrationStatus,
    Seats,
)
from shared.domain.nurture import leave, start
from shared.domain.programs import ProgramCatalog
from shared.ports import (
    LeadRepository,
    Revision,
    Snapshot,
    UnknownLead,
    VersionConflict,
)

REGISTERED = RegistrationStatus.REGISTERED
WAITLISTED = RegistrationStatus.WAITLISTED
CANCELLED = RegistrationStatus.CANCELLED
WALK_IN = RegistrationStatus.WALK_IN


@dataclass(frozen=True)
class Registered:
    """A change of a lead's registration: the lead, what the timeline records, and the
    event's seats as they must be written (None: no capacity, or no change)."""

    lead: Lead
    activities: tuple[Activity, ...]
    seats: Seats | None = None


def _activity(
    lead: Lead, kind: ActivityType, at: datetime, event: Event, **details: object
) -> Activity:
    return Activity(
        lead_id=lead.lead_id, type=kind, at=at, details={"event_id": event.id, **details}
    )


def _enrolment(
    programs: ProgramCatalog,
    program_id: str,
    event: Event,
    now: datetime,
    step_id: str | None = None,
) -> Enrolment | None:
    program = programs.get(program_id)
    if program is None or program.kind != "event":
        return None  # the content tests refuse an event naming no event program
    return start(program, now, event, step_id)


def _with(lead: Lead, event: Event, registration: Registration, now: datetime) -> Lead:
    registrations = {**lead.registrations, event.id: registration}
    return lead.model_copy(update={"registrations": registrations, "updated_at": now})


def register(
    lead: Lead,
    event: Event,
    programs: ProgramCatalog,
    now: datetime,
    seats: Seats | None = None,
) -> Registered | None:
    """A registration: a place if there is one (and nobody waits), else the waiting list.
    None if the lead is registered, waiting or came already, or the event is over."""
    existing = lead.registrations.get(event.id)
    if existing is not None and existing.status is not CANCELLED:
        return None
    if now >= event.end:
        return None
    place = True
    if event.capacity is not None:
        seats = seats or Seats(event_id=event.id)
        place = seats.free(event.capacity) > 0 and not seats.waiting
        seats = seats.taking(lead.lead_id) if place else seats.queueing(lead.lead_id, now)
    else:
        seats = None
    program = event.program if place else event.waitlist_program
    registration = Registration(
        status=REGISTERED if place else WAITLISTED,
        registered_at=now,
        changed_at=now,
        waitlisted_at=None if place else now,
        enrolment=_enrolment(programs, program, event, now),
    )
    kind = ActivityType.EVENT_REGISTERED if place else ActivityType.EVENT_WAITLISTED
    activity = _activity(lead, kind, now, event, program_id=program)
    return Registered(_with(lead, event, registration, now), (activity,), seats)


def first_after_end(programs: ProgramCatalog, event: Event) -> str | None:
    """The event program's first step timed after the event's end: where a lead who came
    without a place begins (no confirmation or reminders for an event it has been to)."""
    program = programs.get(event.program)
    steps = program.steps if program else ()
    return next((s.id for s in steps if s.timing is not None and s.timing.after == "end"), None)


def attend(
    lead: Lead,
    event: Event,
    programs: ProgramCatalog,
    now: datetime,
    seats: Seats | None = None,
) -> Registered | None:
    """The lead was there (a check-in, an attendee list): its follow-up will say so. A lead
    without a place (none, cancelled, waiting) came anyway: a walk-in, who leaves any
    waiting list and follows the event program from its first step after the event.
    None if its attendance is known already."""
    existing = lead.registrations.get(event.id)
    if existing is not None and existing.attended_at is not None:
        return None
    if existing is not None and existing.status is REGISTERED:
        registration = existing.model_copy(update={"attended_at": now})
        seats = None
    else:
        earlier = existing.enrolment if existing else None
        enrolment = None
        step_id = first_after_end(programs, event)
        if step_id is not None:
            enrolment = _enrolment(programs, event.program, event, now, step_id)
        registration = Registration(
            status=WALK_IN,
            registered_at=existing.registered_at if existing else now,
            changed_at=now,
            waitlisted_at=existing.waitlisted_at if existing else None,
            attended_at=now,
            enrolment=enrolment or leave(earlier, now, "exited:attended"),
        )
        waiting = existing is not None and existing.status is WAITLISTED
        seats = seats.leaving(lead.lead_id) if seats is not None and waiting else None
    activity = _activity(
        lead, ActivityType.EVENT_ATTENDED, now, event, status=registration.status.value
    )
    return Registered(_with(lead, event, registration, now), (activity,), seats)


def cancel(
    lead: Lead,
    event: Event,
    now: datetime,
    seats: Seats | None = None,
    programs: ProgramCatalog | None = None,
) -> Registered | None:
    """The lead will not come: its place (or its turn on the waiting list) is given up and
    its event emails stop; before the event, it gets the cancellation's email (the
    event's ``cancellation_program``, given ``programs``). None if it holds neither."""
    existing = lead.registrations.get(event.id)
    if existing is None or existing.status not in (REGISTERED, WAITLISTED):
        return None
    enrolment = leave(existing.enrolment, now, "exited:cancelled")
    if programs is not None and now < event.start:
        enrolment = _enrolment(programs, event.cancellation_program, event, now) or enrolment
    registration = existing.model_copy(
        update={"status": CANCELLED, "changed_at": now, "enrolment": enrolment}
    )
    if seats is not None:
        seats = seats.leaving(lead.lead_id)
    activity = _activity(lead, ActivityType.EVENT_CANCELLED, now, event, was=existing.status.value)
    return Registered(_with(lead, event, registration, now), (activity,), seats)


def promote(
    lead: Lead, event: Event, programs: ProgramCatalog, now: datetime, seats: Seats
) -> Registered | None:
    """A place came free and this lead waited longest: it is registered and its event
    emails begin (the confirmation says the place came free). None if it is not the next
    one waiting, no place is free, or it no longer waits."""
    existing = lead.registrations.get(event.id)
    if (
        existing is None
        or existing.status is not WAITLISTED
        or event.capacity is None
        or seats.next_waiting() != lead.lead_id
        or seats.free(event.capacity) == 0
        or now >= event.end
    ):
        return None
    registration = existing.model_copy(
        update={
            "status": REGISTERED,
            "changed_at": now,
            "enrolment": _enrolment(programs, event.program, event, now),
        }
    )
    activity = _activity(
        lead, ActivityType.EVENT_REGISTERED, now, event, program_id=event.program, waited=True
    )
    return Registered(
        _with(lead, event, registration, now), (activity,), seats.taking(lead.lead_id)
    )


# How many places one call gives out at most (a capacity raised a lot at once is filled
# over several runs); each is one lead's write.
FILL_LIMIT = 100


@dataclass(frozen=True)
class Cancelled:
    cancelled: bool  # False: the lead held no place or turn (already cancelled, say)
    promoted: tuple[str, ...] = ()  # the waiting leads that got the places freed


class EventDesk:
    """Cancellations, and the waiting list's turn: each write is one lead's, with the
    event's seats in the same transaction; a repeated call finds its work done and
    gives out any place still free, so running it again is the retry."""

    def __init__(
        self,
        repository: LeadRepository,
        programs: ProgramCatalog,
        clock: Clock,
    ) -> None:
        self._repository = repository
        self._programs = programs
        self._clock = clock

    def cancel(self, event: Event, lead_id: str, notify: bool = True) -> Cancelled:
        """Give up the lead's place or turn (``notify``: with the cancellation's email),
        then the free places to those waiting."""
        programs = self._programs if notify else None

        def change(snapshot: Snapshot) -> Revision | None:
            if snapshot.lead is None:
                raise UnknownLead(lead_id)
            done = cancel(snapshot.lead, event, self._clock.now(), snapshot.seats, programs)
            return None if done is None else _revision(done)

        capacity = event.capacity is not None
        revised = self._repository.revise(lead_id, change, seats=event.id if capacity else None)
        return Cancelled(revised.changed, self.fill(event))

    def withdraw(self, lead: Lead, events: EventCatalog) -> tuple[str, ...]:
        """Before a lead is erased: the places and turns it holds at events with a
        capacity still ahead go to those waiting (an erased lead's id must not keep a
        place). The ids of the leads that got one."""
        promoted: list[str] = []
        now = self._clock.now()
        for event_id, registration in lead.registrations.items():
            event = events.get(event_id)
            if event is None or event.capacity is None or not registration.pending:
                continue
            if now < event.end:
                promoted.extend(self.cancel(event, lead.lead_id, notify=False).promoted)
        return tuple(promoted)

    def fill(self, event: Event) -> tuple[str, ...]:
        """Give the free places to the leads that have waited longest, in turn."""
        if event.capacity is None:
            return ()
        promoted: list[str] = []
        for _ in range(FILL_LIMIT):
            seats = self._repository.seats(event.id)
            waiting = seats.next_waiting()
            if waiting is None or seats.free(event.capacity) == 0:
                break
            if self._promote(event, waiting):
                promoted.append(waiting)
        return tuple(promoted)

    def _promote(self, event: Event, lead_id: str) -> bool:
        gone = [False]

        def change(snapshot: Snapshot) -> Revision | None:
            lead, seats = snapshot.lead, snapshot.seats
            if seats is None or seats.next_waiting() != lead_id:
                return None  # someone else gave this place out meanwhile
            registration = lead.registrations.get(event.id) if lead else None
            if lead is None or registration is None or registration.status is not WAITLISTED:
                gone[0] = True  # erased, or no longer waiting: off the list
                return None
            done = promote(lead, event, self._programs, self._clock.now(), seats)
            return None if done is None else _revision(done)

        revised = self._repository.revise(lead_id, change, seats=event.id)
        if gone[0]:
            seats = self._repository.seats(event.id)
            if lead_id in seats.waiting:
                with suppress(VersionConflict):  # read again by the next round
                    self._repository.save_seats(seats.leaving(lead_id))
        return revised.changed


def _revision(done: Registered) -> Revision:
    return Revision(done.lead, list(done.activities), seats=done.seats)

"""The program engine: where a lead is in its program and what happens next (pure).

Every function takes the enrolment and returns a new one; the sender persists it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from shared.domain.events import Event
from shared.domain.experiments import Arm, seed_of, thompson
from shared.domain.leads import Enrolment, Lead, Registration, SentStep
from shared.domain.programs import EXIT, SUNSET, BranchRule, Engagement, Program, Step

FREQUENCY_WINDOW = timedelta(days=7)
# An email has a handful of tagged links; the cap keeps the lead item small regardless.
MAX_CLICKED_LINKS = 20
# Why an event program's step was not sent: its time had passed when the lead reached
# it (a late registration), or the event began (or ended) before a reminder could go.
EVENT_TIME_PASSED = "event_time_passed"
EVENT_STARTED = "event_started"
EVENT_ENDED = "event_ended"


def start(
    program: Program, now: datetime, event: Event | None = None, step_id: str | None = None
) -> Enrolment:
    """A new enrolment at the first step (or ``step_id``); an event program's at the first
    step whose time has not passed, the ones before noted as skipped."""
    first = program.step(step_id) if step_id else program.steps[0]
    enrolment = Enrolment(
        program_id=program.id, enrolled_at=now, event_id=event.id if event else None
    )
    return _go_to(enrolment, program, first.id, now, event)


def variant_of(lead_id: str, program: Program, step: Step, arms: Sequence[Arm] = ()) -> int:
    """The variant of a step a lead is sent: a closed test's winner; under ``bandit``
    (given the variants' results) Thompson sampling's pick, seeded by the lead so a
    retried send picks the same while the results stand; else a stable split, the same
    lead always getting the same variant."""
    experiment = step.experiment
    if experiment.winner is not None:
        return ord(experiment.winner) - ord("A")
    if experiment.allocation == "bandit" and len(arms) == step.variants:
        return thompson(arms, experiment.min_share, seed_of(lead_id, program.id, step.id))
    digest = hashlib.sha256(f"{lead_id}:{program.id}:{step.id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % step.variants


def variant_label(index: int) -> str:
    return chr(ord("A") + index)


# The outcome of an enrolment that went through its steps to the end (or to ``exit``).
COMPLETED = "completed"


def finish(enrolment: Enrolment, now: datetime, outcome: str) -> Enrolment:
    return enrolment.model_copy(
        update={
            "step_id": None,
            "awaiting": None,
            "due_at": None,
            "completed_at": now,
            "outcome": outcome,
        }
    )


def leave(enrolment: Enrolment | None, now: datetime, outcome: str) -> Enrolment | None:
    """The lead leaves its program: a running enrolment is finished with ``outcome``;
    a finished one, or none, stays as it is."""
    if enrolment is None or enrolment.completed_at is not None:
        return enrolment
    return finish(enrolment, now, outcome)


def _go_to(
    enrolment: Enrolment,
    program: Program,
    target: str | None,
    now: datetime,
    event: Event | None = None,
) -> Enrolment:
    while True:
        if target is None or target == EXIT:
            return finish(enrolment, now, COMPLETED)
        if target == SUNSET:
            return finish(enrolment, now, SUNSET)
        step = program.step(target)
        if step.timing is None or event is None:
            due = now + step.wait
            break
        due = step.timing.moment(event)
        if due >= now or step.timing.before is None:
            break  # a step after the start or the end goes late rather than never
        # A step before the start (or the end) whose time passed before the lead got
        # here: a reminder for a lead who registered after it would come out of turn.
        skipped = {**enrolment.skipped, step.id: EVENT_TIME_PASSED}
        enrolment = enrolment.model_copy(update={"skipped": skipped})
        target = _onward(program, step)
    return enrolment.model_copy(update={"step_id": step.id, "awaiting": None, "due_at": due})


def _onward(program: Program, step: Step) -> str | None:
    """Where a lead goes past a step it did not get: the branch's ``otherwise`` (never
    a sunset: only a lead that left an email unanswered is sunset), else the next step."""
    target = step.branch.otherwise if step.branch is not None else None
    if target is None:
        following = program.step_after(step.id)
        target = following.id if following else None
    return EXIT if target == SUNSET else target


def after_send(
    enrolment: Enrolment,
    program: Program,
    step: Step,
    now: datetime,
    variant: str,
    message_id: str | None,
    event: Event | None = None,
) -> Enrolment:
    sent = {
        **enrolment.sent,
        step.id: SentStep(sent_at=now, variant=variant, message_id=message_id),
    }
    enrolment = enrolment.model_copy(update={"sent": sent})
    if step.branch is not None:
        return enrolment.model_copy(
            update={"step_id": None, "awaiting": step.id, "due_at": now + step.branch.wait_up_to}
        )
    following = program.step_after(step.id)
    return _go_to(enrolment, program, following.id if following else None, now, event)


def _holds(enrolment: Enrolment, rule: BranchRule, step_id: str) -> bool:
    record = enrolment.sent.get(step_id)
    if record is None:
        # A step skipped or branched around was never read: no rule about it holds
        # (not even "not_opened", which would remind the lead of an email it never got).
        return False
    opened = record.opened
    clicked = record.clicked
    if rule.links is not None:
        clicked = not set(rule.links).isdisjoint(record.clicked_links)
    return {
        Engagement.OPENED: opened,
        Engagement.CLICKED: clicked,
        Engagement.NOT_OPENED: not opened,
        Engagement.NOT_CLICKED: not clicked,
    }[rule.when]


def decide(
    enrolment: Enrolment, program: Program, now: datetime, event: Event | None = None
) -> Enrolment:
    """Resolve the branch the enrolment awaits: first matching rule, else ``otherwise``."""
    if enrolment.awaiting is None:
        return enrolment
    step = program.step(enrolment.awaiting)
    branch = step.branch
    if branch is None:  # the program was edited since the send; carry on in order
        following = program.step_after(step.id)
        return _go_to(enrolment, program, following.id if following else None, now, event)
    for rule in branch.rules:
        if _holds(enrolment, rule, rule.step or step.id):
            return _go_to(enrolment, program, rule.goto, now, event)
    if branch.otherwise is not None:
        return _go_to(enrolment, program, branch.otherwise, now, event)
    following = program.step_after(step.id)
    return _go_to(enrolment, program, following.id if following else None, now, event)


def record_engagement(
    enrolment: Enrolment,
    program: Program | None,
    step_id: str,
    engagement: Engagement,
    at: datetime,
    links: Iterable[str] = (),
) -> Enrolment:
    """Note an open or click (and the clicked link's tags) on a sent step; a positive
    rule it satisfies decides now."""
    record = enrolment.sent.get(step_id)
    if record is None or engagement not in (Engagement.OPENED, Engagement.CLICKED):
        return enrolment
    field = "opened_at" if engagement is Engagement.OPENED else "clicked_at"
    if getattr(record, field) is None:
        record = record.model_copy(update={field: at})
    if engagement is Engagement.CLICKED:
        tags = sorted(set(record.clicked_links).union(links))[:MAX_CLICKED_LINKS]
        if tuple(tags) != record.clicked_links:
            record = record.model_copy(update={"clicked_links": tuple(tags)})
    enrolment = enrolment.model_copy(update={"sent": {**enrolment.sent, step_id: record}})
    if program is None or enrolment.awaiting is None or enrolment.due_at is None:
        return enrolment
    branch = program.step(enrolment.awaiting).branch
    if branch is None:
        return enrolment
    if _settled(enrolment, branch.rules, enrolment.awaiting) and enrolment.due_at > at:
        enrolment = enrolment.model_copy(update={"due_at": at})
    return enrolment


def recount_engagement(
    enrolment: Enrolment,
    program: Program | None,
    step_id: str,
    opened_at: datetime | None,
    clicked_at: datetime | None,
    links: Iterable[str],
) -> Enrolment:
    """Set a sent step's engagement to what people did with it, after some of what was
    noted turned out a machine's: a branch that is no longer settled waits again, up to
    its ``wait_up_to`` (a branch already decided stays decided)."""
    record = enrolment.sent.get(step_id)
    if record is None:
        return enrolment
    recounted = record.model_copy(
        update={
            "opened_at": opened_at,
            "clicked_at": clicked_at,
            "clicked_links": tuple(sorted(set(links)))[:MAX_CLICKED_LINKS],
        }
    )
    if recounted == record:
        return enrolment
    enrolment = enrolment.model_copy(update={"sent": {**enrolment.sent, step_id: recounted}})
    awaiting = enrolment.awaiting
    if program is None or awaiting is None or enrolment.due_at is None:
        return enrolment
    branch = program.step(awaiting).branch
    sent = enrolment.sent.get(awaiting)
    if branch is None or sent is None or _settled(enrolment, branch.rules, awaiting):
        return enrolment
    decides_at = sent.sent_at + branch.wait_up_to
    if enrolment.due_at < decides_at:
        enrolment = enrolment.model_copy(update={"due_at": decides_at})
    return enrolment


def _settled(enrolment: Enrolment, rules: tuple[BranchRule, ...], default_step: str) -> bool:
    """True when later engagement can no longer change which rule wins.

    Opens and clicks only ever become true. So the outcome is settled once an
    "opened"/"clicked" rule holds and every rule before it is a "not_" rule that
    already failed; an unmet positive rule or a holding "not_" rule may still change.
    """
    for rule in rules:
        holds = _holds(enrolment, rule, rule.step or default_step)
        if rule.when in (Engagement.OPENED, Engagement.CLICKED):
            return holds
        if holds:
            return False
    return False


def skip_reason(lead: Lead, step: Step, registration: Registration | None = None) -> str | None:
    """Why the step does not fit the lead now (its ``skip_if``/``only_if``), or None.

    ``skip_if:form_type:trial`` names what matched; ``only_if:industry`` what did not.
    ``registration`` is the lead's for the event of an event program's enrolment.
    """
    if step.skip_if is not None:
        hits = step.skip_if.hits(lead, registration)
        if all(hits.values()):  # what ``matches`` says
            return "skip_if:" + ",".join(f"{k}:{v}" for k, values in hits.items() for v in values)
    if step.only_if is not None:
        misses = [k for k, values in step.only_if.hits(lead, registration).items() if not values]
        if misses:
            return "only_if:" + ",".join(misses)
    return None


def too_late(step: Step, event: Event | None, now: datetime) -> str | None:
    """A step timed before the event's start (or end) is not sent once that has come
    (sending was paused, or the send window kept it back): a reminder after it misleads."""
    if step.timing is None or event is None or step.timing.before is None:
        return None
    if step.timing.before == "start":
        return EVENT_STARTED if now >= event.start else None
    return EVENT_ENDED if now >= event.end else None


def skip(
    enrolment: Enrolment,
    program: Program,
    step: Step,
    now: datetime,
    reason: str,
    event: Event | None = None,
) -> Enrolment:
    """Move past a due step without sending it, noting why on the enrolment.

    A skipped step has no engagement for its branch to read, so the lead takes the way
    the program names for an undecided branch: ``otherwise``, else the next step. Only
    a lead that left the email unanswered is sunset; this one never got it.
    """
    skipped = enrolment.model_copy(update={"skipped": {**enrolment.skipped, step.id: reason}})
    return _go_to(skipped, program, _onward(program, step), now, event)


def exit_reason(lead: Lead, program: Program) -> str | None:
    """Why the lead must leave the program now, or None if it stays."""
    if lead.unsubscribed:
        return "unsubscribed"
    if lead.suppressed:
        return "suppressed"
    if not lead.consent.opted_in:
        return "no_consent"
    if lead.stage in program.exit.stages:
        return f"stage:{lead.stage.value}"
    return None


def within_cap(recent_sends: tuple[datetime, ...], now: datetime, cap: int) -> datetime | None:
    """None if another email may go now, else when the oldest counted send ages out."""
    recent = sorted(t for t in recent_sends if t > now - FREQUENCY_WINDOW)
    if len(recent) < cap:
        return None
    return recent[len(recent) - cap] + FREQUENCY_WINDOW


def prune_sends(recent_sends: tuple[datetime, ...], now: datetime) -> tuple[datetime, ...]:
    return tuple(t for t in recent_sends if t > now - FREQUENCY_WINDOW)

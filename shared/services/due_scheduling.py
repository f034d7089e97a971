"""The scheduler's use case: lease the leads that are due and queue one send job each.

Work per tick grows with the number of due leads, not with the number of leads: each
shard of the sparse due index is queried for ``due_at <= now``. A lease (a conditional
move of ``due_at`` a few minutes ahead) keeps an overlapping or retried tick from
queueing the same lead twice; if a job is lost, the lease runs out and the lead is due
again.

The sending guard is checked first (``shared.domain.guard``): over the bounce or complaint
limit it pauses sending, and while paused no send job is queued (dormancy reviews still
are); the leads stay due, untouched, and go out in due order once an operator resumes.
A warm-up cap limits the send jobs queued per Japanese day, earliest due first; the rest
wait for the next day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from shared.domain.clock import Clock
from shared.domain.funnel import business_day
from shared.domain.guard import GuardLimits, Warmup, breach, reputation
from shared.domain.jobs import JobKind, SendJob

if TYPE_CHECKING:
    from shared.ports import DueIndex, SendingSwitch


class JobQueue(Protocol):
    def enqueue(self, jobs: Sequence[SendJob]) -> None: ...


@dataclass(frozen=True)
class TickResult:
    due: int
    leased: int
    queued: int
    held: int = 0  # send jobs not queued: sending paused, or the day's warm-up cap reached
    paused: bool = False  # this tick paused sending


@dataclass(frozen=True)
class SendingPolicy:
    limits: GuardLimits = field(default_factory=GuardLimits)
    warmup: Warmup = field(default_factory=Warmup)


class DueScheduler:
    def __init__(
        self,
        index: DueIndex,
        queue: JobQueue,
        clock: Clock,
        lease: timedelta = timedelta(minutes=10),
        per_shard_limit: int = 1000,
        switch: SendingSwitch | None = None,
        policy: SendingPolicy | None = None,
    ) -> None:
        self._index = index
        self._queue = queue
        self._clock = clock
        self._lease = lease
        self._limit = per_shard_limit
        self._switch = switch
        self._policy = policy or SendingPolicy()

    def tick(self) -> TickResult:
        now = self._clock.now()
        until = now + self._lease
        today = business_day(now)
        paused, pausing, room = self._guard(now, today)
        found = [
            lead
            for shard in range(self._index.shards)
            for lead in self._index.due(shard, now, self._limit)
        ]
        found.sort(key=lambda lead: lead.due_at)  # earliest first: the cap keeps the order
        leased = held = sends = 0
        jobs: list[SendJob] = []
        for lead in found:
            job = SendJob.of(lead)
            send = job.kind is JobKind.SEND  # a review sends nothing: never held back
            if send and (paused or (room is not None and sends >= room)):
                held += 1
                continue
            if self._index.lease(lead, until):
                leased += 1
                sends += send
                jobs.append(job)
        if jobs:
            self._queue.enqueue(jobs)
        if sends and room is not None and self._switch is not None:
            self._switch.add_queued(today, sends)
        return TickResult(
            due=len(found), leased=leased, queued=len(jobs), held=held, paused=pausing
        )

    def _guard(self, now: datetime, today: date) -> tuple[bool, bool, int | None]:
        """Whether sending is paused (and whether this tick paused it), and how many send
        jobs the warm-up cap leaves for today (None: no cap)."""
        if self._switch is None:
            return False, False, None
        state = self._switch.state()
        pausing = False
        if not state.paused:
            days = self._switch.counts([today - timedelta(days=1), today])
            reason = breach(reputation(days, state), self._policy.limits)
            if reason is not None:
                pausing = self._switch.pause(reason, now, "guard")
                state = self._switch.state()
        cap = self._policy.warmup.cap(today)
        room = None if cap is None else max(cap - self._switch.queued(today), 0)
        return state.paused, pausing, room

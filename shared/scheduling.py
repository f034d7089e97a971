"""The scheduler's use case: lease the leads that are due and queue one send job each.

Work per tick grows with the number of due leads, not with the number of leads: each
shard of the sparse due index is queried for ``due_at <= now``. A lease (a conditional
move of ``due_at`` a few minutes ahead) keeps an overlapping or retried tick from
queueing the same lead twice; if a job is lost, the lease runs out and the lead is due
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from shared.clock import Clock
from shared.jobs import SendJob

if TYPE_CHECKING:
    from shared.repository import DueIndex


class JobQueue(Protocol):
    def enqueue(self, jobs: Sequence[SendJob]) -> None: ...


@dataclass(frozen=True)
class TickResult:
    due: int
    leased: int
    queued: int


class DueScheduler:
    def __init__(
        self,
        index: DueIndex,
        queue: JobQueue,
        clock: Clock,
        lease: timedelta = timedelta(minutes=10),
        per_shard_limit: int = 1000,
    ) -> None:
        self._index = index
        self._queue = queue
        self._clock = clock
        self._lease = lease
        self._limit = per_shard_limit

    def tick(self) -> TickResult:
        now = self._clock.now()
        until = now + self._lease
        due = leased = 0
        jobs: list[SendJob] = []
        for shard in range(self._index.shards):
            for lead in self._index.due(shard, now, self._limit):
                due += 1
                if self._index.lease(lead, until):
                    leased += 1
                    jobs.append(SendJob(lead.lead_id, lead.program_id, lead.step_id))
        if jobs:
            self._queue.enqueue(jobs)
        return TickResult(due=due, leased=leased, queued=len(jobs))

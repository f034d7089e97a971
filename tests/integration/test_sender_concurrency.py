"""The sender handler working on a batch's jobs at once (``send_concurrency``): each job's
result still maps to its own partial batch failure, and no step is sent twice.

Overlap is made certain, not hoped for: botocore hooks hold the jobs at a barrier (all
at their SES send, or both duplicates after reading the lead), which a sequential
handler could never pass. moto in-process is not safe under concurrent requests, so it
answers one request at a time here (as the benchmark's moto server does); the jobs'
own work still runs concurrently.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from types import SimpleNamespace
from typing import Any

import pytest

from shared.domain.clock import FixedClock
from tests.integration.conftest import TABLE
from tests.integration.nurture import NurtureWorld, build_world
from tests.integration.test_nurture_flow import TUESDAY_10, catalog, enrol, ledger_item

# A guard against a deadlock if jobs did not overlap; never a measure of speed.
BARRIER_TIMEOUT_S = 60


@pytest.fixture
def one_request_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    process = BotocoreStubber.process_request

    def serial(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", serial)


@pytest.fixture
def world(
    clock: FixedClock, dynamodb: Any, lambda_context: Any, one_request_at_a_time: None
) -> NurtureWorld:
    clock.set(TUESDAY_10.astimezone(UTC))
    return build_world(clock, dynamodb, TABLE, lambda_context, programs=catalog())


@pytest.fixture
def ses_client(world: NurtureWorld) -> Any:
    """The SES client the world's sender sends through."""
    return world.sender._mailer._client  # type: ignore[attr-defined]


@pytest.fixture
def refused(ses_client: Any) -> Iterator[set[str]]:
    """Addresses SES refuses with a client error (nothing sent: the job fails)."""
    addresses: set[str] = set()

    def answer(params: dict[str, Any], **_: Any) -> Any:
        to = params["body"]
        if any(address.encode() in to for address in addresses):
            error = {"Error": {"Code": "AccountSuspendedException", "Message": "no"}}
            return (SimpleNamespace(status_code=400, headers={}, content=b""), error)
        return None

    ses_client.meta.events.register("before-call.sesv2.SendEmail", answer)
    yield addresses
    ses_client.meta.events.unregister("before-call.sesv2.SendEmail", answer)


@contextmanager
def held_at(client: Any, *events: str, parties: int) -> Iterator[None]:
    """Meanwhile, hold each call at ``events`` until ``parties`` calls are there."""
    barriers = {event: threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S) for event in events}

    def wait(event_name: str, **_: Any) -> None:
        barriers[event_name].wait()

    for event in events:
        client.meta.events.register_first(event, wait)  # before any hook that answers
    try:
        yield
    finally:
        for event in events:
            client.meta.events.unregister(event, wait)


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def test_jobs_run_at_once_and_only_the_failed_ones_are_reported(
    world: NurtureWorld, ses_client: Any, refused: set[str]
) -> None:
    # Given 6 due leads, SES refusing one of them, and a message that is not a job
    leads = [enrol(world, "linear", email=f"lead{i}@example.co.jp") for i in range(6)]
    refused.add("lead3@example.co.jp")
    world.tick()
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody="{not json")
    batch = world.receive()
    assert len(batch) == 7
    by_lead = {m["Body"]: m["MessageId"] for m in batch}
    poison = by_lead["{not json"]
    refused_job = next(i for body, i in by_lead.items() if leads[3] in body)

    # When the sender handles the batch 4 jobs at once (the 6 jobs reach SES in pairs:
    # a handler that sent one job at a time would never get past the first)
    with held_at(ses_client, "before-call.sesv2.SendEmail", parties=2):
        response = world.deliver(batch, concurrency=4)

    # Then exactly the refused job and the poison message are reported failed
    assert failed_ids(response) == {refused_job, poison}
    sent = Counter(e.tags["lead_id"] for e in world.ses.sent)
    assert sent == Counter({lead: 1 for i, lead in enumerate(leads) if i != 3})
    # the refused step was released, not left claimed: its redelivery sends it once
    assert ledger_item(world, leads[3], "welcome") is None
    refused.clear()
    again = [m for m in world.receive() if m["MessageId"] == refused_job]
    assert failed_ids(world.deliver(again, concurrency=4)) == set()
    assert Counter(e.tags["lead_id"] for e in world.ses.sent) == Counter(dict.fromkeys(leads, 1))


def test_the_same_job_twice_in_a_batch_is_sent_once(world: NurtureWorld) -> None:
    # Given one due lead whose job is in the batch twice (a duplicate delivery)
    lead = enrol(world, "linear")
    world.tick()
    (job,) = world.receive()
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody=job["Body"])
    batch = world.receive()
    assert len(batch) == 2

    # When the sender handles the batch 2 jobs at once, both reading the lead with the
    # step due, and both trying to claim the step, before either goes on
    events = ("after-call.dynamodb.GetItem", "after-call.dynamodb.PutItem")
    with held_at(world.dynamodb, *events, parties=2):
        response = world.deliver(batch, concurrency=2)

    # Then one email goes out; the other job found the step being sent and failed
    assert [e.tags["lead_id"] for e in world.ses.sent] == [lead]
    assert len(failed_ids(response)) == 1
    # and its redelivery, after the send, finds the lead moved on: still one email
    assert world.drain() == 1
    assert [e.tags["lead_id"] for e in world.ses.sent] == [lead]


def test_every_job_of_a_full_batch_is_sent_once(world: NurtureWorld) -> None:
    leads = [enrol(world, "linear") for _ in range(10)]
    world.tick()
    batch = world.receive()
    assert len(batch) == 10

    response = world.deliver(batch, concurrency=4)

    assert failed_ids(response) == set()
    assert Counter(e.tags["lead_id"] for e in world.ses.sent) == Counter(dict.fromkeys(leads, 1))
    assert world.run() == 0  # nothing due again, nothing queued twice

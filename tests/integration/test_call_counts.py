"""How many DynamoDB calls each write path makes, counted with botocore event hooks on
the clients the real code uses: a new lead at most 3, a repeat post at most 3, an SES
event at most 2 (one read, one write), a send at most 3 besides the SES call; and no
path rewrites a whole lead profile (no PutItem of a ``PROFILE``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain.clock import FixedClock
from shared.domain.leads import Stage
from shared.domain.scoring import load_scoring
from shared.services.capture import RequestInfo
from shared.web.submission import parse_submission
from tests.email_events import raw, ses_record
from tests.integration.conftest import TABLE
from tests.integration.nurture import NurtureWorld, build_world
from tests.integration.scoring_world import (
    capture_with_scores,
    counters,
    engagement,
    recorder,
    store_lead,
)
from tests.integration.test_nurture_flow import enrol

TUESDAY_10 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo


class Calls:
    """The DynamoDB operations made on a client, in order, with their parameters."""

    def __init__(self) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, params))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.made]

    def profile_puts(self) -> list[dict[str, Any]]:
        """Whole-profile writes: a PutItem, or a Put in a transaction, of an existing
        lead's ``PROFILE`` item (a new lead's first Put is its creation)."""
        found = [p["Item"] for name, p in self.made if name == "PutItem"]
        for name, params in self.made:
            if name == "TransactWriteItems":
                found.extend(
                    i["Put"]["Item"]
                    for i in params["TransactItems"]
                    if "Put" in i
                    and "attribute_not_exists" not in i["Put"].get("ConditionExpression", "")
                )
        return [item for item in found if item.get("sk", {}).get("S") == "PROFILE"]


@contextmanager
def counting(client: Any) -> Iterator[Calls]:
    calls = Calls()
    client.meta.events.register("provide-client-params.dynamodb.*", calls)
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.*", calls)


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    clock.set(TUESDAY_10)
    return build_world(clock, dynamodb, TABLE, lambda_context)


FORM = {"email": ["calls@example.co.jp"], "form_type": ["download"], "consent": ["on"]}


def test_a_new_lead_takes_two_calls_and_a_repeat_post_three(world: NurtureWorld) -> None:
    capture = capture_with_scores(world.dynamodb, world.clock)
    with counting(world.dynamodb) as first:
        created = capture.capture(parse_submission(FORM), RequestInfo())
    assert created.created
    # one read of the address (and its erasure), one transaction
    assert first.names == ["BatchGetItem", "TransactWriteItems"]

    world.clock.advance(timedelta(days=1))
    later = parse_submission({**FORM, "company": ["株式会社サンプル"]})
    with counting(world.dynamodb) as repeat:
        assert not capture.capture(later, RequestInfo()).created
    # the address, the lead with the post's marker, one transaction
    assert repeat.names == ["BatchGetItem", "BatchGetItem", "TransactWriteItems"]
    assert first.profile_puts() == repeat.profile_puts() == []


def test_the_same_post_sent_again_is_answered_from_its_marker_in_two_reads(
    world: NurtureWorld,
) -> None:
    capture = capture_with_scores(world.dynamodb, world.clock)
    submission = parse_submission(FORM)
    first = capture.capture(submission, RequestInfo())
    with counting(world.dynamodb) as again:
        repeated = capture.capture(submission, RequestInfo())
    # created, as the first answer said, and known for a repeat
    assert repeated == replace(first, repeat=True)
    assert again.names == ["BatchGetItem", "BatchGetItem"]


EVENTS = ["delivery", "open", "click", "bounce_transient", "bounce_permanent", "complaint"]


@pytest.mark.parametrize("name", EVENTS)
def test_an_ses_event_takes_one_read_and_one_write(
    world: NurtureWorld, lambda_context: Any, name: str
) -> None:
    lead = store_lead(world.repository, world.clock)
    deliver = engagement(recorder(world.dynamodb, world.clock), lambda_context)
    at = world.clock.now() + timedelta(hours=1)
    event = ses_record(name, lead_id=lead.lead_id, email=lead.email, at=at)
    with counting(world.dynamodb) as calls:
        assert deliver([raw(event)]).failed == []
    assert calls.names == ["BatchGetItem", "TransactWriteItems"]
    assert calls.profile_puts() == []
    # and its redelivery is one read that finds the marker
    with counting(world.dynamodb) as again:
        assert deliver([raw(event)]).failed == []
    assert again.names == ["BatchGetItem"]


def test_a_click_that_qualifies_is_still_one_read_and_one_write(
    world: NurtureWorld, lambda_context: Any
) -> None:
    # Given a grade A lead at 48 points: one click (3) makes it an MQL
    at = world.clock.now() + timedelta(hours=1)
    lead = store_lead(
        world.repository,
        world.clock,
        industry="製造業",
        company_size="1000+",
        job_title="情報システム部長",
        score_units=load_scoring().units(48, at),
    )
    deliver = engagement(recorder(world.dynamodb, world.clock), lambda_context)
    event = ses_record("click", lead_id=lead.lead_id, email=lead.email, at=at)
    with counting(world.dynamodb) as calls:
        assert deliver([raw(event)]).failed == []
    stored = world.repository.get(lead.lead_id)
    assert stored is not None
    assert stored.stage is Stage.MQL
    # the score, the stage change, its activity and its counter: one write
    assert calls.names == ["BatchGetItem", "TransactWriteItems"]


def test_a_send_takes_three_calls_besides_ses(world: NurtureWorld) -> None:
    enrol(world, "welcome")
    world.tick()
    jobs = world.receive()
    with counting(world.dynamodb) as calls:
        world.deliver(jobs)
    assert len(world.ses.sent) == 1
    # the lead, the step's claim, one transaction (record, activity, next step)
    assert calls.names == ["GetItem", "PutItem", "TransactWriteItems"]
    assert calls.profile_puts() == []


def test_concurrent_leads_count_in_different_counter_items(world: NurtureWorld) -> None:
    # Given sixteen new leads posted on one day
    capture = capture_with_scores(world.dynamodb, world.clock)
    written: set[str] = set()
    for n in range(16):
        form = {**FORM, "email": [f"shard{n}@example.co.jp"]}
        with counting(world.dynamodb) as calls:
            capture.capture(parse_submission(form), RequestInfo())
        (transaction,) = [p for name, p in calls.made if name == "TransactWriteItems"]
        written.update(
            i["Update"]["Key"]["sk"]["S"]
            for i in transaction["TransactItems"]
            if "Update" in i and i["Update"]["Key"]["pk"]["S"].startswith("COUNTER#")
        )
    # Then their counts went to several shards of the stage counter (and of its
    # breakdowns), not to one item every concurrent transaction would touch
    for counter in ("stage", "source#(none)", "form#download", "program#welcome"):
        assert len({sk for sk in written if sk.startswith(f"{counter}@")}) > 1, counter
    # and the report adds them up
    assert counters(world.dynamodb, world.clock.now())["stage"] == {"new>lead": 16}


def test_a_purchase_takes_one_read_and_one_write_and_a_repeat_one_read(
    world: NurtureWorld,
) -> None:
    from shared.domain.customers import Purchase, load_customers
    from shared.services.purchases import PurchaseBook

    lead = store_lead(world.repository, world.clock, stage=Stage.CUSTOMER, program=None)
    book = PurchaseBook(world.repository, world.programs, load_customers(), world.clock)
    order = Purchase(purchase_id="SO-1", date=TUESDAY_10.date(), amount=1000, product="p")
    with counting(world.dynamodb) as first:
        assert not book.record(lead.lead_id, order).duplicate
    # the lead with the order's marker; the lead, its activities, marker and counts
    assert first.names == ["BatchGetItem", "TransactWriteItems"]
    assert first.profile_puts() == []
    with counting(world.dynamodb) as again:
        assert book.record(lead.lead_id, order).duplicate
    assert again.names == ["BatchGetItem"]

"""Benchmark the write paths of form posts and SES events against moto server.

Prints, for each operation, its rate beside the raw floor of its unavoidable DynamoDB
calls, measured in the same run against the same moto server with the same number of
operations at once:

- **form posts** through the capture function's handler, wired as on AWS
  (``functions.capture.handler.dependencies``), as a browser posts an HTML form
  (urlencoded, redirected to the thank-you page): new leads, then a later post of each
  of the same leads (known leads, new content). Floor: the same BatchGetItem (address
  and erasure) and TransactWriteItems (email claim, profile, post marker, activities,
  consent, counter) with plain boto3 for a new lead; the two BatchGetItems and the
  TransactWriteItems for a known lead.
- **SES events** (delivery, open and click, built with ``tests.email_events``) through
  the engagement function's handler in SQS batches of ten, each event about a lead of
  its own seeded in the table. Floor: the same BatchGetItem and TransactWriteItems per
  event with plain boto3.

The floors replay the parameters the functions sent (recorded with botocore's
``provide-client-params`` hook), against a table in the same state, so they read and
write the same items. Calls per operation are counted with the same hook; write units
are computed from item sizes (``bench.aws.write_units``).

Run: ``make bench`` (or ``python -m bench.writes --posts 120 --events 120``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from itertools import cycle
from typing import Any

from bench.aws import (
    HEADER,
    NOTES,
    Figures,
    Meter,
    Replayer,
    Run,
    chunks,
    concurrently,
    moto_server,
    per_op,
    pick,
    reset,
    settle,
    table_sizes,
    unmetered,
    write_units,
)
from bench.nurture import NOW, Context, make_lead, quiet, seed
from infra.provision import create_table
from shared.domain.clock import FixedClock

TABLE = "bench-writes"
FLOOR_TABLE = "bench-writes-floor"
SITE = "https://www.example.co.jp"
NEW_LEAD = ("BatchGetItem", "TransactWriteItems")
KNOWN_LEAD = ("BatchGetItem", "BatchGetItem", "TransactWriteItems")
EVENT = ("BatchGetItem", "TransactWriteItems")
KINDS = ("delivery", "open", "click")


def fresh_table(name: str) -> None:
    create_table(unmetered().client("dynamodb"), name)


def form(index: int, later: bool) -> dict[str, Any]:
    """A download form as a browser posts it; ``later``: the same person a week on,
    with a seminar registration and a job title."""
    from tests.events import form_post

    fields: dict[str, str | list[str]] = {
        "email": f"taro.yamada{index}@example.co.jp",
        "last_name": "山田",
        "first_name": "太郎",
        "company": "ＡＢＣ株式会社",
        "department": "情報システム部",
        "tel": "03-1234-5678",
        "pref": "東京",
        "interests": ["AI", "IoT"],
        "form_type": "download",
        "whitepaper": "dx-guide-2026.pdf",
        "consent": "on",
        "utm_source": "google",
        "utm_campaign": "dx-autumn",
        "page_url": f"{SITE}/resources/dx-guide",
        "thanks_url": f"{SITE}/thanks",
    }
    if later:
        fields.update(form_type="seminar_registration", job_title="課長", whitepaper=[])
    return form_post(
        fields,
        headers={"Accept": "text/html,application/xhtml+xml", "Origin": SITE},
    )


def measure(
    meter: Meter,
    run: Run,
    floor: Replayer,
    work: Callable[[int], object],
    units: Sequence[int],
    unavoidable: Callable[[int], Sequence[str]],
    workers: int,
) -> None:
    """Units of work through the function, then their floor (each unit's unavoidable
    calls, replayed), a few units at a time, alternating, so that both meet the machine
    in the same state."""
    settle()
    for chunk in chunks(units, 5 * workers):
        start = len(run.calls)
        with meter.recording(run), run.timed():
            concurrently(work, chunk, workers)
        made = Run(run.calls[start:]).units(lambda call: call.label)
        floor.replay([pick(made[i], unavoidable(i)) for i in chunk])


def form_posts(meter: Meter, endpoint: str, count: int, workers: int) -> tuple[Figures, Figures]:
    """New leads, then a later post of each: through the handler, and their floors."""
    from functions.capture.handler import build, lambda_handler

    reset(endpoint)
    fresh_table(TABLE)
    fresh_table(FLOOR_TABLE)
    os.environ.update(TABLE_NAME=TABLE, CORS_ORIGINS=SITE, REDIRECT_ORIGINS=SITE)
    clock = FixedClock(NOW)
    with quiet():
        app = build(clock)
    figures = []
    for later, name, calls in ((False, "form post, new lead", NEW_LEAD),
                               (True, "form post, known lead", KNOWN_LEAD)):  # fmt: skip
        posts = [form(i, later) for i in range(count)]

        def post(index: int, posts: list[dict[str, Any]] = posts) -> None:
            meter.label = index
            response = lambda_handler(posts[index], Context(), app)  # type: ignore[arg-type]
            assert response["statusCode"] == 303, response

        run, floor = Run(), Replayer(meter, FLOOR_TABLE, workers)
        before, floor_before = table_sizes(TABLE), table_sizes(FLOOR_TABLE)
        measure(meter, run, floor, post, range(count), lambda _, c=calls: c, workers)  # type: ignore[misc]
        label = " + ".join(calls) + ", the same items"
        wcu = write_units(run.dynamodb(), before, table_sizes(TABLE))
        floor_wcu = write_units(floor.run.dynamodb(), floor_before, table_sizes(FLOOR_TABLE))
        figures.append(Figures(name, count, run, wcu, label, floor.run, floor_wcu))
        clock.advance(timedelta(days=7))
    return figures[0], figures[1]


def ses_events(meter: Meter, endpoint: str, count: int, workers: int) -> tuple[Figures, str]:
    """Delivery, open and click events, each about a lead of its own, in SQS batches
    of ten through the handler, and their floor; also the calls and units by kind."""
    from functions.engagement.handler import build, lambda_handler
    from tests.email_events import raw, ses_record, sqs_event

    leads = [make_lead(i, due=False) for i in range(count)]
    at = NOW + timedelta(hours=1)
    kinds = [kind for kind, _ in zip(cycle(KINDS), leads, strict=False)]
    bodies = [
        raw(
            ses_record(
                kind,
                lead_id=lead.lead_id,
                email=lead.email,
                at=at,
                message_id=f"0100019a-bench-{i:06d}",
                program="welcome",
                step=lead.enrolment.step_id if lead.enrolment else None,
                variant="A",
            )
        )
        for i, (kind, lead) in enumerate(zip(kinds, leads, strict=True))
    ]
    # Batches of one kind, so each kind's calls and units can be told apart; the kinds
    # take turns.
    by_kind = {k: [b for b, kind in zip(bodies, kinds, strict=True) if kind == k] for k in KINDS}
    batches = [
        (kind, by_kind[kind][i : i + 10])
        for i in range(0, max(len(v) for v in by_kind.values()), 10)
        for kind in KINDS
        if by_kind[kind][i : i + 10]
    ]

    reset(endpoint)
    for table in (TABLE, FLOOR_TABLE):
        fresh_table(table)
        seed(table, leads)
    os.environ.update(TABLE_NAME=TABLE)
    with quiet():
        app = build(FixedClock(at + timedelta(minutes=5)))

    def deliver(index: int) -> None:
        meter.label = index
        response = lambda_handler(sqs_event(batches[index][1]), Context(), app)  # type: ignore[arg-type]
        assert response["batchItemFailures"] == [], response

    run, floor = Run(), Replayer(meter, FLOOR_TABLE, workers)
    before, floor_before = table_sizes(TABLE), table_sizes(FLOOR_TABLE)
    measure(
        meter,
        run,
        floor,
        deliver,
        range(len(batches)),
        lambda i: EVENT * len(batches[i][1]),
        workers,
    )
    after = table_sizes(TABLE)
    label = "BatchGetItem + TransactWriteItems per event, the same items"
    figures = Figures(
        "SES event (delivery/open/click)",
        count,
        run,
        write_units(run.dynamodb(), before, after),
        label,
        floor.run,
        write_units(floor.run.dynamodb(), floor_before, table_sizes(FLOOR_TABLE)),
    )
    lines = []
    made = run.units(lambda call: call.label)
    for kind in KINDS:
        labels = [i for i, (k, _) in enumerate(batches) if k == kind]
        n = sum(len(batches[i][1]) for i in labels)
        calls = Run([call for i in labels for call in made.get(i, [])])
        lines.append(
            f"    {kind:<8}: {per_op(calls.names(), n)}; "
            f"{write_units(calls.dynamodb(), before, after) / n:.2f} WCU per event"
        )
    return figures, "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.writes", description=__doc__)
    parser.add_argument("--posts", type=int, default=120, help="new leads (and as many repeats)")
    parser.add_argument("--events", type=int, default=120, help="SES events")
    parser.add_argument("--concurrency", type=int, default=4, help="operations at once")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with moto_server() as endpoint:
        meter = Meter()
        print(
            f"moto server at {endpoint}; {args.posts} form posts of each kind and "
            f"{args.events} SES events, {args.concurrency} at once"
        )
        with quiet():  # the functions' metric lines (EMF on stdout)
            new, known = form_posts(meter, endpoint, args.posts, args.concurrency)
            events, by_kind = ses_events(meter, endpoint, args.events, args.concurrency)
        print(HEADER)
        for figures in (new, known, events):
            print(figures.row())
        print("calls per operation:")
        for figures in (new, known, events):
            print(figures.details())
        print("  SES events by kind:")
        print(by_kind)
        print(NOTES)


if __name__ == "__main__":
    main()

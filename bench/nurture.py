"""Benchmark the nurture path against moto server (a real HTTP endpoint on loopback).

Prints:
1. emails sent per second through scheduler + sender (one tick: query, lease, queue;
   then the sender Lambda handler on SQS batches of ten: re-read, render, claim, SES
   send, one transaction), next to the raw floor measured in the same run with the
   same concurrency: one SES send and one DynamoDB write per lead with plain boto3;
   their ratio, and the calls and write units (computed) per send of each; and next
   to a replay of the very calls the two functions made (how fast the calls alone go);
2. the time of one scheduler tick with the same number of due leads among 1k and
   among 10k total leads (the due index keeps the items read flat), and their ratio.

The sender handles a batch's jobs on ``--concurrency`` threads (its
``send_concurrency`` setting); the floors use as many threads, taking turns with it
batch by batch. The handler's SES pace (``send_rate``) is off here: it would measure
the pace, not the code. Lambda's polling of the queue is not timed.

Run: ``make bench`` (or ``python -m bench.nurture --due 200 --large 10000``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from bench.aws import (
    HEADER,
    NOTES,
    Figures,
    Meter,
    Replayer,
    Run,
    concurrently,
    moto_server,
    reset,
    settle,
    table_sizes,
    unmetered,
    write_units,
)
from infra.local.runtime import sqs_record
from infra.provision import create_table
from shared.adapters.codecs import lead_item
from shared.adapters.items import serialize
from shared.domain.clock import FixedClock
from shared.domain.email import EmailRenderer, OutgoingEmail, SenderProfile, build_mime
from shared.domain.leads import ConsentState, FormType, Lead, Touch, new_id
from shared.domain.nurture import start
from shared.domain.programs import Program, load_programs

# Tuesday 2026-11-24 10:00 JST: inside the default send window.
NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
SENDER = SenderProfile(
    company_name="株式会社サンプル",
    from_address="株式会社サンプル <news@example.co.jp>",
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contact_email="marketing@example.co.jp",
    site_url="https://www.example.co.jp",
)
UNSUBSCRIBE_URL = "http://127.0.0.1/v1/unsubscribe"


class Context:
    """The Lambda context the handlers are given."""

    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-northeast-1:123456789012:function:bench"
    aws_request_id = "bench"


# Where the functions' loggers write (kept open: a Powertools logger keeps its stream).
_LOGS = open(os.devnull, "w")  # noqa: SIM115


@contextmanager
def quiet() -> Iterator[None]:
    """Build functions here: their loggers write to a null device, not the terminal
    (a Powertools logger keeps the stdout it was made with)."""
    with redirect_stdout(_LOGS):
        yield


@cache
def welcome() -> Program:
    program = load_programs().get("welcome")
    assert program is not None
    return program


def make_lead(index: int, due: bool) -> Lead:
    program = welcome()
    touch = Touch(at=NOW - timedelta(days=1), form_type=FormType.DOWNLOAD)
    enrolment = start(program, NOW - timedelta(minutes=1))
    if not due:
        enrolment = enrolment.model_copy(update={"due_at": NOW + timedelta(days=30)})
    return Lead(
        lead_id=new_id(),
        email=f"lead{index}@example.jp",
        name=f"見込 客{index}",
        company="株式会社ベンチマーク",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=touch.at, wording_version="2026-01"),
        enrolment=enrolment,
        created_at=touch.at,
        updated_at=touch.at,
    )


def seed(table: str, leads: list[Lead], workers: int = 4) -> None:
    """Store the leads (BatchWriteItem of 25, a few at once; not measured)."""
    dynamodb = unmetered().client("dynamodb")
    chunks = [leads[i : i + 25] for i in range(0, len(leads), 25)]

    def write(chunk: list[Lead]) -> None:
        requests = [{"PutRequest": {"Item": serialize(lead_item(lead))}} for lead in chunk]
        pending: Any = {table: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems")

    concurrently(write, chunks, workers)


def fresh_world(name: str) -> tuple[str, str]:
    """A new table and send queue (not measured)."""
    create_table(unmetered().client("dynamodb"), name)
    queue_url = unmetered().client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return name, queue_url


def sender_environment(table: str, queue_url: str, concurrency: int) -> None:
    """What the scheduler and sender functions read from their environment on AWS."""
    os.environ.update(
        TABLE_NAME=table,
        SEND_QUEUE_URL=queue_url,
        CONFIGURATION_SET="bench",
        FROM_ADDRESS=SENDER.from_address,
        SENDER_COMPANY_NAME=SENDER.company_name,
        SENDER_PRODUCT_NAME=SENDER.product_name,
        SENDER_POSTAL_ADDRESS=SENDER.postal_address,
        SENDER_CONTACT_EMAIL=SENDER.contact_email,
        SITE_URL=SENDER.site_url,
        UNSUBSCRIBE_URL=UNSUBSCRIBE_URL,
        SIGNING_SECRET="bench-signing-secret-0123456789",  # noqa: S106 - a throwaway key
        SEND_CONCURRENCY=str(concurrency),
        SEND_RATE="0",
    )


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_url: str) -> dict[str, Any]:
    """SQS messages as the Lambda event source mapping hands them to the function."""
    arn = f"arn:aws:sqs:ap-northeast-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"
    return {"Records": [sqs_record(m, arn) for m in messages]}


def sends(meter: Meter, due: int, concurrency: int) -> tuple[Figures, Figures]:
    """Scheduler + sender handler on ``due`` due leads: emails per second, beside two
    floors: one SES send and one DynamoDB write per lead (the raw floor), and the very
    calls the functions made (replayed on a table in the same state). The three take
    turns (a batch of the sender, then its floors), so that all meet the machine in the
    same state."""
    from functions.scheduler.handler import build as build_scheduler
    from functions.sender.handler import build as build_sender
    from functions.sender.handler import lambda_handler as sender_handler

    leads = [make_lead(i, due=True) for i in range(due)]
    table, queue_url = fresh_world(f"sends-{new_id()[:8]}")
    same_table, same_queue_url = fresh_world(f"same-{new_id()[:8]}")
    floor_table, _ = fresh_world(f"floor-{new_id()[:8]}")
    seed(table, leads)
    seed(same_table, leads)
    sender_environment(table, queue_url, concurrency)
    clock = FixedClock(NOW)
    with quiet():
        scheduler = build_scheduler(clock)
        sender = build_sender(clock)
    assert sender.concurrency == concurrency
    same = Replayer(meter, same_table, concurrency, same_queue_url)
    # The raw floor: one SES send and one DynamoDB write per lead, as many at once.
    dynamodb, ses = meter.client("dynamodb"), meter.client("sesv2")
    lead = make_lead(0, due=True)
    program = welcome()
    rendered = EmailRenderer(SENDER).render(lead, program, program.steps[0], 0, UNSUBSCRIBE_URL)
    raw = build_mime(OutgoingEmail(SENDER.from_address, lead.email, rendered, UNSUBSCRIBE_URL, {}))

    def floor(i: int) -> None:
        ses.send_email(
            FromEmailAddress=SENDER.from_address,
            Destination={"ToAddresses": [f"lead{i}@example.jp"]},
            Content={"Raw": {"Data": raw}},
            ConfigurationSetName="bench",
        )
        dynamodb.put_item(
            TableName=floor_table,
            Item=serialize({"pk": f"LEAD#{uuid.uuid4().hex}", "sk": "PROFILE", "n": i}),
        )

    # The queue as Lambda's event source mapping polls it: not the functions' calls, and
    # not timed (moto takes ~130 ms for a ReceiveMessage of ten).
    sqs = unmetered().client("sqs")
    sizes = {name: table_sizes(name) for name in (table, same_table, floor_table)}
    run, floor_run = Run(), Run()
    failed = floored = 0
    settle()
    with meter.recording(run), run.timed():
        scheduler.tick()
    same.replay([run.calls], workers=1)  # the tick, call after call, as it was made
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        event = sqs_event(messages, queue_url)
        start = len(run.calls)
        with meter.recording(run), run.timed():
            response = sender_handler(event, Context(), sender)  # type: ignore[arg-type]
        same.replay(list(Run(run.calls[start:]).units(lambda call: call.lead).values()))
        with meter.recording(floor_run), floor_run.timed():
            concurrently(floor, range(floored, floored + len(messages)), concurrency)
        floored += len(messages)
        failures = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        failed += len(failures)
        done = [m for m in messages if m["MessageId"] not in failures]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
    sent = run.names()["SendEmail"]
    assert failed == 0, f"{failed} send jobs failed"
    assert sent == due == floored, f"{sent} emails ({floored} in the floor) for {due} due leads"
    assert same.run.names() == run.names(), (same.run.names(), run.names())
    name = "send (scheduler + sender)"
    wcu = write_units(run.dynamodb(), sizes[table], table_sizes(table))
    raw_floor = Figures(
        name,
        due,
        run,
        wcu,
        "1 SendEmail + 1 PutItem per lead",
        floor_run,
        write_units(floor_run.dynamodb(), sizes[floor_table], table_sizes(floor_table)),
    )
    same_calls = Figures(
        "send, beside its own calls",
        due,
        run,
        wcu,
        "the same calls, replayed",
        same.run,
        write_units(same.run.dynamodb(), sizes[same_table], table_sizes(same_table)),
    )
    return raw_floor, same_calls


def tick_time(total: int, due: int) -> tuple[float, int]:
    """Seconds for one tick, and the items DynamoDB read for it (Query ScannedCount)."""
    from shared.adapters.due import DynamoDueIndex
    from shared.adapters.sqs import SqsJobQueue
    from shared.services.due_scheduling import DueScheduler

    table, queue_url = fresh_world(f"tick-{total}-{new_id()[:8]}")
    leads = [make_lead(i, due=i < due) for i in range(total)]
    seed(table, leads)
    dynamodb = unmetered().client("dynamodb")
    read = [0]

    def count(parsed: dict[str, Any], **_: Any) -> None:
        read[0] += int(parsed.get("ScannedCount", 0))

    dynamodb.meta.events.register("after-call.dynamodb.Query", count)
    scheduler = DueScheduler(
        DynamoDueIndex(dynamodb, table),
        SqsJobQueue(unmetered().client("sqs"), queue_url),
        FixedClock(NOW),
    )
    started = time.perf_counter()
    result = scheduler.tick()
    elapsed = time.perf_counter() - started
    assert result.queued == due, result
    return elapsed, read[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.nurture", description=__doc__)
    parser.add_argument("--due", type=int, default=200, help="due leads per measurement")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="jobs at once (the sender's send_concurrency)"
    )
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log
    logging.getLogger().setLevel(logging.WARNING)  # the functions' per-job info logs

    with moto_server() as endpoint:
        meter = Meter()
        print(f"moto server at {endpoint}; {args.due} due leads, {args.concurrency} at once")
        reset(endpoint)
        with quiet():  # the functions' metric lines (EMF on stdout)
            figures = sends(meter, args.due, args.concurrency)
        print(HEADER)
        for line in figures:
            print(line.row())
        for line in figures:
            print(line.details())
        reset(endpoint)

        with quiet():
            small, small_read = tick_time(args.small, args.due)
            reset(endpoint)
            large, large_read = tick_time(args.large, args.due)
        for total, seconds, read in (
            (args.small, small, small_read),
            (args.large, large, large_read),
        ):
            print(
                f"tick, {args.due} due among {total:>6} leads : {seconds * 1000:8.1f} ms, "
                f"{read} index items read"
            )
        print(
            f"ratio large / small           : {large / small:8.2f} time, "
            f"{large_read / max(small_read, 1):.2f} items read"
        )
        print(
            "note: DynamoDB reads only the due key range of each shard (items read above);\n"
            "      moto's in-memory Query filters every item of the table, so its wall time\n"
            "      grows with the table where DynamoDB's does not."
        )
        print(NOTES)


if __name__ == "__main__":
    main()

"""Benchmark the nurture path against moto server (a real HTTP endpoint on loopback).

Prints:
1. leads processed per second by scheduler + sender (lease, queue, re-read, render,
   claim, SES send, advance), next to the raw floor measured in the same run: one SES
   send and one DynamoDB write per lead with plain boto3; and their ratio;
2. the time of one scheduler tick with the same number of due leads among 1k and
   among 50k total leads (the due index keeps it flat), and their ratio.

Run: ``make bench`` (or ``python -m bench.nurture --due 200 --large 50000``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from infra.provision import create_table
from shared.adapters.dynamodb import (
    DynamoDueIndex,
    DynamoLeadRepository,
    DynamoSendLedger,
    lead_item,
    serialize,
)
from shared.adapters.ses import SesMailer
from shared.adapters.sqs import SqsJobQueue
from shared.clock import FixedClock
from shared.delivery import DeliverySettings, NurtureSender, SendJob
from shared.email import EmailRenderer, OutgoingEmail, SenderProfile, build_mime
from shared.leads import ConsentState, FormType, Lead, Touch, new_id
from shared.nurture import start
from shared.programs import Program, load_programs
from shared.scheduling import DueScheduler
from shared.tokens import UnsubscribeTokens

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


class CallStats:
    """AWS calls made through the default boto3 session: count and time per operation."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}
        events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")  # type: ignore[union-attr]
        events.register("before-call", self._before)
        events.register("after-call", self._after)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        elapsed = time.perf_counter() - context.pop("bench_started", time.perf_counter())
        self.calls.setdefault(model.name, []).append(elapsed)

    def report(self, leads: int) -> str:
        rows = sorted(self.calls.items(), key=lambda kv: -sum(kv[1]))
        return "\n".join(
            f"    {name:<20} {len(times) / leads:5.2f} calls/lead "
            f"{1000 * sum(times) / len(times):7.1f} ms/call"
            for name, times in rows
        )


def reset(endpoint: str) -> None:
    """Empty moto between measurements, so one phase's tables do not slow the next."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # noqa: S310
    ses = boto3.client("sesv2")
    ses.create_email_identity(EmailIdentity="example.co.jp")
    ses.create_configuration_set(ConfigurationSetName="bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION="ap-northeast-1",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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


def seed(table: str, leads: list[Lead]) -> None:
    dynamodb = boto3.client("dynamodb")
    for start_at in range(0, len(leads), 25):
        chunk = leads[start_at : start_at + 25]
        requests = [{"PutRequest": {"Item": serialize(lead_item(lead))}} for lead in chunk]
        pending = {table: requests}
        while pending:
            response = dynamodb.batch_write_item(RequestItems=pending)  # type: ignore[arg-type]
            pending = response.get("UnprocessedItems") or {}


def fresh_world(name: str) -> tuple[str, str]:
    """A new table and queue (names unique per run) plus SES identity and config set."""
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, name)
    queue_url = boto3.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return name, queue_url


def pipeline_rate(due: int) -> tuple[float, int]:
    table, queue_url = fresh_world(f"pipeline-{new_id()[:8]}")
    seed(table, [make_lead(i, due=True) for i in range(due)])
    dynamodb, sqs, ses = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("sesv2")
    clock = FixedClock(NOW)
    scheduler = DueScheduler(DynamoDueIndex(dynamodb, table), SqsJobQueue(sqs, queue_url), clock)
    sender = NurtureSender(
        DynamoLeadRepository(dynamodb, table),
        DynamoSendLedger(dynamodb, table),
        SesMailer(ses, "bench"),
        load_programs(),
        EmailRenderer(SENDER),
        UnsubscribeTokens(b"bench-signing-secret-0123456789"),
        clock,
        DeliverySettings(from_address=SENDER.from_address, unsubscribe_url=UNSUBSCRIBE_URL),
    )
    started = time.perf_counter()
    scheduler.tick()
    sent = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            break
        for message in messages:
            if sender.process(SendJob.from_json(message["Body"])).value == "sent":
                sent += 1
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    elapsed = time.perf_counter() - started
    return due / elapsed, sent


def floor_rate(count: int) -> float:
    """One SES send and one DynamoDB write per lead with plain boto3: the floor."""
    table, _ = fresh_world(f"floor-{new_id()[:8]}")
    dynamodb, ses = boto3.client("dynamodb"), boto3.client("sesv2")
    lead = make_lead(0, due=True)
    program = welcome()
    rendered = EmailRenderer(SENDER).render(lead, program, program.steps[0], 0, UNSUBSCRIBE_URL)
    raw = build_mime(OutgoingEmail(SENDER.from_address, lead.email, rendered, UNSUBSCRIBE_URL, {}))
    started = time.perf_counter()
    for i in range(count):
        ses.send_email(
            FromEmailAddress=SENDER.from_address,
            Destination={"ToAddresses": [f"lead{i}@example.jp"]},
            Content={"Raw": {"Data": raw}},
            ConfigurationSetName="bench",
        )
        dynamodb.put_item(
            TableName=table, Item=serialize({"pk": f"LEAD#{i}", "sk": "PROFILE", "n": i})
        )
    return count / (time.perf_counter() - started)


def tick_time(total: int, due: int) -> tuple[float, int]:
    """Seconds for one tick, and the items DynamoDB read for it (Query ScannedCount)."""
    table, queue_url = fresh_world(f"tick-{total}-{new_id()[:8]}")
    leads = [make_lead(i, due=i < due) for i in range(total)]
    seed(table, leads)
    dynamodb = boto3.client("dynamodb")
    read = [0]

    def count(parsed: dict[str, Any], **_: Any) -> None:
        read[0] += int(parsed.get("ScannedCount", 0))

    dynamodb.meta.events.register("after-call.dynamodb.Query", count)
    scheduler = DueScheduler(
        DynamoDueIndex(dynamodb, table),
        SqsJobQueue(boto3.client("sqs"), queue_url),
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
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=50_000)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log

    with moto_server() as endpoint:
        boto3.setup_default_session()
        print(f"moto server at {endpoint}; {args.due} due leads per measurement")

        reset(endpoint)
        stats = CallStats()
        pipeline, sent = pipeline_rate(args.due)
        pipeline_calls = stats.report(args.due)
        reset(endpoint)
        stats.calls.clear()
        floor = floor_rate(args.due)
        floor_calls = stats.report(args.due)
        print(f"scheduler + sender : {pipeline:8.1f} leads/s  ({sent} emails sent)")
        print(pipeline_calls)
        print(f"raw floor          : {floor:8.1f} leads/s  (1 SES send + 1 DynamoDB write)")
        print(floor_calls)
        print(f"ratio              : {pipeline / floor:8.2f}  (pipeline / floor)")
        reset(endpoint)

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


if __name__ == "__main__":
    main()

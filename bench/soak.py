"""The local stack over a long run: resident memory and form-post time per simulated day.

Starts ``python -m infra.local`` on its own ports (its schedules left to this script),
then for each simulated day:

- posts that day's share of the leads through the API (a whitepaper download with
  consent), timing each post;
- moves the stack's clock an hour at a time through the sending hours (09:00 to 18:00
  Tokyo), running the schedules after each move and waiting for the send queue to empty;
- answers every email SES accepted as SES and its reader would: a Delivery two seconds
  after the send, an Open ten minutes after, and for one email in ten a Click, each
  published to the email-events topic.

It prints, per day, the process's resident memory, the median and 95th-percentile form
post, and the emails and events so far; at the end, how long SIGTERM took to stop it.

Run: ``make bench-soak`` (or ``python -m bench.soak --leads 1000 --days 90``;
``--max-minutes`` stops it after the day that passes a wall-time budget).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from infra.local.console import mail as mails
from shared.domain.clock import from_iso

ROOT = Path(__file__).resolve().parents[1]
TOKYO = ZoneInfo("Asia/Tokyo")
SENDING_HOURS = range(9, 19)  # each hour's schedules run at hh:00
CLICK_ONE_IN = 10
SETTLE_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def call(url: str, body: Any = None, method: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def resident_mb(pid: int) -> float:
    """The process's resident set size (Linux ``/proc``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Stack:
    origin: str
    about: dict[str, Any]
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return str(self.about["api"])

    def now(self) -> datetime:
        return from_iso(call(f"{self.origin}/_local/clock")[1]["now"])

    def move_to(self, at: datetime) -> None:
        seconds = int((at - self.now()).total_seconds())
        if seconds > 0:
            call(f"{self.origin}/_local/clock/advance", {"by": f"PT{seconds}S"})

    def tick(self) -> None:
        status, answer = call(f"{self.origin}/_local/tick", method="POST")
        if status != 200:
            raise RuntimeError(f"tick failed: {answer}")


@contextmanager
def local_stack(log: Path) -> Iterator[Stack]:
    port, moto_port = free_port(), free_port()
    command = [sys.executable, "-m", "infra.local", "--port", str(port)]
    command += ["--moto-port", str(moto_port), "--tick-seconds", "86400"]  # ticks are ours
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "API_", "MOTO_"))}
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own module
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    origin = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited:\n{log.read_text()[-3000:]}")
        try:
            status, about = call(f"{origin}/_local")
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the stack did not answer within 120 s")
        time.sleep(0.3)
    try:
        yield Stack(origin, about, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class Readers:
    """The emails SES accepted, answered as their readers would (events to SNS)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        moto = str(stack.about["moto"])
        self._sns = boto3.client(
            "sns",
            endpoint_url=moto,
            region_name="ap-northeast-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto accepts any
        )
        self._sqs = boto3.client(
            "sqs",
            endpoint_url=moto,
            region_name="ap-northeast-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106
        )
        self._topic = str(stack.about["topic_arns"]["email-events"])
        self.answered = 0  # emails answered, oldest first
        self.events = 0

    def queues_empty(self) -> bool:
        for url in self._stack.about["queue_urls"].values():
            counts = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            if any(int(v) for v in counts.values()):
                return False
        return True

    def settle(self) -> None:
        """Wait until every queue (sends, engagement) is empty."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not self.queues_empty() and time.monotonic() < deadline:
            time.sleep(0.2)

    def answer(self, now: datetime) -> None:
        """Publish the events of every email sent before ``now`` not answered yet."""
        while True:
            _, listed = call(f"{self._stack.origin}/_local/outbox?from={self.answered}")
            if not listed["mails"] or not self._answer_page(listed["mails"], now):
                return

    def _answer_page(self, page: list[dict[str, Any]], now: datetime) -> bool:
        """Answer the page's emails in order; False where one is not ready yet."""
        for found in page:
            if not found["tags"].get("lead_id") or not found["sent_at"]:
                return False  # its send record is not seen yet: answered on the next round
            sent_at = from_iso(found["sent_at"])
            mail = mails.SentMail(found["id"], found["source"], tuple(found["to"]), raw="")
            info = mails.SendInfo(found["tags"]["lead_id"], sent_at, found["tags"])
            events: list[tuple[str, datetime, dict[str, Any]]] = [
                ("Delivery", sent_at + timedelta(seconds=2), delivery_detail(mail, sent_at)),
                ("Open", sent_at + timedelta(minutes=10), mails.open_detail()),
            ]
            if int(hashlib.sha256(mail.id.encode()).hexdigest(), 16) % CLICK_ONE_IN == 0:
                url = "https://www.example.co.jp/pricing"
                detail = mails.click_detail(url, "link:pricing;")
                events.append(("Click", sent_at + timedelta(minutes=12), detail))
            for kind, at, detail in events:
                if at > now:
                    continue
                event = mails.ses_event(
                    kind,
                    mail,
                    info,
                    at,
                    configuration_set=str(self._stack.about["configuration_set"]),
                    detail=detail,
                )
                self._sns.publish(TopicArn=self._topic, Message=json.dumps(event))
                self.events += 1
            self.answered += 1
        return True


def delivery_detail(mail: mails.SentMail, sent_at: datetime) -> dict[str, Any]:
    return {
        "timestamp": mails.ses_time(sent_at + timedelta(seconds=2)),
        "processingTimeMillis": 2000,
        "recipients": list(mail.destinations),
        "smtpResponse": "250 2.0.0 OK",
        "reportingMTA": "a27-1.smtp-out.ap-northeast-1.amazonses.com",
    }


def post_lead(stack: Stack, run: str, n: int) -> float:
    form = {
        "email": f"soak-{run}-{n}@example.co.jp",
        "form_type": "download",
        "consent": True,
        "company": "東洋精機株式会社",
        "last_name": "伊藤",
    }
    started = time.perf_counter()
    status, answer = call(f"{stack.api}/leads", form)
    elapsed = time.perf_counter() - started
    if status != 201:
        raise RuntimeError(f"a form post answered {status}: {answer}")
    return elapsed


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--leads", type=int, default=200, help="leads posted in all")
    parser.add_argument("--days", type=int, default=30, help="simulated days")
    parser.add_argument(
        "--spread", type=int, default=10, help="days over which the leads are posted"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after the day that passes this much wall time (the summary still prints)",
    )
    parser.add_argument("--log", type=Path, default=ROOT / "build" / "bench-soak-stack.log")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    spread = max(1, min(args.spread, args.days))
    print(
        f"local stack soak: {args.leads} leads posted over {spread} days, {args.days} days "
        f"of hourly schedules in sending hours, every email answered (log: {args.log})"
    )
    print(
        f"{'day':>4} {'leads':>6} {'emails':>7} {'events':>7} {'RSS MB':>7} "
        f"{'post p50 ms':>11} {'post p95 ms':>11} {'wall s':>7}"
    )
    posted = 0
    first: tuple[float, float] | None = None  # day 0's post p50 and resident memory
    last = (0.0, 0.0)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with local_stack(args.log) as stack:
        readers = Readers(stack)
        start_day = stack.now().astimezone(TOKYO).date()
        wall = time.monotonic()
        for day in range(args.days):
            date = start_day + timedelta(days=day)
            morning = datetime(date.year, date.month, date.day, 8, 50, tzinfo=TOKYO)
            stack.move_to(morning)
            todays = args.leads * (day + 1) // spread - posted if day < spread else 0
            probes = max(todays, 5)  # a few posts every day, to time them
            times = [post_lead(stack, run, posted + n) for n in range(probes)]
            posted += probes
            for hour in SENDING_HOURS:
                at = datetime(date.year, date.month, date.day, hour, tzinfo=TOKYO)
                stack.move_to(at)
                readers.answer(at)
                stack.tick()
                readers.settle()
            last = (statistics.median(times), resident_mb(stack.process.pid))
            first = first or last
            print(
                f"{day:>4} {posted:>6} {readers.answered:>7} {readers.events:>7} "
                f"{resident_mb(stack.process.pid):>7.0f} "
                f"{statistics.median(times) * 1000:>11.0f} {p95(times) * 1000:>11.0f} "
                f"{time.monotonic() - wall:>7.0f}",
                flush=True,
            )
            if args.max_minutes and time.monotonic() - wall > args.max_minutes * 60:
                print(f"stopped after day {day}: --max-minutes {args.max_minutes:g} reached")
                break
        if first is not None:
            print(
                f"last day against day 0: form post p50 {last[0] / first[0]:.2f}x, "
                f"resident memory {last[1] / first[1]:.2f}x ({last[1] - first[1]:+.0f} MB)"
            )
        stopping = time.monotonic()
        stack.process.send_signal(signal.SIGTERM)
        stack.process.wait(timeout=120)
        print(f"SIGTERM to exit: {time.monotonic() - stopping:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local stack (``make dev``) end to end over HTTP, as a developer runs it.

One stack per test module, on free ports, in a subprocess that is always stopped:
leads are posted to the local API Gateway, the clock is moved through ``/_local``, and
what comes out is read where AWS would put it (SES's sent mail, the sales inbox queue).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shared.domain.clock import from_iso
from shared.domain.programs import load_programs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30
ARRIVAL_TIMEOUT_S = 10
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def request(
    url: str,
    body: Any = None,
    method: str | None = None,
    *,
    signed: bool = False,
    timeout_s: float = 10,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if signed:
        # As an AWS client signs for an IAM route, with the keys the local stack accepts.
        verb = method or ("GET" if data is None else "POST")
        signing = AWSRequest(method=verb, url=url, data=data, headers=headers)
        SigV4Auth(Credentials("local", "local"), "execute-api", "ap-northeast-1").add_auth(signing)
        headers = dict(signing.headers.items())
    call = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(call, timeout=timeout_s) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def signed_request(url: str, body: Any = None, method: str | None = None) -> tuple[int, Any]:
    """``request`` to an IAM (admin) route, SigV4-signed."""
    return request(url, body, method, signed=True)


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = ARRIVAL_TIMEOUT_S) -> T:
    """Poll until ``probe`` returns something, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s}s")
        time.sleep(0.2)


@dataclass
class Stack:
    origin: str  # the local API Gateway and /_local
    about: dict[str, Any]
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return str(self.about["api"])

    @property
    def moto(self) -> str:
        return str(self.about["moto"])

    def now(self) -> datetime:
        status, body = request(f"{self.origin}/_local/clock")
        assert status == 200
        return from_iso(body["now"])

    def sent_emails(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.moto}/moto-api/data.json", timeout=10) as response:  # noqa: S310
            data = json.loads(response.read())
        messages: list[dict[str, Any]] = data.get("ses", {}).get("RawMessage", [])
        return messages

    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.moto,
            region_name="ap-northeast-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@contextmanager
def local_stack(log: Path, *options: str) -> Iterator[Stack]:
    """``python -m infra.local`` on free ports until the block ends (then SIGTERM)."""
    port, moto_port = free_port(), free_port()
    command = [sys.executable, "-m", "infra.local", "--port", str(port)]
    command += ["--moto-port", str(moto_port), *options]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "API_", "MOTO_"))}
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own module
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    origin = f"http://127.0.0.1:{port}"
    try:

        def ready() -> dict[str, Any] | None:
            if process.poll() is not None:
                raise AssertionError(f"the stack exited:\n{log.read_text()[-3000:]}")
            try:
                status, about = request(f"{origin}/_local")
            except OSError:
                return None
            return about if status == 200 else None

        about = eventually(ready, "the stack answering", START_TIMEOUT_S)
        yield Stack(origin, about, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        print(log.read_text()[-3000:])  # shown when a test failed


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("local-stack") / "stack.log") as running:
        yield running


def next_send_time(now: datetime) -> datetime:
    """10:00 Tokyo time on the first day the welcome program sends on, after ``now``."""
    welcome = load_programs().get("welcome")
    assert welcome is not None
    window = welcome.send_window
    local = now.astimezone(window.zone)
    day = local.date()
    while True:
        target = datetime(day.year, day.month, day.day, 10, tzinfo=window.zone)
        if target > local + timedelta(minutes=1) and window.is_open_day(day):
            return target
        day += timedelta(days=1)


def test_a_lead_posted_with_consent_gets_the_welcome_email_once_the_window_opens(
    stack: Stack,
) -> None:
    # Given a visitor who downloads a whitepaper with consent
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.co.jp"
    form = {"email": email, "form_type": "download", "consent": True, "last_name": "山田"}
    status, body = request(f"{stack.api}/leads", form)
    assert status == 201, body
    assert body["status"] == "created"

    # When the clock moves to a business day at 10:00 in Tokyo and the schedules run
    now = stack.now()
    seconds = math.ceil((next_send_time(now) - now).total_seconds())
    status, moved = request(f"{stack.origin}/_local/clock/advance", {"by": f"PT{seconds}S"})
    assert status == 200
    assert from_iso(moved["now"]) >= now + timedelta(seconds=seconds)
    status, ticked = request(f"{stack.origin}/_local/tick", method="POST")
    assert status == 200
    assert ticked["results"]["scheduler"]["queued"] >= 1

    # Then the sender, fed by the send queue's poller, has sent the welcome email via SES
    def welcome() -> dict[str, Any] | None:
        return next((m for m in stack.sent_emails() if email in m["destinations"]), None)

    sent = eventually(welcome, f"an email to {email}")
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in sent["raw_data"]

    # and the stack's outbox lists it with the tags and time the sender recorded, from
    # any count of emails already read on
    def listed() -> dict[str, Any] | None:
        status, outbox = request(f"{stack.origin}/_local/outbox?from=0")
        assert status == 200
        mail = next((m for m in outbox["mails"] if m["id"] == sent["id"]), None)
        return mail if mail and mail["tags"] else None

    mail = eventually(listed, "the email in the stack's outbox")
    assert mail["to"] == [email]
    assert mail["tags"]["lead_id"] == body["lead_id"]
    assert from_iso(mail["sent_at"]) >= now + timedelta(seconds=seconds)
    status, rest = request(f"{stack.origin}/_local/outbox?from={outbox_count(stack)}")
    assert (status, rest["mails"]) == (200, [])
    assert request(f"{stack.origin}/_local/outbox?from=x")[0] == 400


def outbox_count(stack: Stack) -> int:
    count: int = request(f"{stack.origin}/_local/outbox?from=0")[1]["count"]
    return count


def test_an_inquiry_reaches_the_sales_inbox_through_the_stream_and_the_handoff(
    stack: Stack,
) -> None:
    # Given an inquiry: high intent, so the lead becomes an MQL as it is captured
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.co.jp"
    form = {"email": email, "form_type": "inquiry", "consent": True, "message": "見積もり希望"}
    status, body = request(f"{stack.api}/leads", form)
    assert status == 201, body
    lead_id = body["lead_id"]

    # Then the handoff function, fed by the table's stream, published it to the sales topic
    sqs = stack.sqs()
    inbox = stack.about["sales_inbox_url"]

    def handed_off() -> dict[str, Any] | None:
        messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            envelope = json.loads(message["Body"])
            if lead_id in envelope["Message"]:
                return dict(envelope)
        return None

    envelope = eventually(handed_off, f"lead {lead_id} in the sales inbox")
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"].endswith("sales-leads")


def test_the_admin_routes_answer_only_signed_calls(stack: Stack) -> None:
    # Given a captured lead
    form = {"email": f"e2e-{uuid.uuid4().hex[:8]}@example.co.jp", "form_type": "download"}
    status, body = request(f"{stack.api}/leads", {**form, "consent": True})
    assert status == 201, body
    url = f"{stack.api}/leads/{body['lead_id']}"

    # Then the admin routes refuse unsigned calls, as AWS_IAM authorization does
    assert request(url) == (403, {"message": "Missing Authentication Token"})
    status, _ = request(f"{url}/disposition", {"disposition": "won"})
    assert status == 403
    assert request(f"{url}/export") == (403, {"message": "Missing Authentication Token"})

    # and answer calls signed with the local stack's keys
    status, lead = signed_request(url)
    assert status == 200, lead
    assert lead["lead"]["lead_id"] == body["lead_id"]
    status, document = signed_request(f"{url}/export")
    assert status == 200, document
    assert (document["lead_id"], document["profile"]["email"]) == (body["lead_id"], form["email"])


def test_the_clock_refuses_what_is_not_a_forward_duration(stack: Stack) -> None:
    before = stack.now()
    for body in ({"by": "yesterday"}, {"by": "P1M"}, {}):
        status, answer = request(f"{stack.origin}/_local/clock/advance", body)
        assert status == 400, answer
    assert stack.now() - before < timedelta(hours=1)


def raw_status(url: str, method: str, headers: dict[str, str], body: bytes = b"") -> int:
    """The status of one request with exactly these headers, redirects not followed."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, parts.path or "/", body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_console_and_clock_refuse_what_another_web_page_could_send(stack: Stack) -> None:
    clock = f"{stack.origin}/console/clock"
    host = urllib.parse.urlsplit(stack.origin).netloc
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    move = b"by=P7D&back=%2Fconsole%2F"
    before = stack.now()

    # A form on another site posting to the console (CSRF) is refused, and nothing moves
    assert raw_status(clock, "POST", {**form, "Origin": "https://evil.example"}, move) == 403
    advance = f"{stack.origin}/_local/clock/advance"
    json_type = {"Content-Type": "application/json", "Origin": "https://evil.example"}
    assert raw_status(advance, "POST", json_type, b'{"by": "P7D"}') == 403
    # as is a page under a rebound host name, even for reading
    leads = f"{stack.origin}/console/leads"
    rebound = f"evil.example:{urllib.parse.urlsplit(stack.origin).port}"
    assert raw_status(leads, "GET", {"Host": rebound}) == 403
    assert stack.now() - before < timedelta(days=1)

    # while the console's own form, and tools that send no Origin, still work
    same_origin = {**form, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    assert raw_status(clock, "POST", same_origin, b"by=PT1H&back=%2Fconsole%2F") == 303
    assert raw_status(leads, "GET", {}) == 200
    assert stack.now() - before >= timedelta(hours=1)
    assert stack.now() - before < timedelta(days=1)


def test_moto_and_the_api_refuse_what_a_web_page_could_send_them(stack: Stack) -> None:
    # A page's fetch to moto (it would otherwise allow any origin and check no signature)
    tables = f"{stack.moto}/"
    target = {"X-Amz-Target": "DynamoDB_20120810.ListTables"}
    json_type = {"Content-Type": "application/x-amz-json-1.0", **target}
    page = {**json_type, "Origin": "https://evil.example"}
    assert raw_status(tables, "POST", page, b"{}") == 403
    # while the SDKs the stack and its tools use go through
    assert stack.sqs().list_queues()["QueueUrls"]
    # and the API stage takes cross-origin form posts, but not under a rebound name
    port = urllib.parse.urlsplit(stack.origin).port
    form = {"Content-Type": "application/json", "Accept": "application/json"}
    body = b'{"email": "rebound@example.co.jp", "form_type": "newsletter"}'
    leads = f"{stack.api}/leads"
    assert raw_status(leads, "POST", {**form, "Host": f"evil.example:{port}"}, body) == 403


def test_with_state_leads_and_the_clock_survive_a_restart(tmp_path: Path) -> None:
    # Given a run keeping its state, in which a lead was captured and the clock moved
    log, state = tmp_path / "stack.log", tmp_path / "state"
    form = {"email": "kept@example.co.jp", "form_type": "download", "consent": True}
    with local_stack(log, "--state", str(state)) as first:
        status, body = request(f"{first.api}/leads", form)
        assert status == 201, body
        status, moved = request(f"{first.origin}/_local/clock/advance", {"by": "P3D"})
        assert status == 200

    # When the stack starts again with the same state
    with local_stack(log, "--state", str(state)) as second:
        # Then the lead is there and the clock is still three days ahead
        status, lead = signed_request(f"{second.api}/leads/{body['lead_id']}")
        assert status == 200, lead
        assert "kept@example.co.jp" in json.dumps(lead)
        assert second.now() >= from_iso(moved["now"])

    # and --reset starts empty
    with local_stack(log, "--state", str(state), "--reset") as third:
        status, _ = signed_request(f"{third.api}/leads/{body['lead_id']}")
        assert status == 404
        assert third.now() < from_iso(moved["now"]) - timedelta(days=2)


def test_ctrl_c_saves_the_state_and_stops_the_stack(tmp_path: Path) -> None:
    # Given a stack keeping its state, with a lead captured
    log, state = tmp_path / "stack.log", tmp_path / "state"
    form = {"email": "interrupted@example.co.jp", "form_type": "download", "consent": True}
    with local_stack(log, "--state", str(state)) as running:
        status, body = request(f"{running.api}/leads", form)
        assert status == 201, body

        # When Ctrl-C reaches it (SIGINT, as a terminal sends it)
        running.process.send_signal(signal.SIGINT)

        # Then it saves, says so and exits cleanly, without being killed
        assert running.process.wait(timeout=15) == 0
    printed = log.read_text()
    assert f"and the clock to {state}" in printed
    assert printed.rstrip().endswith("stopped")
    with local_stack(log, "--state", str(state)) as again:
        status, lead = signed_request(f"{again.api}/leads/{body['lead_id']}")
        assert status == 200, lead


def test_the_stack_names_every_topic_and_queue_it_runs(stack: Stack) -> None:
    status, about = request(f"{stack.origin}/_local")
    assert status == 200
    assert set(about["topic_arns"]) == {"email-events", "sales-leads"}
    sns = boto3.client(
        "sns",
        endpoint_url=stack.moto,
        region_name="ap-northeast-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    topics = {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    assert set(about["topic_arns"].values()) <= topics
    assert about["configuration_set"]


def raw_post(stack: Stack, content_length: str | None) -> bytes:
    """A form post whose Content-Length header is ``content_length`` (None: sent chunked,
    with no length), as bytes on a socket."""
    host, port = urllib.parse.urlsplit(stack.origin).netloc.split(":")
    body = b'{"email": "length@example.co.jp", "form_type": "download"}'
    length = (
        "Transfer-Encoding: chunked"
        if content_length is None
        else f"Content-Length: {content_length}"
    )
    head = (
        f"POST /{urllib.parse.urlsplit(stack.api).path.strip('/')}/leads HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
    )
    if content_length is None:
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        return answer


@pytest.mark.parametrize("content_length", ["abc", "-1", "1e3"])
def test_a_malformed_content_length_is_answered_400(stack: Stack, content_length: str) -> None:
    answer = raw_post(stack, content_length)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b'{"message":"Invalid Content-Length"}')


def test_a_body_sent_without_a_length_is_answered_411(stack: Stack) -> None:
    answer = raw_post(stack, None)
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert answer.endswith(b'{"message":"Length Required"}')


def test_simultaneous_posts_for_one_new_address_are_all_answered_and_store_one_lead(
    stack: Stack,
) -> None:
    email = f"burst-{uuid.uuid4().hex[:8]}@example.co.jp"
    start = threading.Barrier(50)
    answers: list[tuple[int, Any]] = []

    def post(n: int) -> None:
        # fifty different posts (a double-click of one post is one submission)
        form = {"email": email, "form_type": "download", "consent": True, "message": f"#{n}"}
        start.wait()
        # a long wait: one moto process serves the rounds DynamoDB would run in parallel
        answers.append(request(f"{stack.api}/leads", form, timeout_s=90))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 50
    assert {status for status, _ in answers} <= {200, 201}, answers
    assert [body["status"] for _, body in answers].count("created") == 1, answers
    assert len({body["lead_id"] for _, body in answers}) == 1

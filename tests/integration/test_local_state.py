"""``--state DIR`` against a moto server in this process, as ``make dev`` runs it.

A run is provisioned, given queued messages and sent emails, and saved; moto is reset
(a fresh start), provisioned again and loaded. The round trip goes through moto's
internals (``infra/local/state.py``), so these tests are also where a moto upgrade that
changes them shows.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.local import state
from infra.local.console.mail import sent_mails
from infra.provision import Provisioned, provision_all
from infra.wiring import ENGAGEMENT_QUEUE, SALES_TOPIC, SEND_QUEUE

PREFIX = "lead-nurture-state-test"
DOMAIN = "example.co.jp"
REGION = "ap-northeast-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def reset(endpoint: str) -> None:
    """Forget everything, as a new ``make dev`` process starts."""
    call = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(call, timeout=10):  # noqa: S310 - loopback moto
        pass


@pytest.fixture
def session(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.session.Session:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    reset(moto_endpoint)
    return boto3.session.Session(region_name=REGION)


def start(session: boto3.session.Session, endpoint: str) -> Provisioned:
    reset(endpoint)
    return provision_all(session, prefix=PREFIX, from_domain=DOMAIN)


def receive_all(session: boto3.session.Session, url: str) -> list[dict[str, Any]]:
    sqs = session.client("sqs")
    received: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        VisibilityTimeout=300,
    ).get("Messages", []):
        received.extend(batch)
    return received


def send_mail(session: boto3.session.Session, to: str, subject: str) -> str:
    raw = (
        f"From: info@{DOMAIN}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nこんにちは\r\n"
    )
    response = session.client("sesv2").send_email(
        FromEmailAddress=f"info@{DOMAIN}",
        Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": raw.encode()}},
    )
    return str(response["MessageId"])


def test_sent_mail_and_queued_messages_survive_a_restart(
    session: boto3.session.Session, moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a run that sent two emails and left messages in its queues
    first = start(session, moto_endpoint)
    mail_ids = [
        send_mail(session, "a@example.com", "ようこそ"),
        send_mail(session, "b@example.com", "資料のご案内"),
    ]
    sent_before = {m.id: m for m in sent_mails(moto_endpoint)}
    sqs = session.client("sqs")
    send_url = first.queue_urls[SEND_QUEUE.name]
    attributes: dict[str, Any] = {
        "lead_id": {"DataType": "String", "StringValue": "L-1"},
        "attempt": {"DataType": "Number", "StringValue": "2"},
        "token": {"DataType": "Binary", "BinaryValue": b"\x00\xffbin"},
    }
    for body in ("first", "second", "third"):
        sqs.send_message(QueueUrl=send_url, MessageBody=body, MessageAttributes=attributes)
    # one received and not deleted: in flight when the run stopped
    engagement_url = first.queue_urls[ENGAGEMENT_QUEUE.name]
    sqs.send_message(QueueUrl=engagement_url, MessageBody='{"eventType": "Open"}')
    assert receive_all(session, engagement_url)
    dlq_url = first.dead_letter_queue_urls[SEND_QUEUE.name]
    sqs.send_message(QueueUrl=dlq_url, MessageBody="gave up", DelaySeconds=60)
    session.client("sns").publish(
        TopicArn=first.topic_arns[SALES_TOPIC], Subject="MQL", Message='{"lead_id": "L-9"}'
    )
    dynamodb = session.client("dynamodb")
    dynamodb.put_item(
        TableName=first.table_name,
        Item={"pk": {"S": "LEAD#L-1"}, "sk": {"S": "PROFILE"}, "email": {"S": "a@example.com"}},
    )

    saved = state.save(tmp_path, session, first, timedelta(hours=5))
    assert (saved.items, saved.emails, saved.messages) == (1, 2, 6)
    assert not (tmp_path / f"{state.FILE}.tmp").exists()

    # When a fresh moto is provisioned and the state loaded
    second = start(session, moto_endpoint)
    assert sent_mails(moto_endpoint) == []
    offset = state.load(tmp_path, session, second)

    # Then the clock, the item, the emails with their ids and the messages are back
    assert offset == timedelta(hours=5)
    assert dynamodb.get_item(
        TableName=second.table_name, Key={"pk": {"S": "LEAD#L-1"}, "sk": {"S": "PROFILE"}}
    )["Item"]["email"] == {"S": "a@example.com"}
    restored = sent_mails(moto_endpoint)
    assert [m.id for m in restored] == mail_ids
    assert restored == [sent_before[i] for i in mail_ids]
    assert restored[1].subject == "資料のご案内"

    sends = receive_all(session, second.queue_urls[SEND_QUEUE.name])
    assert [m["Body"] for m in sends] == ["first", "second", "third"]
    assert all(m["MessageAttributes"] == attributes for m in sends)
    engagement = receive_all(session, second.queue_urls[ENGAGEMENT_QUEUE.name])
    assert [m["Body"] for m in engagement] == ['{"eventType": "Open"}']
    assert [
        m["Body"] for m in receive_all(session, second.dead_letter_queue_urls[SEND_QUEUE.name])
    ] == ["gave up"]
    (inbox,) = receive_all(session, second.sales_inbox_url)
    envelope = json.loads(inbox["Body"])
    assert envelope["Subject"] == "MQL"
    assert json.loads(envelope["Message"]) == {"lead_id": "L-9"}


def test_moto_internals_the_state_relies_on(
    session: boto3.session.Session, moto_endpoint: str
) -> None:
    """What ``state`` reads and writes directly, checked against the public views."""
    provisioned = start(session, moto_endpoint)
    url = provisioned.queue_urls[SEND_QUEUE.name]
    sqs = session.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="in flight")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)
    sqs.send_message(QueueUrl=url, MessageBody="waiting")
    name = url.rpartition("/")[2]
    assert [m["body"] for m in state.moto_queued_messages(REGION, name)] == [
        "in flight",
        "waiting",
    ]

    mail_id = send_mail(session, "c@example.com", "件名")
    assert [m["id"] for m in state.moto_sent_mail(REGION)] == [mail_id]
    put_back = {"id": "kept-id", "source": f"info@{DOMAIN}", "destinations": ["d@example.com"]}
    state.moto_restore_sent_mail(REGION, [{**put_back, "raw_data": "Subject: x\r\n\r\nbody"}])
    listed = sent_mails(moto_endpoint)  # what the console's outbox reads
    assert [m.id for m in listed] == [mail_id, "kept-id"]
    assert listed[1].destinations == ("d@example.com",)
    assert listed[1].subject == "x"


def test_a_file_from_before_the_version_key_loads(
    session: boto3.session.Session, moto_endpoint: str, tmp_path: Path
) -> None:
    provisioned = start(session, moto_endpoint)
    item = {"pk": {"S": "LEAD#L-2"}, "sk": {"S": "PROFILE"}}
    old = {"clock_offset_s": 86400.0, "items": [item]}
    (tmp_path / state.FILE).write_text(json.dumps(old), encoding="utf-8")

    assert state.load(tmp_path, session, provisioned) == timedelta(days=1)
    dynamodb = session.client("dynamodb")
    assert "Item" in dynamodb.get_item(TableName=provisioned.table_name, Key=item)
    assert sent_mails(moto_endpoint) == []
    assert receive_all(session, provisioned.sales_inbox_url) == []


def test_a_file_from_a_newer_version_is_refused(
    session: boto3.session.Session, moto_endpoint: str, tmp_path: Path
) -> None:
    provisioned = start(session, moto_endpoint)
    newer = {"version": state.VERSION + 1, "clock_offset_s": 0, "items": []}
    (tmp_path / state.FILE).write_text(json.dumps(newer), encoding="utf-8")

    with pytest.raises(ValueError, match="format version"):
        state.load(tmp_path, session, provisioned)


def test_messages_of_a_queue_no_longer_provisioned_are_dropped(
    session: boto3.session.Session,
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provisioned = start(session, moto_endpoint)
    saved = {
        "version": state.VERSION,
        "clock_offset_s": 0,
        "items": [],
        "sent_mail": [],
        "queues": {f"{PREFIX}-retired": [{"body": "lost"}]},
    }
    (tmp_path / state.FILE).write_text(json.dumps(saved), encoding="utf-8")

    assert state.load(tmp_path, session, provisioned) == timedelta(0)
    assert "retired" in caplog.text


def test_nothing_saved_yet_loads_nothing(
    session: boto3.session.Session, moto_endpoint: str, tmp_path: Path
) -> None:
    provisioned = start(session, moto_endpoint)
    assert state.load(tmp_path / "missing", session, provisioned) is None

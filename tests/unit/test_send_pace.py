"""The sender's pace of SES sends and its concurrent batch processing, on a fake clock."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.sender.handler import SenderSettings
from shared.adapters.batch import process_batch
from shared.adapters.ses import PacedMailer, SendPace
from shared.domain.email import OutgoingEmail


class FakeTime:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_sends_are_spaced_evenly_at_the_rate() -> None:
    time = FakeTime()
    pace = SendPace(4.0, clock=time.clock, sleep=time.sleep)

    waits = [pace.wait() for _ in range(5)]

    assert waits == [0.0, 0.25, 0.25, 0.25, 0.25]
    assert time.now == pytest.approx(101.0)


def test_a_send_after_a_quiet_spell_does_not_wait() -> None:
    time = FakeTime()
    pace = SendPace(2.0, clock=time.clock, sleep=time.sleep)
    pace.wait()
    time.now += 10  # nothing sent for ten seconds: no burst is owed, none is kept

    assert pace.wait() == 0.0
    assert pace.wait() == 0.5


def test_threads_share_one_pace() -> None:
    # Five threads asking at the same instant get five different slots.
    time = FakeTime()
    lock = threading.Lock()
    waits: list[float] = []
    pace = SendPace(10.0, clock=time.clock, sleep=lambda _: None)

    def send() -> None:
        waited = pace.wait()
        with lock:
            waits.append(waited)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_a_rate_of_zero_is_no_limit() -> None:
    time = FakeTime()
    pace = SendPace(0, clock=time.clock, sleep=time.sleep)

    assert [pace.wait() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert time.slept == []


def test_a_paced_mailer_waits_for_its_slot_before_each_send() -> None:
    time = FakeTime()
    sent: list[float] = []

    class Mailer:
        def send(self, email: OutgoingEmail) -> str:
            sent.append(time.now)
            return f"id-{len(sent)}"

    mailer = PacedMailer(Mailer(), SendPace(2.0, clock=time.clock, sleep=time.sleep))
    email: Any = object()

    assert [mailer.send(email) for _ in range(3)] == ["id-1", "id-2", "id-3"]
    assert sent == [100.0, 100.5, 101.0]


def test_sender_settings_default_to_four_jobs_at_once_and_seven_sends_a_second() -> None:
    env = {
        "TABLE_NAME": "t",
        "CONFIGURATION_SET": "c",
        "FROM_ADDRESS": "news@example.co.jp",
        "SENDER_COMPANY_NAME": "株式会社サンプル",
        "SENDER_PRODUCT_NAME": "Flowlane",
        "SENDER_POSTAL_ADDRESS": "東京都",
        "SENDER_CONTACT_EMAIL": "marketing@example.co.jp",
        "SITE_URL": "https://www.example.co.jp",
        "UNSUBSCRIBE_URL": "https://api.example.co.jp/v1/unsubscribe",
    }
    settings = SenderSettings.from_env(env)
    assert (settings.send_concurrency, settings.send_rate) == (4, 7.0)
    tuned = SenderSettings.from_env({**env, "SEND_CONCURRENCY": "10", "SEND_RATE": "0"})
    assert (tuned.send_concurrency, tuned.send_rate) == (10, 0.0)
    with pytest.raises(ValueError, match="send_concurrency"):
        SenderSettings.from_env({**env, "SEND_CONCURRENCY": "11"})  # a batch has 10
    with pytest.raises(ValueError, match="at least 1 per second"):
        SenderSettings.from_env({**env, "SEND_RATE": "0.2"})  # a batch would take 50 s


# -- concurrent batches -------------------------------------------------------------------


def sqs_batch(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-northeast-1:123456789012:send",
                "awsRegion": "ap-northeast-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_a_concurrent_batch_reports_each_failed_record_by_its_message_id() -> None:
    barrier = threading.Barrier(4, timeout=60)  # all four at once, or none

    def handle(record: Any) -> str:
        barrier.wait()
        if record.body.startswith("bad"):
            raise ValueError(record.body)
        return "ok"

    event = sqs_batch(["ok", "bad 1", "ok", "bad 2"])
    response = process_batch(event, None, handle, workers=4)  # type: ignore[arg-type]

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["m1", "m3"]


def test_a_concurrent_batch_that_fails_whole_fails_the_invocation() -> None:
    def handle(record: Any) -> str:
        raise ValueError(record.body)

    with pytest.raises(BatchProcessingError):
        process_batch(sqs_batch(["a", "b", "c"]), None, handle, workers=3)  # type: ignore[arg-type]


def test_only_a_standard_queue_is_handled_concurrently() -> None:
    with pytest.raises(ValueError, match="standard SQS"):
        process_batch({"Records": []}, None, str, EventType.DynamoDBStreams, workers=2)  # type: ignore[arg-type]

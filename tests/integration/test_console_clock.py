"""The console's clock form: move the local clock, run the schedules, come back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from infra.local.console import ConsoleConfig, LocalConsole
from shared.domain.clock import FixedClock, OffsetClock
from shared.domain.programs import load_programs

TOKYO = ZoneInfo("Asia/Tokyo")
# Friday 2026-11-20 19:00 JST: the welcome window (weekdays 09:00-18:00) has closed.
FRIDAY_EVENING = datetime(2026, 11, 20, 19, 0, tzinfo=TOKYO)


class Console:
    def __init__(self, start: datetime) -> None:
        self.clock = OffsetClock(source=FixedClock(start))
        self.ticks: list[datetime] = []
        self.app = LocalConsole(
            ConsoleConfig(
                origin="http://127.0.0.1:3000",
                api="http://127.0.0.1:3000/v1",
                moto="http://127.0.0.1:5000",
                table_name="unused",
                email_events_topic_arn="arn:aws:sns:ap-northeast-1:123456789012:unused",
                sales_inbox_url="http://127.0.0.1:5000/123456789012/unused",
                configuration_set="unused",
            ),
            self.clock,
            boto3.session.Session(region_name="ap-northeast-1"),
            tick=self.tick,
        )

    def tick(self) -> dict[str, Any]:
        self.ticks.append(self.clock.now())
        return {}

    def post(self, form: str) -> tuple[int, dict[str, str], str]:
        answer = self.app("POST", "/console/clock", form.encode())
        assert answer is not None
        status, headers, body = answer
        return status, dict(headers), body.decode()


@pytest.fixture
def console(aws: None) -> Console:
    return Console(FRIDAY_EVENING)


def test_a_day_forward_runs_the_schedules_at_the_new_time_and_goes_back(
    console: Console,
) -> None:
    status, headers, _ = console.post("by=P1D&back=%2Fconsole%2Foutbox%3Fx%3D1")
    assert status == 303
    assert headers["Location"] == "/console/outbox?x=1"
    assert console.clock.now() == FRIDAY_EVENING + timedelta(days=1)
    assert console.ticks == [FRIDAY_EVENING + timedelta(days=1)]


def test_to_sending_hours_skips_the_weekend_to_monday_morning(console: Console) -> None:
    status, _, _ = console.post("by=next-sending&back=%2Fconsole%2F")
    assert status == 303
    monday_nine = datetime(2026, 11, 23, 9, 0, tzinfo=TOKYO)
    # 2026-11-23 is 勤労感謝の日 (a public holiday): the window opens on Tuesday
    welcome = load_programs().get("welcome")
    assert welcome is not None
    assert not welcome.send_window.is_open_day(monday_nine.date())
    assert console.clock.now() == monday_nine + timedelta(days=1)
    assert len(console.ticks) == 1


def test_to_sending_hours_inside_them_stays_put(aws: None) -> None:
    inside = datetime(2026, 11, 24, 10, 30, tzinfo=TOKYO)
    console = Console(inside)
    console.post("by=next-sending&back=%2Fconsole%2F")
    assert console.clock.now() == inside
    assert console.ticks == [inside]  # the schedules still run


@pytest.mark.parametrize(
    "back",
    [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example%2F",
        "%2Fv1%2Fleads",
        "",
        "%2Fconsole%2F%0D%0ASet-Cookie%3A%20x%3D1",  # response splitting
        "%2Fconsole%2F%E3%83%AA%E3%83%BC%E3%83%89",  # not Latin-1: no header can hold it
    ],
)
def test_it_only_goes_back_into_the_console(console: Console, back: str) -> None:
    status, headers, _ = console.post(f"by=PT1H&back={back}")
    assert (status, headers["Location"]) == (303, "/console/")


@pytest.mark.parametrize("by", ["P1M", "-P1D", "soon", ""])
def test_a_bad_duration_is_a_page_not_a_move(console: Console, by: str) -> None:
    status, _, body = console.post(f"by={by}&back=%2Fconsole%2F")
    assert status == 400
    assert "時間の指定が不正です" in body
    assert console.clock.now() == FRIDAY_EVENING
    assert console.ticks == []


def test_every_page_carries_the_clock_form_back_to_itself(console: Console) -> None:
    answer = console.app("GET", "/console/site?from=test", b"")
    assert answer is not None
    html = answer[2].decode()
    assert 'action="/console/clock"' in html
    assert 'name="back" value="/console/site?from=test"' in html
    assert 'value="next-sending"' in html
    # and no other site may frame it (the clock and Bounce buttons would be clickjackable)
    headers = dict(answer[1])
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert headers["X-Frame-Options"] == "DENY"

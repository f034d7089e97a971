"""The console's funnel page on moto: stages from the ``stage`` counters, list health
from the ``list`` counters, over the last 90 Japanese days."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from infra.local.console import ConsoleConfig, LocalConsole
from shared.adapters.guard import DynamoSendingSwitch
from shared.adapters.items import counter_pk, serialize
from shared.domain.clock import FixedClock, OffsetClock
from tests.builders import DynamoCounters
from tests.integration.conftest import TABLE

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=TOKYO)


def console() -> LocalConsole:
    return LocalConsole(
        ConsoleConfig(
            origin="http://127.0.0.1:3000",
            api="http://127.0.0.1:3000/v1",
            moto="http://127.0.0.1:5000",
            table_name=TABLE,
            email_events_topic_arn="arn:aws:sns:ap-northeast-1:123456789012:unused",
            sales_inbox_url="http://127.0.0.1:5000/123456789012/unused",
            configuration_set="unused",
        ),
        OffsetClock(source=FixedClock(NOW)),
        boto3.session.Session(region_name="ap-northeast-1"),
        tick=dict,
    )


def rows(page: str, table_id: str) -> list[list[str]]:
    """The cells of a table's rows as text (tags dropped, spaces collapsed)."""
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert match is not None, table_id
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if cells:
            found.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return found


def test_the_funnel_page_shows_list_health_next_to_undisturbed_stages(dynamodb: Any) -> None:
    # Given counters today and two months ago (beyond one BatchGetItem's 100 keys), and
    # one from before the page's 90 days
    store = DynamoCounters(dynamodb, TABLE)
    today, earlier, too_old = (
        NOW.date(),
        NOW.date() - timedelta(days=60),
        NOW.date() - timedelta(days=90),
    )
    for day, name, by in [
        (today, "new>lead", 10),
        (earlier, "new>lead", 30),
        (today, "lead>mql", 4),
        (today, "lead>dormant", 5),
        (earlier, "dormant>lead", 2),
        (too_old, "new>lead", 1000),
    ]:
        store.count(day, "stage", name, by)
    for day, name, by in [
        (today, "unsubscribed", 3),
        (earlier, "unsubscribed", 1),
        (today, "suppressed:bounce", 2),
        (earlier, "suppressed:complaint", 1),
        (today, "sunset:dormant", 1),
        (earlier, "sunset:lost", 1),
        (too_old, "unsubscribed", 1000),
    ]:
        store.count(day, "list", name, by)

    # When the funnel page is opened
    answer = console()("GET", "/console/funnel", b"")

    # Then the stages count new leads only, as before
    assert answer is not None
    status, _, body = answer
    assert status == 200
    page = body.decode()
    stages = rows(page, "funnel")
    assert stages[0][:2] == ["リード Leads", "40"]
    assert stages[1][:3] == ["MQL Marketing qualified", "4", "10.0%"]
    # and the list health, Japanese first, counts every way off the list
    assert rows(page, "list-health") == [
        ["配信停止（本人の申し出） Unsubscribed", "4"],
        ["配信除外（バウンス） Suppressed: bounce", "2"],
        ["配信除外（苦情） Suppressed: complaint", "1"],
        ["配信除外（SES が拒否） Suppressed: rejected by SES", "0"],
        ["配信終了（掘り起こしに無反応） Sunset: re-engagement unanswered", "2"],
    ]
    # and the transitions list has the dormancy ones but no list-health names
    assert "<code>lead&gt;dormant</code>" in page
    assert "<code>dormant&gt;lead</code>" in page
    assert "<code>unsubscribed</code>" not in page


def test_the_funnel_page_adds_up_every_shard_of_a_counter(dynamodb: Any) -> None:
    # Given today's new leads counted in three shards and in an unsharded item (as
    # counters were kept before they were sharded)
    store = DynamoCounters(dynamodb, TABLE)
    for by in (1, 2, 4):
        store.count(NOW.date(), "stage", "new>lead", by)
    dynamodb.update_item(
        TableName=TABLE,
        Key=serialize({"pk": counter_pk(NOW.date()), "sk": "stage"}),
        UpdateExpression="ADD #m :by",
        ExpressionAttributeNames={"#m": "new>lead"},
        ExpressionAttributeValues=serialize({":by": 8}),
    )

    answer = console()("GET", "/console/funnel", b"")

    assert answer is not None
    assert rows(answer[2].decode(), "funnel")[0][:2] == ["リード Leads", "15"]


def test_the_funnel_page_shows_the_weekly_trend_and_the_reports_tables(dynamodb: Any) -> None:
    # Given leads this week and three weeks ago, by source, and an email's sends
    store = DynamoCounters(dynamodb, TABLE)
    monday = NOW.date() - timedelta(days=NOW.weekday())
    for day, key, metric, by in [
        (NOW.date(), "stage", "new>lead", 12),
        (NOW.date(), "stage", "lead>mql", 3),
        (monday - timedelta(days=21), "stage", "new>lead", 6),
        (NOW.date(), "source#expo-2026", "new>lead", 12),
        (NOW.date(), "email#welcome#welcome#A", "sent", 40),
    ]:
        store.count(day, key, metric, by)

    answer = console()("GET", "/console/funnel", b"")

    assert answer is not None
    page = answer[2].decode()
    # one pair of bars per week of the period, this week's the tallest
    weeks = re.findall(r'<rect class="leads"[^>]*height="([\d.]+)"[^>]*><title>(\S+) ', page)
    assert len(weeks) in (13, 14)
    heights = {monday_iso: float(h) for h, monday_iso in weeks}
    assert heights[monday.isoformat()] == 170.0
    assert heights[(monday - timedelta(days=21)).isoformat()] == 85.0
    # and the CLI report's tables, Japanese titles first, with the same cells
    assert "流入元別のファネル <small>Funnel by source" in page
    source_rows = re.search(r'<table id="report-by_source">(.*?)</table>', page, re.S)
    assert source_rows is not None
    assert re.sub(r"<[^>]+>", " ", source_rows.group(1)).split()[-9:] == [
        "expo-2026", "12", "0", "0", "0", "0.0%", "-", "-", "¥0",
    ]  # fmt: skip
    emails = re.search(r'<table id="report-emails">(.*?)</table>', page, re.S)
    assert emails is not None
    assert ">welcome<" in emails.group(1)
    assert ">40<" in emails.group(1)


def test_every_page_shows_a_banner_while_the_guard_has_paused_sending(dynamodb: Any) -> None:
    page = console()("GET", "/console/funnel", b"")
    assert page is not None
    assert 'id="sending-paused"' not in page[2].decode()

    DynamoSendingSwitch(dynamodb, TABLE).pause("bounce rate 4.00% of 600 sends", NOW, "guard")

    for path in ("/console/funnel", "/console/"):
        answer = console()("GET", path, b"")
        assert answer is not None
        body = answer[2].decode()
        assert 'id="sending-paused"' in body
        assert "配信停止中" in body
        assert "bounce rate 4.00% of 600 sends" in body
        assert "lead-nurture sending resume" in body

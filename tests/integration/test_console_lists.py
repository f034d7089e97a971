"""The console's lead list and outbox, a page at a time and searchable, read as the
local stack reads them: lead profiles from moto's table in this process."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from infra.local import state
from infra.local.console import ConsoleConfig, LocalConsole
from infra.local.console.app import PAGE_SIZE
from infra.local.console.mail import SendInfo, SentMail
from shared.adapters.items import deserialize, serialize
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import FixedClock, OffsetClock
from shared.domain.leads import FormType, Lead, Touch, new_id
from tests.builders import store
from tests.integration.conftest import TABLE

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=TOKYO)


def console(profiles: Any = None, outbox: Any = None) -> LocalConsole:
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
        profiles=profiles,
        outbox=outbox,
        sent_info=lambda mail_id: SendInfo(None, NOW, {"step": mail_id}),
    )


def page(app: LocalConsole, target: str) -> str:
    answer = app("GET", target, b"")
    assert answer is not None
    status, _, body = answer
    assert status == 200
    return body.decode()


def listed(html: str, table_id: str) -> list[str]:
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    return re.findall(r'href="[^"]*/(?:leads|outbox)/([^"/]+)"', match.group(1)) if match else []


def stored_leads(dynamodb: Any, count: int) -> list[Lead]:
    """``count`` leads, the first updated last, each with an activity beside its profile."""
    repository = DynamoLeadRepository(dynamodb, TABLE)
    touch = Touch(at=NOW - timedelta(days=1), form_type=FormType.DOWNLOAD)
    leads = []
    for n in range(count):
        lead = Lead(
            lead_id=new_id(),
            email=f"user{n:03d}@example.co.jp",
            company="東洋精機株式会社" if n % 10 == 0 else "サンプル商事",
            first_touch=touch,
            last_touch=touch,
            created_at=NOW - timedelta(days=1),
            updated_at=NOW - timedelta(minutes=n),
        )
        store(repository, lead)
        dynamodb.put_item(  # not a lead
            TableName=TABLE,
            Item=serialize({"pk": f"LEAD#{lead.lead_id}", "sk": "ACT#x", "entity": "activity"}),
        )
        leads.append(lead)
    return leads


def test_profiles_are_read_from_the_table_in_process_and_only_profiles(dynamodb: Any) -> None:
    leads = stored_leads(dynamodb, 3)
    found = state.moto_lead_profiles(TABLE, "ap-northeast-1")
    assert sorted(Lead.model_validate(deserialize(item)).lead_id for item in found) == sorted(
        lead.lead_id for lead in leads
    )


def test_the_lead_list_pages_newest_first_and_finds_a_company(dynamodb: Any) -> None:
    leads = stored_leads(dynamodb, PAGE_SIZE + 7)
    profiles = [
        Lead.model_validate(deserialize(i))
        for i in state.moto_lead_profiles(TABLE, "ap-northeast-1")
    ]
    app = console(profiles=lambda: profiles)

    first = page(app, "/console/leads")
    assert listed(first, "leads") == [lead.lead_id for lead in leads[:PAGE_SIZE]]
    assert "1 / 2" in first
    assert 'rel="next"' in first
    second = page(app, "/console/leads?page=2")
    assert listed(second, "leads") == [lead.lead_id for lead in leads[PAGE_SIZE:]]
    assert 'rel="prev"' in second
    assert 'rel="next"' not in second
    # a page past the end shows the last one
    assert listed(page(app, "/console/leads?page=99"), "leads") == listed(second, "leads")

    # any case, a part of the company's name
    found = page(app, "/console/leads?q=%E6%9D%B1%E6%B4%8B")  # 東洋
    assert listed(found, "leads") == [
        lead.lead_id for lead in leads if lead.company == "東洋精機株式会社"
    ]
    assert listed(page(app, "/console/leads?q=USER001%40"), "leads") == [leads[1].lead_id]
    assert "当てはまるリードはありません" in page(app, "/console/leads?q=nobody")


def test_the_outbox_pages_newest_first_and_finds_an_address(dynamodb: Any) -> None:
    mails = [
        SentMail(f"m{n:03d}", "news@example.co.jp", (f"to{n:03d}@example.co.jp",), raw="")
        for n in range(PAGE_SIZE + 3)
    ]
    app = console(outbox=lambda: mails)
    newest = [mail.id for mail in reversed(mails)]
    assert listed(page(app, "/console/outbox"), "outbox") == newest[:PAGE_SIZE]
    assert listed(page(app, "/console/outbox?page=2"), "outbox") == newest[PAGE_SIZE:]
    assert listed(page(app, "/console/outbox?q=TO007"), "outbox") == ["m007"]


def test_an_email_whose_body_is_no_longer_kept_is_listed_and_says_so(dynamodb: Any) -> None:
    headers = "From: news@example.co.jp\r\nTo: old@example.co.jp\r\nSubject: 古いお知らせ\r\n\r\n"
    whole = SentMail("new", "news@example.co.jp", ("new@example.co.jp",), raw=headers + "本文")
    old = SentMail("old", "news@example.co.jp", ("old@example.co.jp",), headers, body_kept=False)
    app = console(outbox=lambda: [old, whole])

    outbox = page(app, "/console/outbox")
    assert listed(outbox, "outbox") == ["new", "old"]
    assert outbox.count("body not kept") == 1
    shown = page(app, "/console/outbox/old?track=0")
    assert "古いお知らせ" in shown
    assert 'id="body-dropped"' in shown
    assert 'id="body-dropped"' not in page(app, "/console/outbox/new?track=0")


def test_a_customers_page_shows_its_segment_scores_and_purchases(dynamodb: Any) -> None:
    from shared.domain.customers import Purchase, load_customers
    from shared.domain.programs import load_programs
    from shared.services.purchases import PurchaseBook

    repository = DynamoLeadRepository(dynamodb, TABLE)
    touch = Touch(at=NOW - timedelta(days=1), form_type=FormType.INQUIRY)
    leads = [
        Lead(
            lead_id=new_id(),
            email=f"buyer{n}@example.co.jp",
            first_touch=touch,
            last_touch=touch,
            created_at=touch.at,
            updated_at=touch.at,
        )
        for n in range(2)
    ]
    for lead in leads:
        store(repository, lead)
    book = PurchaseBook(repository, load_programs(), load_customers(), FixedClock(NOW))
    book.record(leads[0].lead_id, Purchase(date=NOW.date(), amount=1_200_000, product="standard"))

    html = page(console(), f"/console/leads/{leads[0].lead_id}")

    assert '<strong id="segment">新規顧客 / New</strong>' in html
    assert "R5 F1 M4" in html
    assert "¥1,200,000" in html
    assert "購入 <small>Purchased</small>" in html  # on the timeline, by its name
    # and a lead without purchases shows no customer rank
    assert 'id="customer"' not in page(console(), f"/console/leads/{leads[1].lead_id}")

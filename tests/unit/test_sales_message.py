"""The message sales receive for a lead imported from a business card (pure): every
contact detail the card gave, whose card it was, and when it was exchanged."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from shared.domain.leads import FormType, Lead, Stage, Touch
from shared.domain.scoring import Grade, LeadScore, Temperature
from shared.services.handoff import PROFILE_LABELS, build_sales_message

EXCHANGED = datetime(2026, 10, 14, 15, 0, tzinfo=UTC)  # 2026-10-15 00:00 in Japan
IMPORTED = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
QUALIFIED = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def card_lead(**profile: str) -> Lead:
    return Lead(
        lead_id="0f8e1c2d3b4a59687766554433221100",
        email="taro.yamada@sample-ss.co.jp",
        stage=Stage.MQL,
        first_touch=Touch(at=EXCHANGED, form_type=FormType.CONTACT, source="expo-2026"),
        last_touch=Touch(at=IMPORTED, form_type=FormType.CONTACT, source="expo-2026"),
        qualified_at=QUALIFIED,
        created_at=IMPORTED,
        updated_at=QUALIFIED,
        **profile,
    )


CARD = {
    "company": "株式会社サンプル製作所",
    "name": "山田 太郎",
    "family_name": "山田",
    "given_name": "太郎",
    "name_kana": "ヤマダ タロウ",
    "department": "情報システム部",
    "job_title": "部長",
    "phone": "06-1234-5678",
    "phone_normalized": "+81612345678",
    "phone_department": "06-1234-5601",
    "phone_direct": "06-1234-5600",
    "mobile": "090-1234-5678",
    "postcode": "530-0001",
    "prefecture": "大阪府",
    "address": "大阪府大阪市北区梅田1-1-1 梅田ビル10F",
    "website": "https://www.sample-ss.co.jp/",
    "sales_owner": "佐藤 健一",
}
SCORE = LeadScore(score=72.0, grade=Grade.A, fit=())


def test_sales_read_every_contact_detail_of_the_card_and_whose_card_it_was() -> None:
    message = build_sales_message(card_lead(**CARD), SCORE, Temperature.HOT, [])

    text = json.loads(message.message)["email"]
    for line in (
        "フリガナ: ヤマダ タロウ",
        "電話: 06-1234-5678",
        "部署電話: 06-1234-5601",
        "直通電話: 06-1234-5600",
        "携帯電話: 090-1234-5678",
        "郵便番号: 530-0001",
        "都道府県: 大阪府",
        "住所: 大阪府大阪市北区梅田1-1-1 梅田ビル10F",
        # the site named, not linked: the email to sales has nothing to click
        "Webサイト: hxxps[:]//www[.]sample-ss.co.jp/",
        "営業担当: 佐藤 健一",
        # the card's exchange date, in Japan, is where the lead began
        "初回接点: 2026-10-15 00:00  contact expo-2026",
    ):
        assert line in text.splitlines()
    assert not re.search(r"https?:|www\.", text, re.IGNORECASE)


def test_machines_get_every_profile_field_and_may_route_by_sales_owner() -> None:
    message = build_sales_message(card_lead(**CARD), SCORE, Temperature.HOT, [])

    document = json.loads(json.loads(message.message)["sqs"])
    assert document["profile"] == {
        **{key: CARD.get(key) for key, _ in PROFILE_LABELS if key != "email"},
        "email": "taro.yamada@sample-ss.co.jp",
        "interests": [],
    }
    assert document["first_touch"]["at"] == "2026-10-14T15:00:00Z"
    assert message.attributes["sales_owner"] == {"DataType": "String", "StringValue": "佐藤 健一"}


def test_a_lead_from_a_web_form_shows_blank_details_as_dashes() -> None:
    message = build_sales_message(
        card_lead(company="株式会社サンプル"), SCORE, Temperature.WARM, []
    )

    lines = json.loads(message.message)["email"].splitlines()
    assert {"住所: -", "携帯電話: -", "営業担当: -"} <= set(lines)
    assert "sales_owner" not in message.attributes

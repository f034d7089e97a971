"""POST /leads through the real handler, with real-shaped API Gateway events, against moto."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from shared.adapters.items import DUE_INDEX, due_shard
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import FixedClock, to_iso
from shared.domain.leads import ActivityType, FormType, Lead
from shared.domain.programs import load_programs
from shared.ports import MAX_REVISIONS, POST_REVISIONS
from shared.services.capture import CaptureConflict, CaptureResult, LeadCapture, RequestInfo
from shared.web.submission import parse_submission
from tests.emf import metric_counts
from tests.events import BOUNDARY, form_post, json_post, multipart_body, multipart_post, rest_event
from tests.integration.conftest import SITE, TABLE, all_items
from tests.legacy_forms import LEGACY_FORMS, SHIFT_JIS, TYPED

Post = Callable[[dict[str, Any]], dict[str, Any]]

EMAIL = "Taro.Yamada@example.co.jp"
THANKS = f"{SITE}/thanks?form=dx-guide"
ERROR = f"{SITE}/form-error"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0"
ACCEPT_JSON = {"Accept": "application/json"}
URLENCODED = "application/x-www-form-urlencoded"


def header(response: dict[str, Any], name: str) -> str | None:
    headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): [v] for k, v in (response.get("headers") or {}).items()})
    values = headers.get(name.lower())
    return ", ".join(values) if values else None


def body_of(response: dict[str, Any]) -> Any:
    assert header(response, "Content-Type") == "application/json; charset=utf-8"
    return json.loads(response["body"])


def assert_no_json_or_traceback(page: str) -> None:
    for json_or_traceback in ('{"', '"code":', "message_en", "Traceback", 'File "'):
        assert json_or_traceback not in page


def entities(dynamodb: Any) -> Counter[str]:
    # Report counters carry only their metrics.
    return Counter(item.get("entity", {"S": "counter"})["S"] for item in all_items(dynamodb))


def due_leads(dynamodb: Any, lead_id: str) -> dict[str, str]:
    """lead_id -> due_at for the leads in the lead's shard of the sparse due index."""
    response = dynamodb.query(
        TableName=TABLE,
        IndexName=DUE_INDEX,
        KeyConditionExpression="due_shard = :shard",
        ExpressionAttributeValues={":shard": {"N": str(due_shard(lead_id))}},
    )
    return {item["lead_id"]["S"]: item["due_at"]["S"] for item in response["Items"]}


def stored(repository: DynamoLeadRepository, email: str = EMAIL) -> Lead:
    lead = repository.find_by_email(email)
    assert lead is not None, f"no lead stored for {email}"
    return lead


DOWNLOAD_FORM: dict[str, str | list[str]] = {
    "email": "Taro.Yamada@EXAMPLE.CO.JP",
    "last_name": "山田",
    "first_name": "太郎",
    "company": "ＡＢＣ株式会社",
    "department": " 情報システム部 ",
    "tel": "０３－１２３４－５６７８",
    "pref": "東京",
    "interests": ["AI", "IoT、クラウド"],
    "form_type": "download",
    "whitepaper": "dx-guide-2026.pdf",
    "consent": "on",
    "utm_source": "google",
    "utm_campaign": "dx-autumn",
    "thanks_url": THANKS,
    "favourite_colour": "blue",
}


def assert_download_form_stored(lead: Lead) -> None:
    assert lead.email == "Taro.Yamada@example.co.jp"
    assert (lead.family_name, lead.given_name, lead.name) == ("山田", "太郎", "山田 太郎")
    assert (lead.company, lead.department) == ("ABC株式会社", "情報システム部")
    assert (lead.phone, lead.phone_normalized) == ("03-1234-5678", "+81312345678")
    assert lead.prefecture == "東京都"
    assert lead.interests == ("AI", "IoT", "クラウド")
    assert lead.consent.opted_in
    assert (lead.first_touch.utm_source, lead.first_touch.utm_campaign) == ("google", "dx-autumn")


# -- the happy paths ---------------------------------------------------------------------------


def test_an_html_form_post_is_redirected_to_the_thank_you_page_and_the_lead_stored(
    post: Post, repository: DynamoLeadRepository, dynamodb: Any
) -> None:
    # Given a browser posting the download form with an allow-listed thank-you page
    event = form_post(DOWNLOAD_FORM, headers={"Referer": f"{SITE}/dl/dx-guide"})

    # When it is posted
    response = post(event)

    # Then the browser is sent to the thank-you page
    assert response["statusCode"] == 303
    assert header(response, "Location") == THANKS
    # and the lead is stored normalised, without the fields no form has
    lead = stored(repository)
    assert_download_form_stored(lead)
    assert lead.first_touch.referrer == f"{SITE}/dl/dx-guide"
    profile = next(i for i in all_items(dynamodb) if i.get("entity", {}).get("S") == "lead")
    assert not {"favourite_colour", "thanks_url"} & set(profile)


@pytest.mark.parametrize(
    "thanks_url",
    [
        pytest.param("https://evil.example.com/thanks", id="other origin"),
        pytest.param("//evil.example.com/thanks", id="protocol relative"),
        pytest.param(f"{SITE}@evil.example.com/", id="userinfo"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param(None, id="none"),
    ],
)
def test_a_thank_you_page_off_the_allow_list_gets_a_japanese_confirmation_page_instead(
    post: Post, repository: DynamoLeadRepository, thanks_url: str | None
) -> None:
    # Given a form whose thank-you page is not on the allow-list
    form = {k: v for k, v in DOWNLOAD_FORM.items() if k != "thanks_url"}
    if thanks_url:
        form["thanks_url"] = thanks_url

    # When it is posted
    response = post(form_post(form))

    # Then the visitor sees a small Japanese confirmation page and is never redirected
    assert response["statusCode"] == 200
    assert header(response, "Location") is None
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    assert '<html lang="ja">' in response["body"]
    assert "お問い合わせありがとうございます" in response["body"]
    assert "evil" not in response["body"]
    # and the lead is stored all the same
    assert stored(repository).email == EMAIL


def test_fetch_with_form_data_gets_201_json_with_the_lead_id(
    post: Post, repository: DynamoLeadRepository
) -> None:
    # Given a script posting FormData (multipart, base64-encoded by API Gateway) for JSON
    event = multipart_post(DOWNLOAD_FORM)
    assert event["isBase64Encoded"]

    # When it is posted
    response = post(event)

    # Then it gets 201 with the new lead's id
    assert response["statusCode"] == 201
    assert body_of(response) == {"lead_id": stored(repository).lead_id, "status": "created"}
    assert_download_form_stored(stored(repository))


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(form_post(DOWNLOAD_FORM, headers=ACCEPT_JSON), id="urlencoded"),
        pytest.param(
            form_post(DOWNLOAD_FORM, headers=ACCEPT_JSON, base64_encoded=True),
            id="urlencoded base64",
        ),
        pytest.param(multipart_post(DOWNLOAD_FORM), id="multipart base64"),
        pytest.param(
            rest_event(
                "POST",
                "/leads",
                body=multipart_body(DOWNLOAD_FORM),
                headers={
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    **ACCEPT_JSON,
                },
            ),
            id="multipart text",
        ),
        pytest.param(json_post(DOWNLOAD_FORM), id="json"),
        pytest.param(
            rest_event(
                "POST",
                "/leads",
                body=json.dumps(DOWNLOAD_FORM),
                headers={"Content-Type": "application/json"},
                base64_encoded=True,
            ),
            id="json base64",
        ),
    ],
)
def test_every_encoding_stores_the_same_lead(
    post: Post, repository: DynamoLeadRepository, event: dict[str, Any]
) -> None:
    response = post(event)

    assert response["statusCode"] == 201
    assert body_of(response)["lead_id"] == stored(repository).lead_id
    assert_download_form_stored(stored(repository))


def test_a_second_post_by_the_same_address_updates_the_same_lead(
    post: Post, repository: DynamoLeadRepository, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a lead created by a JSON post
    first = post(
        json_post(
            {
                "email": EMAIL,
                "company": "旧社名株式会社",
                "phone": "03-1234-5678",
                "interests": ["AI"],
                "utm_source": "google",
            }
        )
    )
    assert first["statusCode"] == 201
    created = {("capture", "FormPosts"): 1, ("capture", "LeadsCreated"): 1}
    assert metric_counts(capsys.readouterr().out) == created

    # When the same person posts again, typing the address in another case
    second = post(
        json_post(
            {
                "email": EMAIL.upper().replace("EXAMPLE.CO.JP", "Example.co.jp"),
                "company": "新社名株式会社",
                "phone": "",
                "interests": ["IoT"],
                "utm_source": "newsletter",
            }
        )
    )

    # Then the same lead is updated: 200, same id, a form post but no new lead counted
    assert second["statusCode"] == 200
    assert body_of(second) == {"lead_id": body_of(first)["lead_id"], "status": "updated"}
    assert metric_counts(capsys.readouterr().out) == {("capture", "FormPosts"): 1}
    lead = stored(repository)
    assert (lead.company, lead.phone, lead.interests) == (
        "新社名株式会社",
        "03-1234-5678",
        ("AI", "IoT"),
    )
    assert (lead.first_touch.utm_source, lead.last_touch.utm_source) == ("google", "newsletter")
    assert (lead.email, lead.version) == (EMAIL, 2)
    # and there is one profile and one email claim, not two
    counts = entities(dynamodb)
    assert (counts["lead"], counts["email"]) == (1, 1)


def test_every_post_records_a_form_activity_and_consent_evidence(
    post: Post, repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    # Given a download with consent from one browser, then an inquiry without from another
    post(form_post(DOWNLOAD_FORM, source_ip="198.51.100.7", headers={"User-Agent": BROWSER}))
    downloaded_at = clock.now()
    clock.advance(timedelta(hours=2))
    post(
        json_post(
            {
                "email": EMAIL,
                "form_type": "inquiry",
                "consent_version": "2026-11-lp",
                "source": "partner",
            },
            source_ip="192.0.2.44",
        )
    )

    # Then the timeline has both posts with their form type, asset and source
    lead = stored(repository)
    posts = [a for a in repository.timeline(lead.lead_id) if a.type is ActivityType.FORM_SUBMITTED]
    assert [
        (a.details["form_type"], a.details.get("asset"), a.details.get("source")) for a in posts
    ] == [
        ("inquiry", None, "partner"),
        ("download", "dx-guide-2026.pdf", None),
    ]
    # and one consent record per post: when, which form, which wording, IP and user agent
    consents = repository.consents(lead.lead_id)
    assert [(c.given, c.form_type, c.wording_version, c.ip) for c in consents] == [
        (False, FormType.INQUIRY, "2026-11-lp", "192.0.2.44"),
        (True, FormType.DOWNLOAD, "2026-01", "198.51.100.7"),
    ]
    assert consents[1].user_agent == BROWSER
    assert (consents[0].user_agent or "").startswith("Mozilla/5.0 (Macintosh")
    assert [c.at for c in consents] == [a.at for a in posts] == [clock.now(), downloaded_at]


def test_a_new_consenting_lead_is_enrolled_in_welcome_and_due_now(
    post: Post, repository: DynamoLeadRepository, dynamodb: Any, clock: FixedClock
) -> None:
    # When a new lead downloads with consent
    post(multipart_post(DOWNLOAD_FORM))

    # Then it follows the welcome program, due now, and the scheduler's index finds it
    lead = stored(repository)
    assert lead.enrolment is not None
    assert (lead.enrolment.program_id, lead.enrolment.due_at) == ("welcome", clock.now())
    assert due_leads(dynamodb, lead.lead_id) == {lead.lead_id: to_iso(clock.now())}
    assert ActivityType.ENROLLED in {a.type for a in repository.timeline(lead.lead_id)}


def test_a_lead_without_consent_is_not_enrolled_nor_in_the_due_index(
    post: Post, repository: DynamoLeadRepository, dynamodb: Any
) -> None:
    post(json_post({"email": EMAIL, "form_type": "inquiry", "message": "見積もり希望"}))

    lead = stored(repository)
    assert lead.enrolment is None
    assert lead.lead_id not in due_leads(dynamodb, lead.lead_id)


# -- forms from legacy Japanese pages ------------------------------------------------------

LEGACY_EMAIL = TYPED["email"]
# ISO-2022-JP has no half-width katakana: the browser sent ク and a spacing ゛ for ｸﾞ,
# which NFKC leaves apart.
STORED_DEPARTMENT = {
    "Shift_JIS": "マーケティング部",
    "EUC-JP": "マーケティング部",
    "ISO-2022-JP": "マーケティンク ゙部",
}


def browser_post(body: bytes, content_type: str) -> dict[str, Any]:
    """A form post from a browser as API Gateway passes it on: the form media types are
    binary media types of the API, so the body arrives in base64, byte for byte."""
    headers = {"Content-Type": content_type, "Accept": "text/html,application/xhtml+xml"}
    return rest_event("POST", "/leads", body=body, headers=headers, base64_encoded=True)


LEGACY_POSTS = [
    pytest.param(browser_post(form.urlencoded, URLENCODED), form.encoding, id=form.encoding)
    for form in LEGACY_FORMS
] + [
    pytest.param(
        browser_post(form.multipart, form.multipart_type),
        form.encoding,
        id=f"{form.encoding} multipart",
    )
    for form in LEGACY_FORMS
]


@pytest.mark.parametrize(("event", "encoding"), LEGACY_POSTS)
def test_a_form_from_a_legacy_japanese_page_stores_its_japanese_exactly(
    post: Post, repository: DynamoLeadRepository, event: dict[str, Any], encoding: str
) -> None:
    # Given 髙橋 一郎 of 株式会社山﨑製作所 posting from a page in a legacy encoding
    # When the form is posted
    response = post(event)

    # Then the browser gets the thank-you page
    assert response["statusCode"] == 200
    assert "お問い合わせありがとうございます" in response["body"]
    # and the lead is stored as typed (single and multi-line fields NFKC-normalised)
    lead = stored(repository, LEGACY_EMAIL)
    assert (lead.family_name, lead.given_name, lead.name) == ("髙橋", "一郎", "髙橋 一郎")
    assert lead.company == "株式会社山﨑製作所"
    assert lead.department == STORED_DEPARTMENT[encoding]
    assert lead.message == "1の資料を希望します~"  # ① and ～ folded, as from any page


def sjis_form(*pairs: tuple[str, str]) -> bytes:
    """A Shift_JIS page's form as the browser encodes it: names and values in the page's
    encoding (Windows-31J, as browsers read the label: 髙 and 﨑 are in it), percent-encoded,
    with the ``_charset_`` field the page asked for."""
    return "&".join(
        f"{quote_plus(name, encoding='cp932')}={quote_plus(value, encoding='cp932')}"
        for name, value in [("_charset_", "Shift_JIS"), *pairs]
    ).encode("ascii")


def test_a_form_that_names_its_fields_in_japanese_is_read_by_those_names(
    post: Post, repository: DynamoLeadRepository
) -> None:
    # Given a mail form of a Japanese site, its fields named as its labels, the phone
    # number in three boxes and the address typed twice
    body = sjis_form(
        ("会社名", "株式会社山﨑製作所"),
        ("お名前", "髙橋 一郎"),
        ("メールアドレス", LEGACY_EMAIL),
        ("メールアドレス（確認用）", LEGACY_EMAIL),
        ("電話番号1", "06"),
        ("電話番号2", "6123"),
        ("電話番号3", "4567"),
        ("お問い合わせ内容", "見積もりをお願いします。"),
    )

    # When it is posted
    response = post(browser_post(body, URLENCODED))

    # Then the visitor is thanked and the lead stored with what each field holds
    assert response["statusCode"] == 200
    assert "お問い合わせありがとうございます" in response["body"]
    lead = stored(repository, LEGACY_EMAIL)
    assert (lead.company, lead.name) == ("株式会社山﨑製作所", "髙橋 一郎")
    assert (lead.phone, lead.phone_normalized) == ("06-6123-4567", "+81661234567")
    assert lead.message == "見積もりをお願いします。"


def test_an_address_typed_differently_the_second_time_is_shown_back_and_not_stored(
    post: Post, dynamodb: Any
) -> None:
    body = sjis_form(
        ("お名前", "髙橋 一郎"),
        ("メールアドレス", LEGACY_EMAIL),
        ("メールアドレス（確認用）", "takahashi@yamazaki-ss.co.jp"),
    )

    response = post(browser_post(body, URLENCODED))

    assert response["statusCode"] == 422
    assert "メールアドレス（確認用）" in response["body"]
    assert "確認用のメールアドレスが一致しません。" in response["body"]
    assert_no_json_or_traceback(response["body"])
    assert all_items(dynamodb) == []


def test_a_script_naming_shift_jis_on_the_content_type_gets_json_and_the_lead_stored(
    post: Post, repository: DynamoLeadRepository
) -> None:
    # Given a script that posts a Shift_JIS page's fields and says so on the Content-Type
    body = SHIFT_JIS.urlencoded.replace(b"_charset_=Shift_JIS&", b"")
    event = plain_event(body, f"{URLENCODED}; charset=Shift_JIS", base64_encoded=True)

    response = post(event)

    assert response["statusCode"] == 201
    lead = stored(repository, LEGACY_EMAIL)
    assert body_of(response) == {"lead_id": lead.lead_id, "status": "created"}
    assert (lead.name, lead.company) == ("髙橋 一郎", "株式会社山﨑製作所")


def test_a_legacy_form_with_one_invalid_byte_stores_nothing_and_says_which_field(
    post: Post, dynamodb: Any
) -> None:
    # Given the Shift_JIS form with its company cut after a lead byte
    body = SHIFT_JIS.urlencoded.replace(b"%8A%94%8E%AE", b"%8A")
    event = plain_event(body, URLENCODED, base64_encoded=True)

    response = post(event)

    assert response["statusCode"] == 400
    assert body_of(response)["errors"] == [
        {
            "field": "company",
            "code": "invalid_encoding",
            "message": "送信内容に、文字コードとして正しくない文字が含まれていました。",
            "message_en": "The submission has bytes that are not valid in its character encoding.",
        }
    ]
    assert all_items(dynamodb) == []


# -- spam and abuse ------------------------------------------------------------------------


HONEYPOT_CASES = [
    pytest.param(form_post, 303, id="html form"),
    pytest.param(multipart_post, 201, id="fetch FormData"),
    pytest.param(
        json_post,
        201,
        id="json",
    ),
]


@pytest.mark.parametrize(("make_event", "status"), HONEYPOT_CASES)
@pytest.mark.parametrize(
    "homepage",
    [
        pytest.param("https://spam.example/", id="filled"),
        # the field twice, the first left blank: a bot that appends its own
        pytest.param(["", "https://spam.example/"], id="filled second"),
    ],
)
def test_a_filled_honeypot_gets_the_normal_success_and_nothing_is_stored(
    post: Post,
    dynamodb: Any,
    make_event: Callable[..., dict[str, Any]],
    status: int,
    homepage: str | list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a bot that fills every input, including the hidden one
    response = post(make_event({**DOWNLOAD_FORM, "homepage": homepage}))

    # Then it gets what a person would get
    assert response["statusCode"] == status
    if status == 303:
        assert header(response, "Location") == THANKS
    else:
        reply = body_of(response)
        assert (set(reply), reply["status"], len(reply["lead_id"])) == (
            {"lead_id", "status"},
            "created",
            32,
        )
    # and nothing at all is stored, nor counted
    assert all_items(dynamodb) == []
    assert metric_counts(capsys.readouterr().out) == {}


@pytest.mark.parametrize("origin", [SITE, "https://lp.example.co.jp"])
def test_cors_echoes_an_allowed_origin(post: Post, origin: str) -> None:
    response = post(json_post({"email": EMAIL}, headers={"Origin": origin}))

    assert response["statusCode"] == 201
    assert header(response, "Access-Control-Allow-Origin") == origin


@pytest.mark.parametrize("origin", ["https://evil.example.com", "https://example.co.jp", "null"])
def test_cors_gives_another_origin_no_allow_origin_header(post: Post, origin: str) -> None:
    response = post(json_post({"email": EMAIL}, headers={"Origin": origin}))

    assert header(response, "Access-Control-Allow-Origin") is None


def test_a_cors_preflight_from_an_allowed_origin_gets_204_with_the_headers(post: Post) -> None:
    response = post(
        rest_event(
            "OPTIONS",
            "/leads",
            headers={
                "Origin": SITE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,accept",
            },
        )
    )

    assert response["statusCode"] == 204
    assert header(response, "Access-Control-Allow-Origin") == SITE
    assert "POST" in (header(response, "Access-Control-Allow-Methods") or "")
    allowed_headers = (header(response, "Access-Control-Allow-Headers") or "").lower()
    assert {"content-type", "accept"} <= set(allowed_headers.split(","))


def test_a_cors_preflight_from_another_origin_is_not_allowed(post: Post) -> None:
    response = post(
        rest_event(
            "OPTIONS",
            "/leads",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        )
    )

    assert header(response, "Access-Control-Allow-Origin") is None


# -- bad input ---------------------------------------------------------------------------------

TOO_BIG = "あ" * 6000  # 18 kB of UTF-8, over the 16 kB test limit


def plain_event(
    body: str | bytes | None, content_type: str | None, **kwargs: Any
) -> dict[str, Any]:
    headers = {**ACCEPT_JSON, **({"Content-Type": content_type} if content_type else {})}
    return rest_event("POST", "/leads", body=body, headers=headers, **kwargs)


def base64_event(body: str, content_type: str) -> dict[str, Any]:
    event = plain_event(None, content_type)
    return {**event, "body": body, "isBase64Encoded": True}


def sjis_multipart() -> dict[str, Any]:
    """FormData from a page served as Shift_JIS: the values are not UTF-8."""
    sjis = multipart_body({"email": EMAIL, "name": "山田"}).replace(
        "山田".encode(), "山田".encode("cp932")
    )
    return {**multipart_post({}), "body": base64.b64encode(sjis).decode()}


MALFORMED_JSON = json_post('{"email": "taro@example.co.jp"')
JSON_ARRAY = json_post([{"email": EMAIL}])
TEXT_PLAIN = plain_event(f"email={EMAIL}", "text/plain")
NO_CONTENT_TYPE = plain_event(f"email={EMAIL}", None)
OVERSIZED = form_post({"email": EMAIL, "message": TOO_BIG}, headers=ACCEPT_JSON)
OVERSIZED_BASE64 = multipart_post({"email": EMAIL, "message": TOO_BIG})
LATIN1_URLENCODED = plain_event(
    "email=taro%40example.co.jp&name=\xff".encode("latin-1"),
    "application/x-www-form-urlencoded",
    base64_encoded=True,
)
SJIS_JSON = plain_event(
    f'{{"email": "{EMAIL}", "name": "山田"}}'.encode("cp932"),
    "application/json",
    base64_encoded=True,
)
NOT_BASE64 = base64_event("not base64!!", "application/json")
# A Shift_JIS page's post claiming EUC-JP: its bytes are not EUC-JP.
SJIS_CLAIMED_EUC_BODY = SHIFT_JIS.urlencoded.replace(b"_charset_=Shift_JIS", b"_charset_=EUC-JP")
SJIS_CLAIMED_EUC = plain_event(SJIS_CLAIMED_EUC_BODY, URLENCODED, base64_encoded=True)
WINDOWS_1252_BODY = b"_charset_=windows-1252&email=taro%40example.co.jp&name=Jos%E9"
WINDOWS_1252 = plain_event(WINDOWS_1252_BODY, URLENCODED, base64_encoded=True)
JSON_IN_SHIFT_JIS = plain_event(
    f'{{"email": "{EMAIL}", "name": "髙橋"}}'.encode("cp932"),
    "application/json; charset=Shift_JIS",
    base64_encoded=True,
)
# What API Gateway passes on for a media type it treats as text: U+FFFD for each byte
# that is not UTF-8 (here a Shift_JIS page's multipart post, had it not been binary).
REPLACED_TEXT = plain_event(
    SHIFT_JIS.multipart.decode("utf-8", "replace"), SHIFT_JIS.multipart_type
)
NESTED = json_post({"email": EMAIL, "company": {"name": "サンプル"}})
SCRIPT = json_post({"email": EMAIL, "company": "<script>alert(1)</script>"})
IMG = multipart_post({"email": EMAIL, "company": '<img src=x onerror="alert(1)">'})
CRLF = form_post({"email": EMAIL, "name": "山田\r\n太郎"}, headers=ACCEPT_JSON)
BAD_EMAIL = json_post({"email": "taro@example..co.jp"})
NO_EMAIL = json_post({"company": "サンプル"})
NO_CONSENT = json_post({"email": EMAIL, "form_type": "newsletter"})
BAD_FORM_TYPE = json_post({"email": EMAIL, "form_type": "whitepaper"})

BAD_INPUT = [
    pytest.param(MALFORMED_JSON, 400, "body", "malformed_json", id="malformed JSON"),
    pytest.param(JSON_ARRAY, 400, "body", "json_not_object", id="JSON array"),
    pytest.param(TEXT_PLAIN, 415, "body", "unsupported_media_type", id="text/plain"),
    pytest.param(NO_CONTENT_TYPE, 415, "body", "unsupported_media_type", id="no content type"),
    pytest.param(OVERSIZED, 413, "body", "too_large", id="oversized"),
    pytest.param(OVERSIZED_BASE64, 413, "body", "too_large", id="oversized base64"),
    pytest.param(sjis_multipart(), 400, "name", "invalid_encoding", id="Shift_JIS multipart"),
    pytest.param(SJIS_JSON, 400, "body", "invalid_encoding", id="Shift_JIS JSON base64"),
    pytest.param(LATIN1_URLENCODED, 400, "name", "invalid_encoding", id="Latin-1 urlencoded"),
    pytest.param(NOT_BASE64, 400, "body", "invalid_base64", id="invalid base64"),
    pytest.param(SJIS_CLAIMED_EUC, 400, "family_name", "invalid_encoding", id="not EUC-JP"),
    pytest.param(WINDOWS_1252, 415, "body", "unsupported_charset", id="windows-1252 form"),
    pytest.param(JSON_IN_SHIFT_JIS, 415, "body", "unsupported_charset", id="JSON named Shift_JIS"),
    pytest.param(REPLACED_TEXT, 400, "body", "invalid_encoding", id="U+FFFD in a text body"),
    pytest.param(NESTED, 422, "company", "invalid_type", id="nested JSON value"),
    pytest.param(SCRIPT, 422, "company", "markup", id="script in company"),
    pytest.param(IMG, 422, "company", "markup", id="img onerror in multipart"),
    pytest.param(CRLF, 422, "name", "line_break", id="CRLF in name"),
    pytest.param(BAD_EMAIL, 422, "email", "invalid_email", id="invalid email"),
    pytest.param(NO_EMAIL, 422, "email", "required", id="missing email"),
    pytest.param(NO_CONSENT, 422, "consent", "consent_required", id="newsletter, no consent"),
    pytest.param(BAD_FORM_TYPE, 422, "form_type", "invalid_choice", id="unknown form type"),
]


@pytest.mark.parametrize(("event", "status", "field", "code"), BAD_INPUT)
def test_bad_input_gets_a_4xx_with_the_reason_and_stores_nothing(
    post: Post, dynamodb: Any, event: dict[str, Any], status: int, field: str, code: str
) -> None:
    response = post(event)

    assert response["statusCode"] == status
    errors = body_of(response)["errors"]
    assert (field, code) in {(e["field"], e["code"]) for e in errors}
    assert all(e["message"] and e["message_en"] for e in errors)
    assert all_items(dynamodb) == []


def test_a_form_post_with_errors_gets_a_readable_japanese_page_without_json_or_traceback(
    post: Post, dynamodb: Any
) -> None:
    # Given a browser form with several mistakes and a script in the back link
    back = f'{SITE}/contact?x="><script>alert(1)</script>'
    form: dict[str, str | list[str]] = {
        "email": "taro@",
        "company": "<script>alert(1)</script>",
        "name": "山田\r\n太郎",
        "form_type": "newsletter",
        "page_url": back,
    }

    # When it is posted
    response = post(form_post(form))

    # Then the visitor sees which fields to correct, in Japanese first
    assert response["statusCode"] == 422
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    page = response["body"]
    assert '<html lang="ja">' in page
    for label, message in [
        ("メールアドレス", "メールアドレスの形式が正しくありません。"),
        ("会社名", "HTMLタグは入力できません。"),
        ("お名前", "改行は入力できません。"),
        ("メール配信への同意", "メール配信への同意が必要です。"),
    ]:
        assert f"<strong>{label}</strong>: {message}" in page
    # never raw JSON, a stack trace or the visitor's markup
    assert_no_json_or_traceback(page)
    assert "<script>" not in page
    assert 'href="https://www.example.co.jp/contact?x=&#34;&gt;&lt;script&gt;' in page
    assert all_items(dynamodb) == []


@pytest.mark.parametrize(
    ("event", "status", "message"),
    [
        pytest.param(
            form_post({"email": EMAIL, "message": TOO_BIG}),
            413,
            "送信内容が大きすぎます。",
            id="oversized",
        ),
        pytest.param(
            {**form_post({"email": EMAIL}), "body": "@@", "isBase64Encoded": True},
            400,
            "送信内容を読み取れませんでした。",
            id="unreadable",
        ),
        pytest.param(
            rest_event(
                "POST", "/leads", body=f"email={EMAIL}", headers={"Content-Type": "text/plain"}
            ),
            415,
            "この形式の送信には対応していません。",
            id="unsupported",
        ),
        pytest.param(
            browser_post(SJIS_CLAIMED_EUC_BODY, URLENCODED),
            400,
            "送信内容に、文字コードとして正しくない文字が含まれていました。",
            id="invalid in its encoding",
        ),
        pytest.param(
            browser_post(WINDOWS_1252_BODY, URLENCODED),
            415,
            "この文字コードでの送信には対応していません。",
            id="unsupported encoding",
        ),
    ],
)
def test_a_browser_gets_a_japanese_page_for_an_unreadable_post(
    post: Post, dynamodb: Any, event: dict[str, Any], status: int, message: str
) -> None:
    response = post(event)

    assert response["statusCode"] == status
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    assert message in response["body"]
    assert_no_json_or_traceback(response["body"])
    assert all_items(dynamodb) == []


def test_a_form_with_an_allow_listed_error_page_is_redirected_there_with_the_fields(
    post: Post, dynamodb: Any
) -> None:
    response = post(form_post({"email": "taro@", "form_type": "newsletter", "error_url": ERROR}))

    assert response["statusCode"] == 303
    location = urlsplit(header(response, "Location") or "")
    assert f"{location.scheme}://{location.netloc}{location.path}" == ERROR
    assert parse_qs(location.query) == {"errors": ["email,consent"]}
    assert all_items(dynamodb) == []


def test_an_error_page_off_the_allow_list_is_not_redirected_to(post: Post) -> None:
    response = post(form_post({"email": "taro@", "error_url": "https://evil.example.com/error"}))

    assert response["statusCode"] == 422
    assert header(response, "Location") is None


def test_an_invalid_post_for_an_existing_lead_changes_nothing(post: Post, dynamodb: Any) -> None:
    # Given a stored lead
    post(form_post(DOWNLOAD_FORM))
    before = all_items(dynamodb)

    # When the same address posts something invalid
    response = post(json_post({"email": EMAIL, "company": "<b>新社名</b>", "phone": "nope"}))

    # Then it is refused and the stored items are exactly as they were
    assert response["statusCode"] == 422
    assert {e["field"] for e in body_of(response)["errors"]} == {"company", "phone"}
    key = lambda item: (item["pk"]["S"], item["sk"]["S"])  # noqa: E731
    assert sorted(all_items(dynamodb), key=key) == sorted(before, key=key)


# -- concurrency -----------------------------------------------------------------------------
#
# moto's in-process DynamoDB is NOT thread-safe: transact_write_items checks each
# condition and writes item by item with no lock, and rolls a failed transaction back
# by restoring a deep copy of the whole table taken when it started, which can wipe
# what another thread committed meanwhile (and concurrent deep copies raise
# "dictionary changed size during iteration"). Real DynamoDB makes each call atomic
# and transactions serializable, so the tests give moto that guarantee (one lock per
# API call) and leave open what the code under test must handle: the window between
# reading a lead and writing it. A barrier makes every post read before any writes.


class AtomicCalls:
    """A DynamoDB client whose every call is atomic, as DynamoDB's are."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return call(*args, **kwargs)

        return atomic


class ReadTogether(DynamoLeadRepository):
    """Every thread's first read of the lead completes before any thread may write."""

    def __init__(self, client: Any, posts: int) -> None:
        super().__init__(client, TABLE)
        self._barrier = threading.Barrier(posts)
        self._first = threading.local()

    def lead_of(self, email: str) -> tuple[str | None, bool]:
        found = super().lead_of(email)
        if not getattr(self._first, "done", False):
            self._first.done = True
            self._barrier.wait(timeout=30)
        return found


def post_simultaneously(
    dynamodb: Any,
    clock: FixedClock,
    forms: list[dict[str, list[str]]],
    max_revisions: int = POST_REVISIONS,
) -> tuple[list[CaptureResult], list[BaseException]]:
    capture = LeadCapture(
        ReadTogether(AtomicCalls(dynamodb), len(forms)),
        load_programs(),
        clock,
        "2026-01",
        max_revisions=max_revisions,
    )
    results: list[CaptureResult] = []
    failures: list[BaseException] = []

    def send(form: dict[str, list[str]]) -> None:
        try:
            results.append(capture.capture(parse_submission(form), RequestInfo(ip="203.0.113.10")))
        except BaseException as exc:  # collected and asserted on by the test
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(form,)) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, failures


def form(i: int, **extra: str) -> dict[str, list[str]]:
    return {
        "email": [EMAIL if i % 2 else EMAIL.lower()],
        "interests": [f"topic-{i}"],
        "consent": ["on"],
        **{k: [v] for k, v in extra.items()},
    }


def form_activities(repository: DynamoLeadRepository, lead_id: str) -> list[dict[str, Any]]:
    return [
        a.details for a in repository.timeline(lead_id) if a.type is ActivityType.FORM_SUBMITTED
    ]


# A post loses at most one round per other post's commit, so up to POST_REVISIONS
# simultaneous posts always succeed: fifty, as a burst from one office could send.
@pytest.mark.parametrize("posts", [2, MAX_REVISIONS, 50])
def test_simultaneous_first_posts_for_a_new_address_make_one_lead_and_keep_every_post(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, posts: int
) -> None:
    # When several posts for a new address race
    results, failures = post_simultaneously(dynamodb, clock, [form(i) for i in range(posts)])

    # Then all succeed, exactly one created the lead, and all name the same lead
    assert failures == []
    assert sorted(r.created for r in results) == [False] * (posts - 1) + [True]
    assert len({r.lead_id for r in results}) == 1
    counts = entities(dynamodb)
    assert (counts["lead"], counts["email"]) == (1, 1)
    # and every post is on the timeline, with every interest merged
    lead = stored(repository)
    assert len(form_activities(repository, lead.lead_id)) == posts
    assert len(repository.consents(lead.lead_id)) == posts
    assert set(lead.interests) == {f"topic-{i}" for i in range(posts)}
    assert lead.version == posts
    assert [r.enrolled_in for r in results].count("welcome") == 1


def test_posts_past_their_retry_budget_make_one_lead_and_lose_nothing_that_was_acknowledged(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    # When more posts race than a post retries (a post may then get a 503 and retry)
    results, failures = post_simultaneously(
        dynamodb, clock, [form(i) for i in range(10)], max_revisions=3
    )

    # Then still one lead; every post either succeeded or gave up cleanly
    assert all(isinstance(f, CaptureConflict) for f in failures)
    assert len(results) + len(failures) == 10
    counts = entities(dynamodb)
    assert (counts["lead"], counts["email"]) == (1, 1)
    # and exactly the acknowledged posts are recorded, none half-written
    lead = stored(repository)
    assert len(form_activities(repository, lead.lead_id)) == len(results) == lead.version
    assert len(repository.consents(lead.lead_id)) == len(results)


def test_concurrent_updates_of_one_lead_never_lose_an_activity(
    post: Post, dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    # Given an existing lead
    post(form_post({"email": EMAIL, "company": "サンプル株式会社"}))

    # When it downloads several assets at once
    forms = [
        form(i, form_type="download", whitepaper=f"asset-{i}.pdf") for i in range(MAX_REVISIONS)
    ]
    results, failures = post_simultaneously(dynamodb, clock, forms)

    # Then every download is recorded against the one lead, and no update was lost
    assert failures == []
    assert not any(r.created for r in results)
    lead = stored(repository)
    assets = {a.get("asset") for a in form_activities(repository, lead.lead_id)}
    assert assets == {None} | {f"asset-{i}.pdf" for i in range(MAX_REVISIONS)}
    assert set(lead.interests) == {f"topic-{i}" for i in range(MAX_REVISIONS)}
    assert (lead.version, lead.company) == (1 + MAX_REVISIONS, "サンプル株式会社")

"""Property: no input to POST /leads produces a 5xx or an exception, only the expected answers."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from infra.provision import create_table
from shared.web.submission import ALIASES, FormSubmission
from tests.events import BOUNDARY, multipart_body, rest_event
from tests.integration.conftest import SITE, TABLE

Post = Callable[[dict[str, Any]], dict[str, Any]]

EXPECTED = {200, 201, 303, 400, 413, 415, 422}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

FIELD_NAMES = sorted(
    {*FormSubmission.model_fields, *ALIASES, "thanks_url", "error_url", "homepage", "_charset_"}
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "application/x-www-form-urlencoded; charset=Shift_JIS",
    "application/x-www-form-urlencoded; charset=bogus",
    f"multipart/form-data; boundary={BOUNDARY}",
    f"multipart/form-data; charset=euc-jp; boundary={BOUNDARY}",
    "multipart/form-data",
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=iso-2022-jp",
    "text/plain",
    "",
    None,
]
VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "taro.yamada@example.co.jp",
            "ＴＡＲＯ＠ＥＸＡＭＰＬＥ．ＣＯ．ＪＰ",
            "on",
            "newsletter",
            "download",
            "０３－１２３４－５６７８",
            "<script>alert(1)</script>",
            "山田\r\n太郎",
            f"{SITE}/thanks",
            "//evil.example.com",
            "東京",
            "ja-JP",
            "AI、IoT",
            "Shift_JIS",
            "EUC-JP",
            "ISO-2022-JP",
            "",
        ]
    ),
)
REDIRECTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            f"{SITE}/thanks",
            f"{SITE}/error?form=dl",
            "https://evil.example.com/",
            "//evil.example.com/",
            f"{SITE}@evil.example.com/",
            "https://www.example.co.jp.evil.com/",
            "javascript:alert(1)",
            f"{SITE}\\@evil.example.com",
        ]
    ),
)
FORMS = st.builds(
    lambda email, redirects, rest: {"email": email, **redirects, **rest},
    st.one_of(
        st.sampled_from(
            ["taro.yamada@example.co.jp", "Taro.Yamada@EXAMPLE.CO.JP", "not-an-email", ""]
        ),
        st.from_regex(r"[a-zA-Z0-9.+]{1,12}@[a-z]{1,8}\.(co\.jp|com)", fullmatch=True),
    ),
    st.fixed_dictionaries({}, optional={"thanks_url": REDIRECTS, "error_url": REDIRECTS}),
    st.dictionaries(
        st.one_of(st.sampled_from(FIELD_NAMES), st.text(min_size=1, max_size=20)),
        st.one_of(VALUES, st.lists(VALUES, max_size=3)),
        max_size=8,
    ),
)
HEADERS = st.dictionaries(
    st.one_of(
        st.sampled_from(
            ["Content-Type", "content-type", "Accept", "Origin", "User-Agent", "Referer"]
        ),
        st.text(min_size=1, max_size=20),
    ),
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=",
                "text/html,application/json",
                SITE,
                "https://evil.example.com",
                f"{SITE}/lp?utm_source=x",
            ]
        ),
    ),
    max_size=6,
)


def fresh_table(dynamodb: Any) -> None:
    """Start each example from a new table. moto deep-copies the whole table, stream
    records included, on every transaction: one table kept for 150 examples makes the
    run quadratic (deleting items only adds stream records)."""
    dynamodb.delete_table(TableName=TABLE)
    create_table(dynamodb, TABLE)


def assert_expected_answer(response: dict[str, Any]) -> None:
    status = response["statusCode"]
    event(f"status {status}")
    assert status in EXPECTED, response
    headers = {k.lower(): v[0] for k, v in (response.get("multiValueHeaders") or {}).items()}
    if status == 303:
        assert headers["location"].startswith(f"{SITE}/"), "redirects stay on the allow-list"
    if 200 <= status < 300 and headers.get("content-type", "").startswith("application/json"):
        lead_id = json.loads(response["body"])["lead_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", lead_id), lead_id


def encode(form: dict[str, Any], encoding: str) -> tuple[bytes, str]:
    if encoding == "json":
        return json.dumps(form, ensure_ascii=False).encode(), "application/json"
    if encoding == "multipart":
        return multipart_body(form), f"multipart/form-data; boundary={BOUNDARY}"
    return urlencode(form, doseq=True).encode(), "application/x-www-form-urlencoded"


@FUZZ
@given(
    body=st.one_of(st.text(max_size=300), st.binary(max_size=300)),
    content_type=st.sampled_from(CONTENT_TYPES),
    accept=st.sampled_from([None, "application/json", "text/html"]),
    base64_encoded=st.booleans(),
)
@example(body=b"[" * 50, content_type="application/json", accept=None, base64_encoded=False)
@example(
    body="email=a@b.jp&email=%ff", content_type=CONTENT_TYPES[0], accept=None, base64_encoded=False
)
@example(body="not base64", content_type="application/json", accept=None, base64_encoded=True)
def test_no_body_gets_a_5xx(
    post: Post,
    dynamodb: Any,
    body: str | bytes,
    content_type: str | None,
    accept: str | None,
    base64_encoded: bool,
) -> None:
    fresh_table(dynamodb)
    headers = {
        k: v for k, v in {"Content-Type": content_type, "Accept": accept}.items() if v is not None
    }
    if base64_encoded and isinstance(body, bytes):
        event = rest_event("POST", "/leads", body=body, headers=headers, base64_encoded=True)
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        event = rest_event("POST", "/leads", body=text, headers=headers)
        event["isBase64Encoded"] = base64_encoded  # text flagged base64 may not be base64

    assert_expected_answer(post(event))


@FUZZ
@given(
    form=FORMS,
    encoding=st.sampled_from(["urlencoded", "multipart", "json"]),
    accept=st.sampled_from([None, "application/json", "text/html"]),
    base64_encoded=st.booleans(),
)
def test_no_form_gets_a_5xx(
    post: Post,
    dynamodb: Any,
    form: dict[str, Any],
    encoding: str,
    accept: str | None,
    base64_encoded: bool,
) -> None:
    fresh_table(dynamodb)
    body, content_type = encode(form, encoding)
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    event = rest_event("POST", "/leads", body=body, headers=headers, base64_encoded=base64_encoded)

    assert_expected_answer(post(event))


@FUZZ
@given(
    headers=HEADERS,
    form=FORMS,
    encoding=st.sampled_from(["urlencoded", "multipart", "json"]),
    source_ip=st.one_of(st.ip_addresses().map(str), st.text(max_size=40)),
)
def test_no_headers_get_a_5xx(
    post: Post,
    dynamodb: Any,
    headers: dict[str, str],
    form: dict[str, Any],
    encoding: str,
    source_ip: str,
) -> None:
    fresh_table(dynamodb)
    body, content_type = encode(form, encoding)
    event = rest_event(
        "POST",
        "/leads",
        body=base64.b64encode(body).decode(),
        headers={"Content-Type": content_type, **headers},
        source_ip=source_ip,
    )
    event["isBase64Encoded"] = True

    assert_expected_answer(post(event))


# Found while writing the properties above; random generation seldom reaches them.
@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"company": ' + "[" * 2000 + "]" * 2000 + "}", id="nesting"),
        pytest.param('{"company_size": ' + "9" * 5000 + "}", id="long integer"),
    ],
)
def test_json_the_parser_chokes_on_is_a_400_not_a_crash(post: Post, body: str) -> None:
    response = post(
        rest_event("POST", "/leads", body=body, headers={"Content-Type": "application/json"})
    )

    assert response["statusCode"] == 400

"""Decoding form bodies (shared.web.forms) and the HTTP helpers around them (shared.web.pages)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.web.forms import MAX_FIELDS, MalformedBody, UnsupportedMediaType, decode_form
from shared.web.pages import (
    BodyTooLarge,
    allowed_redirect,
    form_body,
    raw_body,
    wants_json,
    with_query,
)
from shared.web.submission import InvalidSubmission
from tests.events import BOUNDARY, multipart_body
from tests.legacy_forms import EUC_JP, ISO_2022_JP, LEGACY_FORMS, SHIFT_JIS, LegacyForm

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
NAMELESS_PART = f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
JSON = "application/json"
SITE = "https://www.example.co.jp"


def malformed(body: bytes, content_type: str) -> str:
    with pytest.raises(MalformedBody) as caught:
        decode_form(body, content_type)
    return caught.value.code


def unsupported(body: bytes, content_type: str | None) -> str:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_form(body, content_type)
    return caught.value.code


# -- urlencoded ----------------------------------------------------------------------------


def test_urlencoded_keeps_repeated_keys_and_blank_values() -> None:
    body = b"email=taro%40example.co.jp&interests=AI&interests=IoT&company=&consent=on"

    assert decode_form(body, URLENCODED) == {
        "email": ["taro@example.co.jp"],
        "interests": ["AI", "IoT"],
        "company": [""],
        "consent": ["on"],
    }


@pytest.mark.parametrize(
    "content_type",
    [
        URLENCODED,
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded",
    ],
)
def test_urlencoded_decodes_percent_encoded_utf8_japanese(content_type: str) -> None:
    body = (
        f"name={quote('山田 太郎')}&company=%E3%82%B5%E3%83%B3%E3%83%97%E3%83%AB+%E6%A0%AA".encode()
    )

    assert decode_form(body, content_type) == {"name": ["山田 太郎"], "company": ["サンプル 株"]}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"name=%FF%FE", id="percent-encoded invalid UTF-8"),
        pytest.param(f"name={quote('山田', encoding='shift_jis')}".encode(), id="Shift_JIS"),
        pytest.param(b"name=\xff", id="raw invalid byte"),
    ],
)
def test_urlencoded_that_is_not_utf8_is_malformed(body: bytes) -> None:
    assert malformed(body, URLENCODED) == "invalid_encoding"


def test_urlencoded_accepts_max_fields_and_refuses_one_more() -> None:
    def body(n: int) -> bytes:
        return "&".join(f"f{i}=x" for i in range(n)).encode()

    assert len(decode_form(body(MAX_FIELDS), URLENCODED)) == MAX_FIELDS
    assert malformed(body(MAX_FIELDS + 1), URLENCODED) == "too_many_fields"


# -- multipart -----------------------------------------------------------------------------


def browser_multipart() -> bytes:
    """What Chrome sends for a form with a filled and an empty file input."""
    boundary = BOUNDARY.encode()
    return b"".join(
        [
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="email"\r\n\r\n',
            b"taro@example.co.jp\r\n",
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="company"\r\n\r\n',
            "サンプル株式会社".encode() + b"\r\n",
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="interests"\r\n\r\n',
            b"AI\r\n",
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="interests"\r\n\r\n',
            b"IoT\r\n",
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="card"; filename="'
            + "名刺.png".encode()
            + b'"\r\n',
            b"Content-Type: image/png\r\n\r\n",
            b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary\r\n",
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="resume"; filename=""\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            b"\r\n",
            b"--" + boundary + b"--\r\n",
        ]
    )


def test_multipart_as_a_browser_sends_it_gives_the_fields_and_ignores_file_parts() -> None:
    assert decode_form(browser_multipart(), MULTIPART) == {
        "email": ["taro@example.co.jp"],
        "company": ["サンプル株式会社"],
        "interests": ["AI", "IoT"],
    }


def test_multipart_keeps_line_breaks_and_blank_values_for_validation_to_judge() -> None:
    body = multipart_body({"message": "一行目\r\n二行目", "company": ""})

    assert decode_form(body, MULTIPART) == {"message": ["一行目\r\n二行目"], "company": [""]}


@pytest.mark.parametrize(
    "content_type",
    [
        f'multipart/form-data; boundary="{BOUNDARY}"',
        f"multipart/form-data; charset=utf-8; boundary={BOUNDARY}",
    ],
    ids=["quoted boundary", "charset first"],
)
def test_multipart_content_type_parameters_are_read_as_browsers_write_them(
    content_type: str,
) -> None:
    assert decode_form(multipart_body({"email": "a@example.co.jp"}), content_type) == {
        "email": ["a@example.co.jp"]
    }


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        pytest.param(
            multipart_body({"email": "a@example.co.jp"}),
            "multipart/form-data",
            "missing_boundary",
            id="no boundary",
        ),
        pytest.param(b"", MULTIPART, "malformed_multipart", id="empty"),
        pytest.param(
            b"email=a%40example.co.jp", MULTIPART, "malformed_multipart", id="urlencoded body"
        ),
        pytest.param(
            b"\x00\xff garbage \r\n\r\n--", MULTIPART, "malformed_multipart", id="garbage"
        ),
        pytest.param(
            multipart_body({"email": "a@b.jp"}, boundary="other"),
            MULTIPART,
            "malformed_multipart",
            id="other boundary",
        ),
        pytest.param(
            NAMELESS_PART.encode(),
            MULTIPART,
            "malformed_multipart",
            id="part without a name",
        ),
        pytest.param(
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            MULTIPART,
            "malformed_multipart",
            id="part without disposition",
        ),
        pytest.param(
            multipart_body({"name": "山田"}).replace("山田".encode(), "山田".encode("shift_jis")),
            MULTIPART,
            "invalid_encoding",
            id="Shift_JIS value",
        ),
        pytest.param(
            multipart_body({f"f{i}": "x" for i in range(MAX_FIELDS + 1)}),
            MULTIPART,
            "too_many_fields",
            id="too many parts",
        ),
    ],
)
def test_multipart_that_cannot_be_read_is_malformed(
    body: bytes, content_type: str, code: str
) -> None:
    assert malformed(body, content_type) == code


# -- JSON --------------------------------------------------------------------------------


def test_json_object_fields_become_strings() -> None:
    document = {
        "email": "taro@example.co.jp",
        "name": "山田 太郎",
        "consent": True,
        "company_size": 250,
        "interests": ["AI", "IoT", 5, 1.5],
        "phone": None,
    }

    assert decode_form(json.dumps(document).encode(), JSON) == {
        "email": ["taro@example.co.jp"],
        "name": ["山田 太郎"],
        "consent": ["true"],
        "company_size": ["250"],
        "interests": ["AI", "IoT", "5", "1.5"],
    }


def test_json_false_is_the_string_false() -> None:
    assert decode_form(b'{"consent": false}', JSON) == {"consent": ["false"]}


@pytest.mark.parametrize(
    "content_type", [JSON, "application/json; charset=utf-8", "application/vnd.lead+json"]
)
def test_json_content_types_are_recognised(content_type: str) -> None:
    assert decode_form(b'{"email": "a@example.co.jp"}', content_type) == {
        "email": ["a@example.co.jp"]
    }


def test_json_keeps_scalar_fields_for_the_honeypot_and_drops_nested_unknown_ones() -> None:
    body = json.dumps(
        {"email": "a@example.co.jp", "homepage": "https://spam.example/", "x": {"y": 1}}
    )

    # Unknown scalars are kept for the handler's honeypot check; the submission drops them.
    assert decode_form(body.encode(), JSON) == {
        "email": ["a@example.co.jp"],
        "homepage": ["https://spam.example/"],
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b'{"email": ', "malformed_json", id="truncated"),
        pytest.param(b"email=a%40example.co.jp", "malformed_json", id="urlencoded body"),
        pytest.param(b"", "malformed_json", id="empty"),
        pytest.param(b"{'email': 'a@b.jp'}", "malformed_json", id="single quotes"),
        pytest.param(b'[{"email": "a@example.co.jp"}]', "json_not_object", id="array"),
        pytest.param(b'"a@example.co.jp"', "json_not_object", id="string"),
        pytest.param(b"42", "json_not_object", id="number"),
        pytest.param(b"null", "json_not_object", id="null"),
        pytest.param('{"name": "山田"}'.encode("shift_jis"), "invalid_encoding", id="Shift_JIS"),
        pytest.param(
            json.dumps({f"f{i}": "x" for i in range(MAX_FIELDS + 1)}).encode(),
            "too_many_fields",
            id="too many fields",
        ),
        pytest.param(
            b'{"company": ' + b"[" * 2000 + b"]" * 2000 + b"}",
            "malformed_json",
            id="deeply nested (2 kB)",
        ),
        pytest.param(
            b'{"company_size": ' + b"9" * 5000 + b"}",
            "malformed_json",
            id="integer over 4300 digits",
        ),
    ],
)
def test_json_that_is_not_one_object_is_malformed(body: bytes, code: str) -> None:
    assert malformed(body, JSON) == code


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("company", {"name": "サンプル"}),
        ("interests", [["AI"]]),
        ("interests", [{"a": 1}]),
        ("tel", {}),
    ],
)
def test_a_nested_value_in_a_known_field_is_an_invalid_type(field: str, value: object) -> None:
    body = json.dumps({"email": "a@example.co.jp", field: value}).encode()

    with pytest.raises(InvalidSubmission) as caught:
        decode_form(body, JSON)

    assert [(e.field, e.code) for e in caught.value.errors] == [(field, "invalid_type")]


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/xml", "text/html"])
def test_other_content_types_are_unsupported(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_form(b'{"email": "a@example.co.jp"}', content_type)


# -- character encodings -------------------------------------------------------------------

LEGACY = [pytest.param(form, id=form.encoding) for form in LEGACY_FORMS]


@pytest.mark.parametrize("form", LEGACY)
def test_a_legacy_page_form_is_decoded_in_the_encoding_its_charset_field_names(
    form: LegacyForm,
) -> None:
    # (cp932-only 髙 and 﨑, NEC ①, half-width katakana and a Japanese field name)
    assert decode_form(form.urlencoded, URLENCODED) == form.fields()


@pytest.mark.parametrize("form", LEGACY)
def test_a_legacy_page_multipart_form_is_decoded_in_the_encoding_its_charset_field_names(
    form: LegacyForm,
) -> None:
    assert decode_form(form.multipart, form.multipart_type) == form.fields()


def without_charset_field(body: bytes) -> bytes:
    return body.split(b"&", 1)[1]


@pytest.mark.parametrize(
    ("form", "label"),
    [
        pytest.param(SHIFT_JIS, "Shift_JIS", id="Shift_JIS"),
        pytest.param(SHIFT_JIS, '"windows-31j"', id="windows-31j quoted"),
        pytest.param(SHIFT_JIS, "SJIS", id="SJIS upper case"),
        pytest.param(SHIFT_JIS, "x-sjis", id="x-sjis"),
        pytest.param(EUC_JP, "euc-jp", id="euc-jp"),
        pytest.param(EUC_JP, "x-euc-jp", id="x-euc-jp"),
        pytest.param(ISO_2022_JP, "csISO2022JP", id="csISO2022JP"),
    ],
)
def test_a_charset_parameter_names_the_encoding_by_any_of_its_whatwg_labels(
    form: LegacyForm, label: str
) -> None:
    # Given what a script posts: no _charset_ field, the encoding on the Content-Type
    body = without_charset_field(form.urlencoded)

    fields = decode_form(body, f"{URLENCODED}; charset={label}")

    assert fields == {k: v for k, v in form.fields().items() if k != "_charset_"}


def test_without_a_charset_parameter_or_field_the_body_is_utf8() -> None:
    body = without_charset_field(SHIFT_JIS.urlencoded)

    assert malformed(body, URLENCODED) == "invalid_encoding"
    assert decode_form(f"name={quote('髙橋')}".encode(), URLENCODED) == {"name": ["髙橋"]}


def test_a_blank_charset_field_is_one_the_browser_did_not_fill_and_means_utf8() -> None:
    body = f"_charset_=&name={quote('髙橋')}".encode()

    assert decode_form(body, URLENCODED) == {"_charset_": [""], "name": ["髙橋"]}


def test_the_charset_parameter_wins_over_the_charset_field() -> None:
    # Given a script that re-posts a legacy form's fields as UTF-8 and says so
    body = f"_charset_=Shift_JIS&name={quote('髙橋')}".encode()

    fields = decode_form(body, f"{URLENCODED}; charset=UTF-8")

    assert fields == {"_charset_": ["Shift_JIS"], "name": ["髙橋"]}


def test_a_multipart_part_with_its_own_charset_is_decoded_in_it() -> None:
    def part(name: str, value: bytes, headers: bytes = b"") -> bytes:
        disposition = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        return disposition.encode() + headers + b"\r\n" + value + b"\r\n"

    # Given a Shift_JIS form with one part that names its own encoding (RFC 7578, 4.4)
    body = b"".join(
        [
            part("_charset_", b"Shift_JIS"),
            part(
                "company",
                "株式会社テスト".encode("euc_jp"),
                b"Content-Type: text/plain; charset=EUC-JP\r\n",
            ),
            part("name", "髙橋".encode("cp932")),
            f"--{BOUNDARY}--\r\n".encode(),
        ]
    )

    assert decode_form(body, MULTIPART) == {
        "_charset_": ["Shift_JIS"],
        "company": ["株式会社テスト"],
        "name": ["髙橋"],
    }


# Sequences browsers decode though their encoders never write them (Chromium agrees).
@pytest.mark.parametrize(
    ("value", "label", "text"),
    [
        pytest.param(b"%5C%7E", "Shift_JIS", "\\~", id="Shift_JIS ASCII stays ASCII"),
        pytest.param(b"%8F%B0%A1", "EUC-JP", "丂", id="EUC-JP JIS X 0212"),
        pytest.param(b"%8F%A2%B7", "EUC-JP", "～", id="EUC-JP JIS X 0212 tilde, as WHATWG"),
        pytest.param(b"%1B%28J%5C%7E", "ISO-2022-JP", "¥‾", id="ISO-2022-JP JIS Roman"),
        pytest.param(b"%1B%28I1%1B%28B", "ISO-2022-JP", "ｱ", id="ISO-2022-JP katakana"),
        pytest.param(b"%1B%24%40%7Cb", "ISO-2022-JP", "髙", id="ISO-2022-JP ESC $ @"),
    ],
)
def test_sequences_of_the_older_standards_decode_as_in_browsers(
    value: bytes, label: str, text: str
) -> None:
    body = b"_charset_=" + label.encode() + b"&v=" + value

    assert decode_form(body, URLENCODED)["v"] == [text]


@pytest.mark.parametrize(
    ("value", "label"),
    [
        pytest.param(b"%81", "Shift_JIS", id="Shift_JIS lead byte alone"),
        pytest.param(b"%81%20", "Shift_JIS", id="Shift_JIS lead byte before a space"),
        pytest.param(b"%85%40", "Shift_JIS", id="Shift_JIS unassigned row"),
        pytest.param(b"%A0", "Shift_JIS", id="Shift_JIS 0xA0 (cp932 private use)"),
        pytest.param(b"%FD", "Shift_JIS", id="Shift_JIS 0xFD (cp932 private use)"),
        pytest.param(b"%8A%94", "EUC-JP", id="Shift_JIS bytes as EUC-JP"),
        pytest.param(b"%B6", "EUC-JP", id="EUC-JP truncated"),
        pytest.param(b"%8E%E0", "EUC-JP", id="EUC-JP katakana out of range"),
        pytest.param(b"%A9%A1", "EUC-JP", id="EUC-JP unassigned row"),
        pytest.param(b"%80", "EUC-JP", id="EUC-JP 0x80"),
        pytest.param(b"%1B%24B%7Cb6", "ISO-2022-JP", id="ISO-2022-JP odd byte"),
        pytest.param(b"%1B%24B%7Cb%0A66", "ISO-2022-JP", id="ISO-2022-JP newline in kanji"),
        pytest.param(b"%1B%28Kab", "ISO-2022-JP", id="ISO-2022-JP unknown escape"),
        pytest.param(b"%1B%24B%1B%28Bab", "ISO-2022-JP", id="ISO-2022-JP escape after escape"),
        pytest.param(b"%FB%FC", "ISO-2022-JP", id="ISO-2022-JP 8-bit byte"),
        pytest.param(b"%1B%28I%60", "ISO-2022-JP", id="ISO-2022-JP katakana out of range"),
        pytest.param(b"%FB%FC", "UTF-8", id="Shift_JIS bytes as UTF-8"),
        pytest.param(b"%ED%A0%80", "UTF-8", id="UTF-8 surrogate"),
    ],
)
def test_bytes_invalid_in_the_named_encoding_are_refused_naming_the_field(
    value: bytes, label: str
) -> None:
    body = b"email=a%40example.co.jp&_charset_=" + label.encode() + b"&family_name=" + value

    with pytest.raises(MalformedBody) as caught:
        decode_form(body, URLENCODED)

    assert (caught.value.code, caught.value.field) == ("invalid_encoding", "family_name")


@pytest.mark.parametrize(
    ("form", "other"),
    [
        (SHIFT_JIS, "EUC-JP"),
        (SHIFT_JIS, "ISO-2022-JP"),
        (SHIFT_JIS, "UTF-8"),
        (EUC_JP, "Shift_JIS"),
        (EUC_JP, "UTF-8"),
    ],
)
def test_a_legacy_form_in_another_encoding_than_named_is_refused_not_garbled(
    form: LegacyForm, other: str
) -> None:
    charset = f"_charset_={form.encoding}".encode()
    body = form.urlencoded.replace(charset, f"_charset_={other}".encode())

    assert malformed(body, URLENCODED) == "invalid_encoding"


def test_a_multipart_field_name_invalid_in_its_encoding_is_refused() -> None:
    body = SHIFT_JIS.multipart.replace(b'name="\x94\xf5\x8dl"', b'name="\x94\x20"')

    with pytest.raises(MalformedBody) as caught:
        decode_form(body, SHIFT_JIS.multipart_type)

    assert (caught.value.code, caught.value.field) == ("invalid_encoding", "body")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"name=x", f"{URLENCODED}; charset=koi8-r", id="parameter, other encoding"),
        pytest.param(b"name=x", f"{URLENCODED}; charset=nonsense", id="parameter, no encoding"),
        pytest.param(b"_charset_=windows-1252&name=x", URLENCODED, id="field, windows-1252"),
        pytest.param(b"_charset_=UTF-16&name=x", URLENCODED, id="field, UTF-16"),
        pytest.param(
            multipart_body({"name": "x"}),
            f"{MULTIPART}; charset=iso-8859-1",
            id="multipart parameter",
        ),
        pytest.param(
            multipart_body({"name": "x"}).replace(
                b"\r\n\r\nx", b"\r\nContent-Type: text/plain; charset=gbk\r\n\r\nx"
            ),
            MULTIPART,
            id="part charset",
        ),
        pytest.param(b'{"name": "x"}', f"{JSON}; charset=Shift_JIS", id="JSON in Shift_JIS"),
        pytest.param(b'{"name": "x"}', f"{JSON}; charset=utf-16", id="JSON in UTF-16"),
    ],
)
def test_an_encoding_we_do_not_decode_is_an_unsupported_charset(
    body: bytes, content_type: str
) -> None:
    assert unsupported(body, content_type) == "unsupported_charset"


@pytest.mark.parametrize("label", ["utf-8", "UTF8", '"utf-8"', "unicode-1-1-utf-8"])
def test_json_may_name_utf8_by_any_of_its_labels(label: str) -> None:
    body = json.dumps({"name": "髙橋"}, ensure_ascii=False).encode()

    assert decode_form(body, f"{JSON}; charset={label}") == {"name": ["髙橋"]}


def test_an_unknown_media_type_is_unsupported_whatever_its_charset() -> None:
    assert unsupported(b"name=x", "text/plain; charset=nonsense") == "unsupported_media_type"


def value_or_refusal(body: bytes) -> str:
    """Field ``v`` of the urlencoded ``body``, or why it was refused."""
    try:
        return decode_form(body, URLENCODED)["v"][0]
    except MalformedBody as refused:
        return f"refused: {refused.code} {refused.field}"


@given(value=st.binary(max_size=40), label=st.sampled_from(["Shift_JIS", "EUC-JP", "ISO-2022-JP"]))
def test_a_japanese_encoding_never_yields_a_replacement_character(value: bytes, label: str) -> None:
    # None of them can encode U+FFFD: one in a value would be a decoder guessing.
    body = f"_charset_={label}&v=".encode() + quote_from_bytes(value).encode()

    decoded = value_or_refusal(body)

    assert decoded == "refused: invalid_encoding v" or "\ufffd" not in decoded


@given(value=st.binary(max_size=40))
def test_utf8_values_are_exactly_the_bytes_or_refused(value: bytes) -> None:
    body = b"v=" + quote_from_bytes(value).encode()
    try:
        expected = value.decode("utf-8")
    except UnicodeDecodeError:
        expected = "refused: invalid_encoding v"

    assert value_or_refusal(body) == expected


# (cp932 also encodes a few look-alikes, ¢ as ￠, and Microsoft's private-use U+F8F0-F8F3
# as the single bytes A0 and FD-FF; no browser sends them so)
@given(
    text=st.text(
        st.characters(codec="cp932", exclude_characters="¢£¬‖−〜\uf8f0\uf8f1\uf8f2\uf8f3"),
        max_size=20,
    )
)
def test_text_a_shift_jis_page_can_post_comes_back_unchanged(text: str) -> None:
    body = b"_charset_=Shift_JIS&v=" + quote_from_bytes(text.encode("cp932")).encode()

    assert decode_form(body, URLENCODED)["v"] == [text]


# -- shared.web.pages: body ----------------------------------------------------------------------


def test_a_body_up_to_the_limit_is_returned_as_bytes() -> None:
    assert raw_body("a" * 100, False, limit=100) == b"a" * 100
    assert raw_body(base64.b64encode(b"\xff" * 100).decode(), True, limit=100) == b"\xff" * 100
    assert raw_body(None, False, limit=100) == b""


@pytest.mark.parametrize(
    ("body", "is_base64"),
    [
        pytest.param("a" * 101, False, id="text"),
        pytest.param("あ" * 34, False, id="34 characters are 102 UTF-8 bytes"),
        pytest.param(base64.b64encode(b"a" * 101).decode(), True, id="base64"),
        pytest.param("A" * 10_000, True, id="base64 refused before decoding"),
    ],
)
def test_a_body_over_the_limit_is_too_large(body: str, is_base64: bool) -> None:
    with pytest.raises(BodyTooLarge):
        raw_body(body, is_base64, limit=100)


@pytest.mark.parametrize("body", ["not base64!", "YWJj ZA==", "YWJjZA=", "@@@@"])
def test_invalid_base64_is_malformed(body: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        raw_body(body, True, limit=100)

    assert caught.value.code == "invalid_base64"


def test_a_form_body_passed_as_text_with_a_replacement_character_is_refused() -> None:
    # Given what API Gateway makes of Shift_JIS bytes of a media type it passes as text
    text = b"name=" + "髙橋".encode("cp932")

    with pytest.raises(MalformedBody) as caught:
        form_body(text.decode("utf-8", "replace"), False, limit=100)

    assert caught.value.code == "invalid_encoding"


@pytest.mark.parametrize(
    ("body", "is_base64", "data"),
    [
        pytest.param("name=%EF%BF%BD", False, b"name=%EF%BF%BD", id="percent-encoded text"),
        pytest.param(
            base64.b64encode("name=\ufffd".encode()).decode(),
            True,
            "name=\ufffd".encode(),
            id="UTF-8 bytes in base64",
        ),
        pytest.param("name=髙橋", False, "name=髙橋".encode(), id="text without one"),
    ],
)
def test_a_replacement_character_the_client_sent_is_kept(
    body: str, is_base64: bool, data: bytes
) -> None:
    assert form_body(body, is_base64, limit=100) == data


# -- shared.web.pages: negotiation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "accept", "as_json"),
    [
        (JSON, None, True),
        ("application/vnd.lead+json", "text/html", True),
        (MULTIPART, "application/json", True),
        (URLENCODED, "application/json;q=0.9", True),
        (URLENCODED, None, False),
        (URLENCODED, "*/*", False),
        (URLENCODED, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        (URLENCODED, "application/json, text/html", False),
        (MULTIPART, None, False),
    ],
)
def test_json_is_for_json_posts_and_scripts_that_ask_for_it(
    content_type: str, accept: str | None, as_json: bool
) -> None:
    assert wants_json(content_type, accept) is as_json


# -- shared.web.pages: redirects ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"{SITE}/thanks",
        f"{SITE}/thanks?form=dl#top",
        f"{SITE}",
        "HTTPS://WWW.EXAMPLE.CO.JP/thanks",
    ],
)
def test_a_redirect_to_an_allowed_origin_is_kept(url: str) -> None:
    assert allowed_redirect(url, [SITE]) == url


def test_allowed_origins_are_compared_without_case_or_trailing_slash() -> None:
    assert allowed_redirect(f"{SITE}/thanks", ["https://WWW.Example.co.jp/"]) == f"{SITE}/thanks"


def test_an_allowed_origin_with_a_port_allows_that_port() -> None:
    url = "https://www.example.co.jp:8443/thanks"

    assert allowed_redirect(url, ["https://www.example.co.jp:8443"]) == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("https://evil.com/thanks", id="other origin"),
        pytest.param("http://www.example.co.jp/thanks", id="http downgrade"),
        pytest.param("//evil.com/thanks", id="protocol relative"),
        pytest.param("/thanks", id="relative"),
        pytest.param("https://example.co.jp.evil.com/thanks", id="suffix domain"),
        pytest.param("https://www.example.co.jp.evil.com/thanks", id="allowed host as prefix"),
        pytest.param("https://www.example.co.jp@evil.com/thanks", id="userinfo"),
        pytest.param("https://user:pw@www.example.co.jp/thanks", id="userinfo on allowed host"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("javascript://www.example.co.jp/%0aalert(1)", id="javascript with host"),
        pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
        pytest.param("https:\\\\evil.com", id="backslashes"),
        pytest.param("https://www.example.co.jp\\@evil.com", id="backslash userinfo"),
        pytest.param("https://www.example.co.jp/\r\nSet-Cookie: a=b", id="CRLF"),
        pytest.param("https://www.example.co.jp/\tx", id="tab"),
        pytest.param(" https://www.example.co.jp/", id="leading space"),
        pytest.param("https://www.example.co.jp:8443/thanks", id="port mismatch"),
        pytest.param("https://www.example.co.jp:443/thanks", id="explicit default port"),
        pytest.param("https://www.example.co.jp:99999/thanks", id="invalid port"),
        pytest.param(f"{SITE}/" + "a" * 2048, id="too long"),
    ],
)
def test_anything_else_is_never_a_redirect_target(url: str | None) -> None:
    assert allowed_redirect(url, [SITE]) is None


def test_an_error_redirect_appends_to_the_existing_query() -> None:
    assert (
        with_query(f"{SITE}/error?form=dl#f", errors="email,consent")
        == f"{SITE}/error?form=dl&errors=email%2Cconsent#f"
    )

"""Unsubscribe tokens (HMAC) and the MIME message every nurture email is sent as."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage

import jinja2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.domain.email import (
    EmailRenderer,
    OutgoingEmail,
    RenderedEmail,
    SenderProfile,
    build_mime,
)
from shared.domain.leads import ConsentState, FormType, Lead, Touch
from shared.domain.nurture import start
from shared.domain.programs import load_programs
from shared.domain.tokens import InvalidToken, UnsubscribeTokens

SECRET = b"unit-test-signing-secret-0123456789"
LEAD_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
OTHER_LEAD_ID = "ffffffffffffffffffffffffffffffff"
UNSUBSCRIBE = "https://api.example.co.jp/v1/unsubscribe"
FROM = "株式会社サンプル <news@example.co.jp>"
SUBJECT = "【導入事例】承認にかかる日数を5日から1日へ。製造業A社の取り組み"
TEXT = "山田 太郎 様\n\nいつもお世話になっております。\n配信停止: https://api.example.co.jp/v1/unsubscribe?t=x\n"
HTML = '<p>山田 太郎 様</p>\n<p>A&amp;B &lt;株式会社&gt; の事例です。</p>\n<a href="https://x">詳しく</a>\n'


@pytest.fixture
def tokens() -> UnsubscribeTokens:
    return UnsubscribeTokens(SECRET)


# -- tokens ---------------------------------------------------------------------------------


def test_a_signed_token_names_its_lead(tokens: UnsubscribeTokens) -> None:
    token = tokens.sign(LEAD_ID)
    assert tokens.verify(token) == LEAD_ID
    assert token.startswith(f"{LEAD_ID}.")
    # safe in a URL query without escaping, and stable (the same link in every email)
    assert re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]+", token)
    assert tokens.sign(LEAD_ID) == token
    assert tokens.sign(OTHER_LEAD_ID) != token


def test_a_token_verifies_with_another_instance_holding_the_same_secret(
    tokens: UnsubscribeTokens,
) -> None:
    assert UnsubscribeTokens(SECRET).verify(tokens.sign(LEAD_ID)) == LEAD_ID


def test_whitespace_around_a_token_is_forgiven(tokens: UnsubscribeTokens) -> None:
    assert tokens.verify(f" {tokens.sign(LEAD_ID)}\n") == LEAD_ID


def _flip(char: str) -> str:
    return "A" if char != "A" else "B"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t: OTHER_LEAD_ID + t[32:], id="other lead id, same MAC"),
        pytest.param(lambda t: t[:-1] + _flip(t[-1]), id="last MAC character changed"),
        pytest.param(lambda t: t[:33] + _flip(t[33]) + t[34:], id="first MAC character changed"),
        pytest.param(lambda t: t[:-2], id="MAC truncated"),
        pytest.param(lambda t: t + "A", id="MAC extended"),
        pytest.param(lambda t: t + ".extra", id="extra part"),
        pytest.param(lambda t: t[:32], id="lead id only"),
        pytest.param(lambda t: t[:32] + ".", id="empty MAC"),
        pytest.param(lambda t: t[:20], id="cut off in the lead id"),
        pytest.param(lambda t: t.upper(), id="upper-cased"),
        pytest.param(lambda t: t.replace(".", "", 1), id="no separator"),
        pytest.param(lambda t: "." + t[33:], id="no lead id"),
        pytest.param(
            lambda t: UnsubscribeTokens(b"another-secret-0123456789").sign(LEAD_ID),
            id="signed with another secret",
        ),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: None, id="none"),
        pytest.param(lambda t: "   ", id="blank"),
    ],
)
def test_an_altered_or_forged_token_is_rejected(tokens: UnsubscribeTokens, tamper: object) -> None:
    assert callable(tamper)
    forged = tamper(tokens.sign(LEAD_ID))
    with pytest.raises(InvalidToken):
        tokens.verify(forged)


@pytest.mark.parametrize("mac", ["é", "ＡＢＣ", "\u200b"])
def test_a_token_with_a_non_ascii_mac_is_rejected_as_invalid(
    tokens: UnsubscribeTokens, mac: str
) -> None:
    # hmac.compare_digest refuses non-ASCII str: the check must not crash on such a link
    with pytest.raises(InvalidToken):
        tokens.verify(f"{LEAD_ID}.{mac}")


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        UnsubscribeTokens(b"0123456789abcde")  # 15 bytes
    with pytest.raises(ValueError, match="16 bytes"):
        UnsubscribeTokens(b"")
    UnsubscribeTokens(b"0123456789abcdef")  # 16 bytes is enough


# -- MIME -----------------------------------------------------------------------------------


def outgoing(
    subject: str = SUBJECT,
    unsubscribe_url: str | None = None,
    from_address: str = FROM,
    locale: str = "ja",
) -> OutgoingEmail:
    url = unsubscribe_url or f"{UNSUBSCRIBE}?t={UnsubscribeTokens(SECRET).sign(LEAD_ID)}"
    return OutgoingEmail(
        from_address=from_address,
        to_address="taro.yamada@example.co.jp",
        rendered=RenderedEmail(subject=subject, html=HTML, text=TEXT, locale=locale),
        unsubscribe_url=url,
        tags={"lead_id": LEAD_ID},
    )


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def raw_headers(raw: bytes) -> dict[str, str]:
    """Header fields as they are on the wire, unfolded (RFC 5322 2.2.3), not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n(?=[ \t])", "", head)
    fields: dict[str, str] = {}
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(":")
        fields[name.lower()] = value.strip()
    return fields


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    assert isinstance(part, EmailMessage)
    # text is canonical CRLF on the wire; compare with the template's LF
    return str(part.get_content()).replace("\r\n", "\n")


def test_rfc_8058_headers_are_present() -> None:
    email = outgoing()
    message = parse(build_mime(email))
    assert message["List-Unsubscribe"] == f"<{email.unsubscribe_url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize(
    "base",
    [UNSUBSCRIBE, "https://nurture-api.marketing.example-holdings.co.jp/prod/v1/unsubscribe"],
)
def test_the_list_unsubscribe_header_carries_the_url_verbatim_on_the_wire(base: str) -> None:
    # Mail providers read the raw header: a long URL must not be folded into RFC 2047
    # encoded-words (=?utf-8?q?=3Chttps=3A//...?=), as policy.SMTP would do by itself.
    url = f"{base}?t={UnsubscribeTokens(SECRET).sign(LEAD_ID)}"
    headers = raw_headers(build_mime(outgoing(unsubscribe_url=url)))
    assert headers["list-unsubscribe"] == f"<{url}>"
    assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"


def test_the_japanese_subject_is_encoded_and_decodes_back() -> None:
    raw = build_mime(outgoing())
    subject = raw_headers(raw)["subject"]
    assert subject.isascii()
    assert subject.lower().startswith("=?utf-8?")
    assert parse(raw)["Subject"] == SUBJECT
    # folded into lines of at most 78 characters (RFC 5322 2.1.1)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List-"))


SHIPPED_JA_SUBJECTS = sorted(
    {s for p in load_programs().programs for st in p.steps for s in st.subject["ja"]}
)


@pytest.mark.parametrize("subject", SHIPPED_JA_SUBJECTS)
def test_every_shipped_japanese_subject_survives_the_round_trip(subject: str) -> None:
    # the templated ones are sent rendered; their Jinja text must survive as well
    assert parse(build_mime(outgoing(subject=subject)))["Subject"] == subject


@pytest.mark.parametrize(
    "subject",
    [
        "山田様、ご登録ありがとうございます。はじめにお読みいただきたい3つのこと" * 2,
        "Flowlane 14日間 無料 トライアル のご案内 ( 2026年 12月 )",
        "A&B <株式会社> \"引用\" 'single'",
    ],
)
def test_long_and_mixed_subjects_survive_the_round_trip(subject: str) -> None:
    assert parse(build_mime(outgoing(subject=subject)))["Subject"] == subject


def test_the_body_is_multipart_alternative_with_text_then_html_in_base64_utf8() -> None:
    raw = build_mime(outgoing())
    assert raw.isascii()  # 7-bit clean through any relay
    message = parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    # the preferred (richest) alternative comes last
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "base64"
    assert text_of(message, "plain") == TEXT
    assert text_of(message, "html") == HTML


def test_the_from_display_name_is_encoded_and_decodes_back() -> None:
    raw = build_mime(outgoing())
    wire = raw_headers(raw)["from"]
    assert wire.isascii()
    assert wire.endswith("<news@example.co.jp>")
    assert "=?utf-8?" in wire.lower()
    (address,) = parse(raw)["From"].addresses
    assert address.display_name == "株式会社サンプル"
    assert address.addr_spec == "news@example.co.jp"


def test_a_bare_from_address_has_no_display_name() -> None:
    raw = build_mime(outgoing(from_address="news@example.co.jp"))
    assert raw_headers(raw)["from"] == "news@example.co.jp"


def test_to_message_id_and_language_headers() -> None:
    message = parse(build_mime(outgoing(locale="en")))
    (to,) = message["To"].addresses
    assert to.addr_spec == "taro.yamada@example.co.jp"
    assert message["Message-ID"].endswith("@example.co.jp>")
    assert message["Content-Language"] == "en"
    assert message["MIME-Version"] == "1.0"


def test_every_message_gets_its_own_message_id() -> None:
    ids = {parse(build_mime(outgoing()))["Message-ID"] for _ in range(20)}
    assert len(ids) == 20


def test_the_token_is_per_lead() -> None:
    tokens = UnsubscribeTokens(SECRET)
    lead_ids = [uuid.uuid4().hex for _ in range(20)]
    assert len({tokens.sign(i) for i in lead_ids}) == 20
    assert all(tokens.verify(tokens.sign(i)) == i for i in lead_ids)


# -- the message as a mail client reads it --------------------------------------------------

SENDER = SenderProfile(
    company_name="株式会社サンプル",
    from_address=FROM,
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contact_email="marketing@example.co.jp",
    site_url="https://www.example.co.jp",
)
ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def japanese_lead() -> Lead:
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    touch = Touch(at=at, form_type=FormType.DOWNLOAD, asset="dx-whitepaper-2026")
    program = load_programs().get("welcome")
    assert program is not None
    return Lead(
        lead_id=LEAD_ID,
        email="taro.yamada@example.co.jp",
        family_name="山田",
        given_name="太郎",
        name="山田 太郎",
        company="株式会社テスト商事",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=at, wording_version="2026-01"),
        enrolment=start(program, at),
        created_at=at,
        updated_at=at,
    )


def assert_well_formed(raw: bytes) -> None:
    """7-bit, CRLF lines of at most 998 characters, header lines of at most 78 but the
    List-Unsubscribe URL's, and encoded-words of at most 75 (RFC 5322 2.1.1, RFC 2047 2)."""
    assert raw.isascii()
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in head if not line.startswith(b"List-Unsubscribe:"))
    assert all(len(word) <= 75 for word in ENCODED_WORD.findall(raw))


@pytest.mark.parametrize("variant", [0, 1])
def test_a_rendered_japanese_email_parses_back_to_exactly_what_was_rendered(
    variant: int,
) -> None:
    # Given the shipped welcome email rendered for a Japanese lead, as the sender does
    program = load_programs().get("welcome")
    assert program is not None
    step = program.step("welcome")
    url = f"{UNSUBSCRIBE}?t={UnsubscribeTokens(SECRET).sign(LEAD_ID)}"
    rendered = EmailRenderer(SENDER).render(japanese_lead(), program, step, variant, url)
    assert re.search(r"[ぁ-んァ-ン一-龥]", rendered.subject)
    email = OutgoingEmail(FROM, "taro.yamada@example.co.jp", rendered, url, {})

    # When it is built and read back by the standard library's parser
    raw = build_mime(email)
    message = parse(raw)

    # Then it is well-formed on the wire
    assert_well_formed(raw)
    # and every header and both parts decode to exactly the rendered text
    assert message["Subject"] == rendered.subject
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("株式会社サンプル", "news@example.co.jp")
    (to,) = message["To"].addresses
    assert to.addr_spec == "taro.yamada@example.co.jp"
    assert message["MIME-Version"] == "1.0"
    assert message["Content-Language"] == "ja"
    assert re.fullmatch(r"<[^<>@\s]+@example\.co\.jp>", message["Message-ID"])
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    for part, subtype, body in ((plain, "plain", rendered.text), (html, "html", rendered.html)):
        assert isinstance(part, EmailMessage)
        assert part.get_content_type() == f"text/{subtype}"
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "base64"
        # canonical CRLF line ends on the wire, ending with one
        assert part.get_content() == "\r\n".join(body.split("\n")).rstrip("\r\n") + "\r\n"
    assert "山田 太郎 様" in plain.get_content()
    # and the one-click opt-out headers are exactly RFC 8058's, each once, one line each
    assert message.get_all("List-Unsubscribe") == [f"<{url}>"]
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    assert url.startswith("https://")
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")
    assert f"List-Unsubscribe: <{url}>" in head
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
    assert raw_headers(raw)["list-unsubscribe"] == f"<{url}>"


def test_a_long_japanese_sender_name_is_folded_into_whole_character_encoded_words() -> None:
    name = "株式会社サンプルホールディングス マーケティング本部 ニュースレター事務局"
    raw = build_mime(outgoing(from_address=f"{name} <news@example.co.jp>"))
    assert_well_formed(raw)
    wire = raw_headers(raw)["from"]
    assert len(ENCODED_WORD.findall(wire.encode())) > 1
    assert wire.endswith(" <news@example.co.jp>")
    # RFC 2047 6.2: the space between adjacent encoded-words is not part of the text.
    # (Python 3.11's address parser keeps it, gh-128110; the RFC 2047 decoder does not.)
    assert str(make_header(decode_header(wire))) == f"{name} <news@example.co.jp>"
    (address,) = parse(raw)["From"].addresses
    assert address.display_name.replace(" ", "") == name.replace(" ", "")


@pytest.mark.parametrize(
    ("from_address", "wire"),
    [
        ("Sample Inc <news@example.co.jp>", "Sample Inc <news@example.co.jp>"),
        ('"Sample, Inc." <news@example.co.jp>', '"Sample, Inc." <news@example.co.jp>'),
    ],
)
def test_an_ascii_sender_name_is_sent_as_written(from_address: str, wire: str) -> None:
    raw = build_mime(outgoing(from_address=from_address))
    assert raw_headers(raw)["from"] == wire
    (address,) = parse(raw)["From"].addresses
    assert address.addr_spec == "news@example.co.jp"


def test_a_subject_that_looks_like_an_encoded_word_is_encoded_not_reinterpreted() -> None:
    subject = "Re: =?utf-8?q?not_a_header?= A&B"
    raw = build_mime(outgoing(subject=subject))
    assert raw_headers(raw)["subject"].startswith("=?utf-8?b?")
    assert parse(raw)["Subject"] == subject


def test_an_ascii_subject_is_sent_as_written_and_folded_at_spaces() -> None:
    subject = "Thank you for your interest in Flowlane: " + "three things to read first " * 3
    subject = subject.strip()
    raw = build_mime(outgoing(subject=subject, locale="en"))
    assert_well_formed(raw)
    assert raw_headers(raw)["subject"] == subject
    assert parse(raw)["Subject"] == subject


@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=300))
@example("髙橋様へ🎉 ｶﾀｶﾅ　全角スペース")
@example("e\u0301 combining, \u2028 line separator")
def test_any_one_line_subject_survives_the_round_trip(subject: str) -> None:
    # any text but surrogates (not text) and line breaks (refused: a header is one line)
    raw = build_mime(outgoing(subject=subject))
    assert_well_formed(raw)
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda e: replace(e, to_address="a@example.jp\r\nBcc: b@example.jp"),
            id="header in To",
        ),
        pytest.param(lambda e: replace(e, to_address="Taro <a@example.jp>"), id="To not bare"),
        pytest.param(lambda e: replace(e, from_address="news"), id="From without an address"),
        pytest.param(
            lambda e: replace(e, unsubscribe_url="https://x.jp/u?t=a\r\nBcc: b"),
            id="CRLF in the unsubscribe URL",
        ),
        pytest.param(
            lambda e: replace(e, unsubscribe_url="https://x.jp/u?t=a>, <mailto:b@c.jp"),
            id="angle bracket in the unsubscribe URL",
        ),
    ],
)
def test_a_header_cannot_be_injected(change: Callable[[OutgoingEmail], OutgoingEmail]) -> None:
    with pytest.raises(ValueError, match=r"address|URL"):
        build_mime(change(outgoing()))


def test_a_subject_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="one line"):
        build_mime(outgoing(subject="件名\r\nBcc: b@example.jp"))


# -- subject templates ------------------------------------------------------------------------


def test_a_subject_template_is_compiled_once_and_rendered_per_lead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    compile_source = jinja2.Environment.from_string

    def counting(self: jinja2.Environment, source: str, *args: object) -> jinja2.Template:
        compiled.append(source)
        return compile_source(self, source, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja2.Environment, "from_string", counting)
    program = load_programs().get("welcome")
    assert program is not None
    step = program.step("welcome")
    renderer = EmailRenderer(SENDER)
    sato = japanese_lead().model_copy(update={"family_name": "佐藤", "name": "佐藤 花子"})
    subjects = [
        renderer.render(lead, program, step, 1, UNSUBSCRIBE).subject
        for lead in (japanese_lead(), sato, japanese_lead())
    ]
    assert compiled == [step.subject["ja"][1]]
    assert subjects[0].startswith("山田様、")
    assert subjects[1].startswith("佐藤様、")
    assert subjects[2] == subjects[0]
    # another variant is another template
    renderer.render(sato, program, step, 0, UNSUBSCRIBE)
    assert compiled == [step.subject["ja"][1], step.subject["ja"][0]]

"""Normalisation of what people type into Japanese web forms (shared.domain.normalize)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.domain.normalize import (
    JAPAN,
    NormalisationError,
    clean_folded,
    clean_line,
    clean_text,
    email_key,
    is_checked,
    normalize_phone,
    normalize_postcode,
    normalize_website,
    parse_local_time,
    split_name,
)


def rejection(clean: object, *args: object) -> str:
    with pytest.raises(NormalisationError) as caught:
        clean(*args)  # type: ignore[operator]
    return caught.value.code


# -- NFKC, trimming and collapsing --------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        pytest.param("ＡＢＣ株式会社", "ABC株式会社", id="full-width latin"),
        pytest.param("０３１２３４", "031234", id="full-width digits"),
        pytest.param("ｶﾌﾞｼｷｶﾞｲｼｬ", "カブシキガイシャ", id="half-width katakana with dakuten"),
        pytest.param("山田　太郎", "山田 太郎", id="ideographic space"),
        pytest.param("㈱サンプル", "(株)サンプル", id="parenthesised ideograph"),
        pytest.param("  山田   太郎  ", "山田 太郎", id="trimmed and collapsed"),
        pytest.param("営業\t部", "営業 部", id="tab collapsed"),
        pytest.param("R&D 1 < 2 <3", "R&D 1 < 2 <3", id="ampersand and lone less-than kept"),
    ],
)
def test_a_single_line_field_is_nfkc_normalised_trimmed_and_collapsed(
    typed: str, stored: str
) -> None:
    assert clean_line(typed, 200) == stored


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        pytest.param("山田\n太郎", "line_break", id="LF"),
        pytest.param("山田\r\n太郎", "line_break", id="CRLF"),
        pytest.param("山田\r太郎", "line_break", id="CR"),
        pytest.param("山田\u2028太郎", "control_char", id="unicode line separator"),
    ],
)
def test_a_single_line_field_rejects_line_breaks(typed: str, code: str) -> None:
    assert rejection(clean_line, typed, 100) == code


def test_a_folded_field_reads_its_line_breaks_as_spaces() -> None:
    assert clean_folded("東京都千代田区丸の内1-1-1\r\n丸の内ビル　5F", 200) == (
        "東京都千代田区丸の内1-1-1 丸の内ビル 5F"
    )
    assert clean_folded("営業本部\n第一営業部\n", 200) == "営業本部 第一営業部"
    assert rejection(clean_folded, "本社\n<script>", 200) == "markup"


def test_a_message_keeps_its_line_breaks_as_lf_and_trims_each_line() -> None:
    typed = "  資料請求です。  \r\n\r\nＡＩ   導入について\r  相談したい \n\n"

    assert clean_text(typed, 4000) == "資料請求です。\n\nAI 導入について\n相談したい"


CONTROL_CHARACTERS = [
    pytest.param("\x00", id="NUL"),
    pytest.param("\x07", id="BEL"),
    pytest.param("\x1b[31m", id="ANSI escape"),
    pytest.param("\x7f", id="DEL"),
    pytest.param("\u200b", id="zero-width space"),
    pytest.param("\u200f", id="right-to-left mark"),
    pytest.param("\ufeff", id="BOM"),
    pytest.param(
        "\x9b",
        id="C1 CSI",
    ),
]


@pytest.mark.parametrize("control", CONTROL_CHARACTERS)
@pytest.mark.parametrize("clean", [clean_line, clean_text], ids=["line", "text"])
def test_control_characters_are_rejected(clean: object, control: str) -> None:
    assert rejection(clean, f"株式会社{control}サンプル", 100) == "control_char"


MARKUP = [
    pytest.param("<script>alert(1)</script>", id="script"),
    pytest.param("<img src=x onerror=alert(1)>", id="img onerror"),
    pytest.param("</div>", id="closing tag"),
    pytest.param("< script>", id="space after bracket"),
    pytest.param("＜script＞", id="full-width brackets"),
    pytest.param("<?php echo 1; ?>", id="processing instruction"),
    pytest.param("<!DOCTYPE html>", id="doctype"),
    pytest.param(
        "<!-- hidden -->",
        id="html comment",
    ),
]


@pytest.mark.parametrize("markup", MARKUP)
@pytest.mark.parametrize("clean", [clean_line, clean_text], ids=["line", "text"])
def test_markup_is_rejected(clean: object, markup: str) -> None:
    assert rejection(clean, f"株式会社サンプル {markup}", 200) == "markup"


@pytest.mark.parametrize("clean", [clean_line, clean_text], ids=["line", "text"])
def test_a_value_at_the_length_limit_is_accepted_and_one_more_character_is_not(
    clean: object,
) -> None:
    assert clean("あ" * 50, 50) == "あ" * 50  # type: ignore[operator]
    assert rejection(clean, "あ" * 51, 50) == "too_long"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        pytest.param("ａ" * 50, "a" * 50, id="full-width folds"),
        pytest.param("a" + " " * 100 + "b", "a b", id="whitespace collapsed"),
    ],
)
def test_length_is_measured_after_normalisation(typed: str, stored: str) -> None:
    assert clean_line(typed, 50) == stored


def test_a_value_that_nfkc_expands_past_the_limit_is_too_long() -> None:
    assert len("㍿" * 13) == 13  # but NFKC makes each one 株式会社: 52 characters
    assert rejection(clean_line, "㍿" * 13, 50) == "too_long"


# -- phone numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        pytest.param("03-1234-5678（代表）", "03-1234-5678(代表)", id="note"),
        pytest.param("03-1234-5678 内線123", "03-1234-5678 内線123", id="内線"),
        pytest.param("03-1234-5678 ext.123", "03-1234-5678 ext.123", id="ext."),
        pytest.param("03-1234-5678 Ext 45", "03-1234-5678 Ext 45", id="Ext"),
        pytest.param("03-1234-5678 x12", "03-1234-5678 x12", id="x"),
        pytest.param("03-1234-5678 #9", "03-1234-5678 #9", id="hash"),
        pytest.param("０３－１２３４－５６７８［本社］", "03-1234-5678[本社]", id="square note"),
        pytest.param(
            "03-1234-5678（代表）内線１２３", "03-1234-5678(代表)内線123", id="note and extension"
        ),
        pytest.param("03.1234.5678", "03.1234.5678", id="dots"),
        pytest.param(
            "03-1234-5678（サポートセンター）",
            "03-1234-5678(サポートセンター)",
            id="a note with a long vowel mark",
        ),
        pytest.param(
            "03-1234-5678（内線123）", "03-1234-5678(内線123)", id="extension in brackets"
        ),
        pytest.param("03-1234-5678 内線：123", "03-1234-5678 内線:123", id="extension with colon"),
        pytest.param("03-1234-5678 (ext.123)", "03-1234-5678 (ext.123)", id="(ext.)"),
    ],
)
def test_what_a_card_writes_after_a_number_is_kept_but_not_dialled(
    typed: str, written: str
) -> None:
    assert normalize_phone(typed) == (written, "+81312345678")
    assert normalize_phone(written) == (written, "+81312345678")  # the stored form reads again


@pytest.mark.parametrize(
    ("typed", "written", "e164"),
    [
        pytest.param("０３－１２３４－５６７８", "03-1234-5678", "+81312345678", id="full-width"),
        pytest.param("03-1234-5678", "03-1234-5678", "+81312345678", id="hyphens"),
        pytest.param("0312345678", "0312345678", "+81312345678", id="digits only"),
        pytest.param("090ー1234ー5678", "090-1234-5678", "+819012345678", id="long-vowel dash"),
        pytest.param("090ｰ1234ｰ5678", "090-1234-5678", "+819012345678", id="half-width chōon"),
        pytest.param("03‐1234−5678", "03-1234-5678", "+81312345678", id="hyphen and minus"),
        pytest.param("+81 3 1234 5678", "+81 3 1234 5678", "+81312345678", id="international"),
        pytest.param("(03) 1234-5678", "(03) 1234-5678", "+81312345678", id="area code parens"),
        pytest.param(" 03  1234  5678 ", "03 1234 5678", "+81312345678", id="spaces collapsed"),
        pytest.param("0120-123-456", "0120-123-456", "+81120123456", id="toll free"),
        pytest.param("0044 20 7946 0958", "0044 20 7946 0958", "+442079460958", id="00 prefix"),
        pytest.param(
            "+81 (0)3-1234-5678",
            "+81 (0)3-1234-5678",
            "+81312345678",
            id="international with trunk zero",
        ),
    ],
)
def test_a_phone_number_is_kept_as_written_and_normalised_to_e164(
    typed: str, written: str, e164: str
) -> None:
    assert normalize_phone(typed) == (written, e164)


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="letters"),
        pytest.param("03-1234-567a", id="trailing letter"),
        pytest.param("内線123", id="an extension alone"),
        pytest.param("(代表)", id="a note alone"),
        pytest.param("03-1234-5678 (<b>)", id="markup in a note"),
        pytest.param("03-1234-5678 (\x00)", id="a control in a note"),
        pytest.param("03-1234-5678 内線1234567", id="an extension too long"),
        pytest.param("+", id="plus only"),
        pytest.param("---", id="dashes only"),
        pytest.param("0", id="too short"),
        pytest.param("1234-5678", id="local number without area code"),
        pytest.param("+81 3 1234 5678 9012 3456", id="more than 15 digits"),
        pytest.param("03-1234-5678<script>", id="markup"),
    ],
)
def test_a_phone_number_that_is_not_one_is_rejected(typed: str) -> None:
    assert rejection(normalize_phone, typed) == "invalid_phone"


# -- email key and checkboxes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["taro.yamada@example.co.jp", "Taro.Yamada@Example.co.jp", "TARO.YAMADA@EXAMPLE.CO.JP"],
)
def test_every_spelling_of_an_address_has_the_same_dedupe_key(spelling: str) -> None:
    assert email_key(spelling) == "taro.yamada@example.co.jp"


def test_different_addresses_have_different_dedupe_keys() -> None:
    assert email_key("taro@example.co.jp") != email_key("jiro@example.co.jp")


@pytest.mark.parametrize(
    "ticked",
    [
        *("1", "true", "TRUE", "on", " On ", "ＯＮ", "yes", "y", "checked", "agree", "はい"),
        # the checkbox's label sent as its value, as form builders do
        *("同意する", "同意します", "個人情報の取り扱いに同意します", "承諾する", "規約に了承"),
        *("メールマガジンを受け取る", "案内を希望する", "I agree", "agreed", "Accept", "✓", "☑"),
    ],
)
def test_a_ticked_checkbox_is_checked(ticked: str) -> None:
    assert is_checked(ticked)


@pytest.mark.parametrize(
    "unticked",
    [
        *("", " ", "0", "false", "off", "no", "いいえ", "2", "null"),
        *("同意しない", "同意しません", "不同意", "受け取らない", "案内は不要", "希望しない"),
        *("disagree", "I do not agree", "don't accept", "decline", "opt-out", "unsubscribe"),
    ],
)
def test_anything_else_is_not_checked(unticked: str) -> None:
    assert not is_checked(unticked)


# -- what business cards and badge scans carry ------------------------------------------------


@pytest.mark.parametrize(
    ("written", "parts"),
    [
        pytest.param("山田 太郎", ("山田", "太郎"), id="one space"),
        pytest.param("山田　太郎", ("山田", "太郎"), id="ideographic space"),
        pytest.param(" 髙橋  一郎 ", ("髙橋", "一郎"), id="trimmed, doubled space"),
        pytest.param("ヤマダ タロウ", ("ヤマダ", "タロウ"), id="katakana"),
        pytest.param("ｺﾊﾞﾔｼ ﾏｺﾄ", ("コバヤシ", "マコト"), id="half-width katakana"),
        pytest.param("佐々木 ヶ子", ("佐々木", "ヶ子"), id="iteration mark and small ke"),
        pytest.param("山田太郎", None, id="no space: where it splits is unknown"),
        pytest.param("山田 太郎 様", None, id="three parts"),
        pytest.param("Taro Yamada", None, id="latin: the order varies"),
        pytest.param("山田 Taro", None, id="mixed scripts"),
        pytest.param("", None, id="blank"),
    ],
)
def test_a_full_name_splits_only_where_that_is_certain(
    written: str, parts: tuple[str, str] | None
) -> None:
    assert split_name(written) == parts


@pytest.mark.parametrize(
    "typed",
    [
        "123-4567",
        "〒123-4567",
        "〒 123-4567",
        "１２３－４５６７",
        "〒１２３４５６７",
        "1234567",
        "123 4567",
        "123ー4567",
    ],
)
def test_a_postcode_is_stored_as_three_dash_four_digits(typed: str) -> None:
    assert normalize_postcode(typed) == "123-4567"


@pytest.mark.parametrize("typed", ["123-456", "12345678", "abc-defg", "1234-567", "〒", ""])
def test_a_postcode_that_is_not_seven_digits_is_rejected(typed: str) -> None:
    assert rejection(normalize_postcode, typed) == "invalid_postcode"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://www.example.co.jp/", "https://www.example.co.jp/"),
        ("http://example.jp", "http://example.jp"),
        ("www.example.co.jp", "https://www.example.co.jp"),
        ("ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏ．ｊｐ", "https://www.example.co.jp"),
        ("example.co.jp/recruit", "https://example.co.jp/recruit"),
    ],
)
def test_a_website_is_an_http_url_and_a_bare_host_gets_https(typed: str, stored: str) -> None:
    assert normalize_website(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "javascript:alert(1)",
        "ftp://example.co.jp",
        "localhost",
        "mailto:taro@example.co.jp",
        "https://user@example.co.jp",
        "https://exa mple.co.jp",
        "https://[::1",
    ],
)
def test_a_website_that_is_not_one_is_rejected(typed: str) -> None:
    assert rejection(normalize_website, typed) == "invalid_url"


@pytest.mark.parametrize(
    ("written", "moment"),
    [
        ("2026/10/15", datetime(2026, 10, 15, tzinfo=JAPAN)),
        ("2026-10-15", datetime(2026, 10, 15, tzinfo=JAPAN)),
        ("2026.10.5", datetime(2026, 10, 5, tzinfo=JAPAN)),
        ("2026年10月15日", datetime(2026, 10, 15, tzinfo=JAPAN)),
        ("２０２６／１０／１５", datetime(2026, 10, 15, tzinfo=JAPAN)),
        ("2026/10/15 9:05", datetime(2026, 10, 15, 9, 5, tzinfo=JAPAN)),
        ("2026-11-18 10:23:45", datetime(2026, 11, 18, 10, 23, 45, tzinfo=JAPAN)),
        ("2026-11-18T10:23:45", datetime(2026, 11, 18, 10, 23, 45, tzinfo=JAPAN)),
        (
            "2026-11-18T01:23:45+00:00",
            datetime(2026, 11, 18, 1, 23, 45, tzinfo=UTC),
        ),
        (
            "2026-11-18T10:23:45-05:00",
            datetime(2026, 11, 18, 10, 23, 45, tzinfo=timezone(timedelta(hours=-5))),
        ),
    ],
)
def test_a_date_met_is_read_in_japan_unless_it_carries_an_offset(
    written: str, moment: datetime
) -> None:
    parsed = parse_local_time(written)
    assert parsed == moment
    assert parsed.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize("written", ["2026/13/01", "2026/02/30", "0000/00/00", "昨日", "10/15", ""])
def test_a_date_that_is_not_one_is_rejected(written: str) -> None:
    assert rejection(parse_local_time, written) == "invalid_date"

"""How a list file's bytes become text (``infra/cli/tables.py``), as Excel writes them."""

from __future__ import annotations

import pytest

from infra.cli.tables import decode

HEADER = "会社名,メールアドレス\r\n株式会社サンプル,taro@example.co.jp\r\n"


@pytest.mark.parametrize("named", [None, "utf-8", "utf-8-sig", "UTF8"])
def test_excels_csv_utf_8_reads_without_its_bom_whether_or_not_utf_8_is_named(
    named: str | None,
) -> None:
    text, _ = decode(b"\xef\xbb\xbf" + HEADER.encode(), named)
    assert text == HEADER
    assert text.split(",", 1)[0] == "会社名"


@pytest.mark.parametrize("named", [None, "cp932", "shift_jis"])
def test_excels_japanese_csv_reads_as_cp932(named: str | None) -> None:
    text, used = decode(HEADER.encode("cp932"), named)
    assert text == HEADER
    assert used == (named or "cp932")

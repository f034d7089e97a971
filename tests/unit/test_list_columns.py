"""The list import's column dictionary (shared/content/import_columns.yaml): the shipped
file loads, reads the headers of each export the import supports, and a broken file
fails with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.lists import (
    FIELDS,
    IMPORT_COLUMNS_FILE,
    NOT_KEPT,
    RESERVED,
    ColumnDictionary,
    header_key,
    load_columns,
)
from shared.yamlfile import read_yaml

# The header rows of the three exports (tests/fixtures/lists), read as the import reads them.
SANSAN = {
    "名刺ID": NOT_KEPT,
    "会社名": "company",
    "部署名": "department",
    "役職": "job_title",
    "氏名": "name",
    "姓": "family_name",
    "名": "given_name",
    "メールアドレス": "email",
    "郵便番号": "postcode",
    "住所": "address",
    "電話番号": "phone",
    "直通電話番号": "phone_direct",
    "携帯電話番号": "mobile",
    "FAX番号": NOT_KEPT,
    "URL": "website",
    "名刺交換日": "touched_at",
    "名刺所有者": "sales_owner",
    "登録日": NOT_KEPT,
    "タグ": NOT_KEPT,
}
EIGHT = {
    "会社名": "company",
    "部署名": "department",
    "役職": "job_title",
    "姓": "family_name",
    "名": "given_name",
    "e-mail": "email",
    "郵便番号": "postcode",
    "住所": "address",
    "TEL会社": "phone",
    "TEL部門": "phone_department",
    "TEL直通": "phone_direct",
    "Fax": NOT_KEPT,
    "携帯電話": "mobile",
    "URL": "website",
    "名刺交換日": "touched_at",
}
BADGE_SCAN = {
    "来場者ID": NOT_KEPT,
    "来場日時": "touched_at",
    "会社名": "company",
    "部署": "department",
    "役職": "job_title",
    "氏名": "name",
    "フリガナ": "name_kana",
    "メールアドレス": "email",
    "電話番号": "phone",
    "携帯電話番号": "mobile",
    "郵便番号": "postcode",
    "都道府県": "prefecture",
    "住所1": "address",
    "住所2": "address",
    "業種": "industry",
    "従業員数": "company_size",
    "興味のある製品": "interests",
    "対応者": "sales_owner",
    "備考": "message",
}


@pytest.fixture(scope="module")
def dictionary() -> ColumnDictionary:
    return load_columns()


@pytest.mark.parametrize(
    "export", [SANSAN, EIGHT, BADGE_SCAN], ids=["sansan", "eight", "badge scan"]
)
def test_every_column_of_each_export_is_read_as_its_field(
    dictionary: ColumnDictionary, export: dict[str, str]
) -> None:
    assert {header: dictionary.field_for(header) for header in export} == export


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("氏名（姓）", "family_name"),
        ("氏名[姓]", "family_name"),
        ("氏名 姓", "family_name"),
        ("ｍａｉｌ", "email"),  # a form builder's alias, in full width
        ("Email", "email"),
        ("E-Mail", "email"),
        ("e-mail(1)", "email"),
        ("e-mail(2)", "email"),
        ("Address 2", "address"),
        ("Last Name", "family_name"),
        ("company_name", "company"),
        ("utm_source", "utm_source"),
        ("携帯", "mobile"),
        ("〒", "postcode"),
    ],
)
def test_headers_compare_without_width_case_brackets_spaces_or_a_trailing_number(
    dictionary: ColumnDictionary, header: str, field: str
) -> None:
    assert dictionary.field_for(header) == field


@pytest.mark.parametrize(
    "header", ["担当者", "メモ欄", "展示会2026", "アンケート1", "form_type", "source"]
)
def test_a_header_the_dictionary_does_not_know_is_unknown(
    dictionary: ColumnDictionary, header: str
) -> None:
    # 担当者 is the lead's contact in one list and our booth staff in another: --map says.
    assert dictionary.field_for(header) is None


def test_the_shipped_dictionary_names_only_fields_a_column_may_fill() -> None:
    document = read_yaml(IMPORT_COLUMNS_FILE)
    assert set(document["fields"]) <= FIELDS
    assert not set(document["fields"]) & RESERVED
    assert set(document["joined"]) <= set(document["fields"])
    assert all(isinstance(h, str) for h in document["ignore"])


def test_header_keys_fold_what_people_type_differently() -> None:
    assert header_key("ＴＥＬ会社") == header_key("tel 会社") == "tel会社"
    assert header_key("【氏名】（フリガナ）") == "氏名フリガナ"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "import_columns.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fields:\n  salary: [給与]\n", "not a field a column may fill: salary"),
        ("fields:\n  source: [流入元]\n", "not a field a column may fill: source"),
        ("fields:\n  email: [メール]\njoined: [fax]\n", "not a field a column may fill: fax"),
        (
            "fields:\n  phone: [TEL]\n  mobile: [ＴＥＬ]\n",
            "headers listed twice: TEL (phone) and ＴＥＬ (mobile)",
        ),
        (
            "fields:\n  phone: [FAX]\nignore: [fax]\n",
            "headers listed twice: FAX (phone) and fax (not kept)",
        ),
        ("fields:\n  email: ['（）']\n", "headers with nothing to compare"),
        ("fields:\n  email: [メール]\ncolumns: []\n", "Extra inputs are not permitted"),
    ],
)
def test_a_broken_dictionary_fails_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=r"import_columns\.yaml") as caught:
        load_columns(write(tmp_path, text))
    assert message in str(caught.value)

"""Lead lists as operators have them: CSV from Excel (UTF-8 with or without a BOM, or
Shift_JIS/CP932) and ``.xlsx`` workbooks, with Japanese or English column headers.

Rows come out as the multi-dict of strings that ``parse_submission`` reads, numbered
as the spreadsheet numbers them (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shared.submission import ALIASES, FormSubmission

# Header (normalised with ``header_key``) -> form field.
HEADERS: dict[str, str] = {
    # Japanese
    "会社名": "company",
    "企業名": "company",
    "法人名": "company",
    "氏名": "name",
    "お名前": "name",
    "名前": "name",
    "担当者名": "name",
    "姓": "family_name",
    "名": "given_name",
    "メールアドレス": "email",
    "メール": "email",
    "eメール": "email",
    "電話番号": "phone",
    "電話": "phone",
    "tel": "phone",
    "部署": "department",
    "部署名": "department",
    "所属部署": "department",
    "役職": "job_title",
    "役職名": "job_title",
    "業種": "industry",
    "従業員数": "company_size",
    "従業員規模": "company_size",
    "企業規模": "company_size",
    "都道府県": "prefecture",
    "国": "country",
    "興味": "interests",
    "興味のある分野": "interests",
    "関心分野": "interests",
    "備考": "message",
    "メモ": "message",
    "お問い合わせ内容": "message",
    # English (besides the form's own field names and aliases)
    "email": "email",
    "emailaddress": "email",
    "company": "company",
    "companyname": "company",
    "name": "name",
    "fullname": "name",
    "firstname": "given_name",
    "givenname": "given_name",
    "lastname": "family_name",
    "familyname": "family_name",
    "surname": "family_name",
    "phone": "phone",
    "phonenumber": "phone",
    "department": "department",
    "title": "job_title",
    "jobtitle": "job_title",
    "industry": "industry",
    "companysize": "company_size",
    "employees": "company_size",
    "prefecture": "prefecture",
    "country": "country",
    "interests": "interests",
    "notes": "message",
    "note": "message",
    "memo": "message",
    "message": "message",
}

# Set by the import's options, never by a column.
RESERVED = frozenset({"form_type", "consent", "consent_version", "source"})
IGNORE = "-"


def header_key(text: str) -> str:
    """NFKC (全角 → 半角), lower case, without spaces, ``-`` and ``_``."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return "".join(ch for ch in text if not ch.isspace() and ch not in "-_")


def _field_names() -> dict[str, str]:
    names = {header_key(f): f for f in FormSubmission.model_fields}
    names.update({header_key(alias): field for alias, field in ALIASES.items()})
    names.update(HEADERS)
    return {k: v for k, v in names.items() if v not in RESERVED}


KNOWN = _field_names()


class TableError(Exception):
    """The file cannot be read as a lead list."""


def parse_mapping(entries: Iterable[str]) -> dict[str, str]:
    """``--map 'Header=field'`` options; ``Header=-`` ignores a column."""
    fields = set(FormSubmission.model_fields) - RESERVED
    mapping: dict[str, str] = {}
    for entry in entries:
        header, sep, field = entry.rpartition("=")
        field = field.strip()
        field = ALIASES.get(field, field)
        if not sep or not header.strip():
            raise TableError(f"--map expects 'Header=field', got {entry!r}")
        if field != IGNORE and field not in fields:
            raise TableError(f"--map {entry!r}: unknown field {field!r}")
        mapping[header_key(header)] = field
    return mapping


@dataclass(frozen=True)
class Columns:
    """Which column feeds which field."""

    fields: tuple[str | None, ...]  # per column; None: ignored
    ignored: tuple[str, ...]  # headers not used

    @classmethod
    def of(cls, headers: Sequence[str], overrides: Mapping[str, str]) -> Columns:
        fields: list[str | None] = []
        ignored: list[str] = []
        for header in headers:
            key = header_key(header)
            field = overrides.get(key, KNOWN.get(key))
            if field == IGNORE or field is None:
                fields.append(None)
                if header.strip():
                    ignored.append(header)
            else:
                fields.append(field)
        if "email" not in fields:
            raise TableError(
                "no email column (メールアドレス / Email); name it with --map 'Header=email'"
            )
        return cls(tuple(fields), tuple(ignored))

    def fields_of(self, cells: Sequence[str]) -> dict[str, list[str]]:
        row: dict[str, list[str]] = {}
        for field, value in zip(self.fields, cells, strict=False):
            if field is not None and value.strip():
                row.setdefault(field, []).append(value)
        return row


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (spreadsheet row number, cells)
    encoding: str


def read_table(path: Path, encoding: str | None = None) -> Table:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _read_xlsx(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return _read_csv(path.read_bytes(), encoding)
    raise TableError(f"{path.name}: expected a .csv or .xlsx file")


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text and the encoding it was in: UTF-8 (BOM or not), UTF-16 with a BOM
    (Excel's Unicode text), else CP932 (Excel's Japanese CSV; a superset of Shift_JIS)."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise TableError(f"cannot read the file as {encoding}: {exc}") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    for candidate in ("utf-8", "cp932"):
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise TableError("cannot tell the file's encoding; pass --encoding")


def _read_csv(data: bytes, encoding: str | None) -> Table:
    text, used = decode(data, encoding)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = [(number, tuple(cells)) for number, cells in enumerate(reader, start=1)]
    return _table(rows, used)


def _table(rows: list[tuple[int, tuple[str, ...]]], encoding: str) -> Table:
    if not rows:
        raise TableError("the file is empty")
    (_, headers), *data = rows
    return Table(tuple(h.strip() for h in headers), tuple(data), encoding)


def _cell(value: Any, phone: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and phone and len(str(value)) in (9, 10):
        # Excel keeps 0312345678 typed into a number cell as 312345678: a phone
        # column's 9- and 10-digit numbers get their Japanese trunk prefix 0 back.
        return f"0{value}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _read_xlsx(path: Path) -> Table:
    try:
        from openpyxl import load_workbook
    except ImportError as exc:  # an optional dependency: pip install 'lead-nurture[cli]'
        raise TableError("reading .xlsx needs openpyxl: pip install openpyxl") from exc
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise TableError(f"{path.name}: not a readable .xlsx workbook ({exc})") from exc
    try:
        values = list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
    headers = [_cell(v) for v in values[0]] if values else []
    phone = {i for i, h in enumerate(headers) if KNOWN.get(header_key(h)) == "phone"}
    rows = [
        (number, tuple(_cell(v, i in phone) for i, v in enumerate(cells)))
        for number, cells in enumerate(values, start=1)
    ]
    return _table(rows, "xlsx")


def blank(cells: Sequence[str]) -> bool:
    return not any(c.strip() for c in cells)

"""Lead lists as operators have them: CSV from Excel or a card service's export (UTF-8
with or without a BOM, or Shift_JIS/CP932) and ``.xlsx`` workbooks, with Japanese or
English column headers read through the column dictionary (``shared.domain.lists``), which
``--map`` overrides.

Rows come out as the multi-dict of strings that ``parse_submission`` reads, numbered
as the spreadsheet numbers them (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from shared.domain.lists import FIELDS, NOT_KEPT, ColumnDictionary, header_key
from shared.domain.normalize import nfkc
from shared.web.submission import ALIASES

IGNORE = "-"  # ``--map 'Header=-'``
EMAIL_SEPARATORS = re.compile(r"[\s,;/、]+")
PHONE_FIELDS = frozenset({"phone", "phone_department", "phone_direct", "mobile"})


class TableError(Exception):
    """The file cannot be read as a lead list."""


def parse_mapping(
    entries: Iterable[str],
    fields: Collection[str] = FIELDS,
    aliases: Mapping[str, str] = ALIASES,
) -> dict[str, str]:
    """``--map 'Header=field'`` options (a field of ``fields``, or one of its
    ``aliases``); ``Header=-`` ignores a column. Header keys as ``header_key`` compares."""
    mapping: dict[str, str] = {}
    for entry in entries:
        header, sep, field = entry.rpartition("=")
        field = field.strip()
        field = aliases.get(field, field)
        if not sep or not header.strip():
            raise TableError(f"--map expects 'Header=field', got {entry!r}")
        if field != IGNORE and field not in fields:
            known = ", ".join(sorted(fields))
            raise TableError(
                f"--map expects 'Header=field' with a known field: {entry!r} has unknown "
                f"field {field!r} (fields: {known})"
            )
        mapping[header_key(header)] = field
    return mapping


class Reading(StrEnum):
    """How a column came to be read as it is."""

    DICTIONARY = "dictionary"  # import_columns.yaml, or the form's own field name
    MAP = "map"  # --map HEADER=FIELD
    NOT_KEPT = "not_kept"  # the dictionary names it as a column a lead does not keep
    MAP_IGNORED = "map_ignored"  # --map HEADER=-
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Column:
    header: str
    field: str | None  # None: ignored
    reading: Reading


@dataclass(frozen=True)
class Columns:
    """Which column feeds which field."""

    columns: tuple[Column, ...]
    joined: frozenset[str] = frozenset()  # fields whose columns are joined

    @staticmethod
    def has_email(
        headers: Sequence[str], overrides: Mapping[str, str], dictionary: ColumnDictionary
    ) -> bool:
        return any(_column(h, overrides, dictionary).field == "email" for h in headers)

    @classmethod
    def of(
        cls, headers: Sequence[str], overrides: Mapping[str, str], dictionary: ColumnDictionary
    ) -> Columns:
        columns = [_column(header, overrides, dictionary) for header in headers]
        if all(c.field != "email" for c in columns):
            raise TableError(
                "no email column (メールアドレス / Email); name it with --map 'Header=email'"
            )
        return cls(tuple(columns), dictionary.joined)

    @property
    def fields(self) -> tuple[str | None, ...]:
        return tuple(c.field for c in self.columns)

    def fields_of(self, cells: Sequence[str]) -> dict[str, list[str]]:
        row: dict[str, list[str]] = {}
        for field, value in zip(self.fields, cells, strict=False):
            if field is None or not value.strip():
                continue
            if field == "email":
                # Cards carry a second address in the same cell (a@x.jp; b@x.jp): each
                # is a value, and the form's rule takes the first.
                values = [v for v in EMAIL_SEPARATORS.split(nfkc(value)) if v]
                row.setdefault(field, []).extend(values)
            elif field in self.joined and field in row:
                row[field] = [f"{row[field][0]} {value.strip()}"]
            else:
                row.setdefault(field, []).append(_as_typed(field, value))
        return row


def _as_typed(field: str, value: str) -> str:
    """Put back the leading zero Excel drops from a number cell, in the workbook and in
    the CSV it saves: it keeps 0312345678 as 312345678 and postcode 0600001 as 600001."""
    digits = value.strip()
    if not digits.isascii() or not digits.isdigit() or digits.startswith("0"):
        return value
    if field in PHONE_FIELDS and len(digits) in (9, 10):
        return f"0{digits}"  # Japanese national numbers have a trunk prefix 0
    if field == "postcode" and len(digits) < 7:
        return digits.zfill(7)
    return value


def _column(header: str, overrides: Mapping[str, str], dictionary: ColumnDictionary) -> Column:
    key = header_key(header)
    if key in overrides:
        field = overrides[key]
        if field == IGNORE:
            return Column(header, None, Reading.MAP_IGNORED)
        return Column(header, field, Reading.MAP)
    found = dictionary.field_for(header) if key else None
    if found is None:
        return Column(header, None, Reading.UNKNOWN)
    if found == NOT_KEPT:
        return Column(header, None, Reading.NOT_KEPT)
    return Column(header, found, Reading.DICTIONARY)


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (spreadsheet row number, cells)
    encoding: str
    header_row: int = 1  # the spreadsheet row number of the headers

    def headed(self, fits: Callable[[Sequence[str]], bool], within: int = 10) -> Table:
        """The table from its header row: the first of its first rows that ``fits``.
        Spreadsheets often open with a title (「展示会来場者リスト」), a date or a blank
        line above the headers. With none that fits, the first row stays the headers
        (and the caller says what is missing)."""
        if fits(self.headers):
            return self
        for index, (number, cells) in enumerate(self.rows[: within - 1]):
            # A row holding an address is a lead, whatever its other cells say (メール as
            # the way they would like to be contacted).
            if not any("@" in cell for cell in cells) and fits(cells):
                headers = tuple(c.strip() for c in cells)
                return Table(headers, self.rows[index + 1 :], self.encoding, number)
        return self


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
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise TableError(f"cannot read the file as {encoding}: {exc}") from exc
        # Excel's "CSV UTF-8" starts with a BOM even where UTF-8 is named: it is not text
        # of the first header.
        return text.removeprefix("\ufeff"), encoding
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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
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
    rows = [(number, tuple(map(_cell, cells))) for number, cells in enumerate(values, start=1)]
    return _table(rows, "xlsx")


def blank(cells: Sequence[str]) -> bool:
    return not any(c.strip() for c in cells)

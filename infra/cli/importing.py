"""``lead-nurture import`` and ``attendance``: a list file read as rows of lead fields,
imported by ``shared.services.list_import``, and what it did printed for the operator."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from shared.services.list_import import ImportOptions, ImportSummary, split_full_name
from shared.web.submission import (
    LABELS,
    FieldError,
)

from .tables import Column, Columns, Reading, Table, blank


def form_id_for(path: Path) -> str:
    """``import:<file name>``, reduced to characters a form id may carry."""
    name = re.sub(r"[^\w.\-]", "_", path.name)
    return f"import:{name}"[:100]


def file_rows(table: Table, columns: Columns) -> list[tuple[int, dict[str, list[str]] | None]]:
    """Each row's number and its fields as the columns read them (None: a blank row)."""
    return [
        (number, None if blank(cells) else columns.fields_of(cells)) for number, cells in table.rows
    ]


def print_columns(
    path: Path, table: Table, columns: Columns, options: ImportOptions, out: TextIO
) -> None:
    """Before anything is written: each column, how many rows have a value in it, and
    what it is read as, or why it is ignored."""
    title = f"{path.name} ({table.encoding}, {len(table.rows)} rows)"
    print(f"{'Dry run: ' if options.dry_run else ''}import of {title}", file=out)
    if table.header_row != 1:
        print(f"  見出し行 / header row: {table.header_row} (rows above it skipped)", file=out)
    rows = [cells for _, cells in table.rows if not blank(cells)]
    splits = sum(split_full_name(columns.fields_of(cells)) for cells in rows)
    print("列の読み取り / How each column is read (値のある行 / rows with a value):", file=out)
    headers = [c.header or "(空欄 / blank)" for c in columns.columns]
    width = max((display_width(h) for h in headers), default=0)
    for index, (column, header) in enumerate(zip(columns.columns, headers, strict=True)):
        filled = sum(1 for cells in rows if index < len(cells) and cells[index].strip())
        reading = read_as(column)
        if column.field == "name" and splits:
            reading += f"; 姓と名に分割 / split into family and given name: {splits}"
        padding = " " * (width - display_width(header))
        print(f"  {header}{padding}  {filled:>5}/{len(rows)}  → {reading}", file=out)


def read_as(column: Column) -> str:
    if column.field is not None:
        ja, en = LABELS.get(column.field, (column.field, column.field))
        by = " (--map)" if column.reading is Reading.MAP else ""
        return f"{column.field}（{ja} / {en}）{by}"
    if column.reading is Reading.NOT_KEPT:
        return "無視: リードに持たない列 / ignored: not kept on a lead"
    if column.reading is Reading.MAP_IGNORED:
        return "無視 / ignored (--map)"
    if not column.header.strip():
        return "無視 / ignored"
    return f"無視: 不明な列 / ignored: unknown column (--map '{column.header}=FIELD' reads it)"


def display_width(text: str) -> int:
    """Columns a terminal gives the text: two for each wide (Japanese) character."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def print_summary(summary: ImportSummary, options: ImportOptions, out: TextIO) -> None:
    verb = "would be " if options.dry_run else ""
    heading = (
        "結果（書き込みなし）/ Outcome (nothing written)" if options.dry_run else "結果 / Outcome"
    )
    print(f"{heading}:", file=out)
    lines = [
        (f"{verb}created", summary.created),
        (f"{verb}merged (updated)", summary.merged),
        ("unchanged (already imported)", summary.unchanged),
        ("rejected", len(summary.rejected)),
        ("blank rows skipped", summary.blank),
    ]
    width = max(len(label) for label, _ in lines)
    for label, count in lines:
        print(f"  {label:<{width}}  {count:>6}", file=out)
    if summary.kept_unsubscribed:
        print(
            f"  {summary.kept_unsubscribed} row(s) for unsubscribed leads: consent not renewed",
            file=out,
        )
    if summary.several_emails:
        rows = ", ".join(map(str, summary.several_emails))
        print(
            f"  メールアドレスが複数ある行は最初のアドレスで取り込み / rows with more than one "
            f"address, imported with the first: {rows}",
            file=out,
        )
    if summary.dropped:
        print("取り込んだが読めない項目を除いた行 / Rows imported without a field:", file=out)
        for number, errors in summary.dropped:
            print(f"  row {number}: {describe(errors)}", file=out)
    if summary.rejected:
        print("Rejected rows:", file=out)
        for number, errors in summary.rejected:
            print(f"  row {number}: {describe(errors)}", file=out)


def describe(errors: Iterable[FieldError]) -> str:
    parts = []
    for error in errors:
        label = LABELS.get(error.field, (error.field, error.field))[0]
        parts.append(f"{label} ({error.field}): {error.message_ja} [{error.code}]")
    return "; ".join(parts)

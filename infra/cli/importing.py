"""Import a lead list (exhibition business cards, seminar registrations) through the
same validation, dedupe/merge and consent records as the web form.

Re-importing a file is harmless: a row whose lead already says everything the row says
(same profile, interests, source and consent) is left alone, so a second run creates
nothing, merges nothing and adds no activity, consent record or score. A lead that has
unsubscribed is never opted back in by a list: its rows merge without consent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from shared.capture import LeadCapture, RequestInfo, consent_of, merge, touch_of
from shared.clock import Clock
from shared.leads import FormType, Lead
from shared.normalize import email_key, split_name
from shared.repository import LeadRepository
from shared.submission import (
    LABELS,
    FieldError,
    FormSubmission,
    InvalidSubmission,
    parse_submission,
)

from .tables import Column, Columns, Reading, Table, blank

USER_AGENT = "lead-nurture-cli import"
# What a merge changes on every post, whatever the post says.
_VOLATILE = {"last_touch", "updated_at", "version", "consent", "unsubscribed"}


@dataclass(frozen=True)
class ImportOptions:
    form_type: FormType
    source: str | None = None
    consent_source: str | None = None  # the consent wording version; None: no consent
    consent_required_for: tuple[FormType, ...] = ()
    dry_run: bool = False
    # What every row's form names: an attendee list's event (``lead-nurture attendance``).
    asset: str | None = None


@dataclass
class ImportSummary:
    rows: int = 0
    created: int = 0
    merged: int = 0
    unchanged: int = 0
    blank: int = 0
    kept_unsubscribed: int = 0
    rejected: list[tuple[int, tuple[FieldError, ...]]] = field(default_factory=list)
    several_emails: list[int] = field(default_factory=list)  # row numbers

    @property
    def ok(self) -> bool:
        return not self.rejected


def form_id_for(path: Path) -> str:
    """``import:<file name>``, reduced to characters a form id may carry."""
    name = re.sub(r"[^\w.\-]", "_", path.name)
    return f"import:{name}"[:100]


def split_full_name(fields: dict[str, list[str]]) -> bool:
    """Fill family and given name from a full-name column where that is certain (one
    space between two names in Japanese script); True if it did."""
    if "family_name" in fields or "given_name" in fields or "name" not in fields:
        return False
    parts = split_name(fields["name"][0])
    if parts is None:
        return False
    fields["family_name"], fields["given_name"] = [parts[0]], [parts[1]]
    return True


def row_fields(
    columns: Columns, cells: tuple[str, ...], options: ImportOptions, form_id: str
) -> dict[str, list[str]]:
    fields = columns.fields_of(cells)
    split_full_name(fields)
    fields["form_type"] = [options.form_type.value]
    fields["form_id"] = [form_id]
    if options.asset:
        fields["asset"] = [options.asset]
    if options.source:
        fields["source"] = [options.source]
    if options.consent_source:
        fields["consent"] = ["true"]
        fields["consent_version"] = [options.consent_source]
    return fields


def without_consent(submission: FormSubmission) -> FormSubmission:
    return submission.model_copy(update={"consent": False, "consent_version": None})


def adds_nothing(existing: Lead, submission: FormSubmission, clock: Clock, version: str) -> bool:
    """True if merging the row would leave the lead as it is (a re-imported row)."""
    now = clock.now()
    request = RequestInfo(user_agent=USER_AGENT)
    touch = touch_of(submission, now, request)
    consent = consent_of(submission, now, request, version)
    merged = merge(existing, submission, touch, consent)
    if merged.model_dump(exclude=_VOLATILE) != existing.model_dump(exclude=_VOLATILE):
        return False
    last = existing.last_touch
    same_touch = (
        last.source == touch.source
        and last.form_type == touch.form_type
        and last.asset == touch.asset
        and last.utm_campaign == touch.utm_campaign
    )
    if not consent.given:
        return same_touch
    recorded = existing.consent
    return (
        same_touch
        and recorded.opted_in
        and recorded.wording_version == consent.wording_version
        and not existing.unsubscribed
    )


class LeadImport:
    def __init__(
        self,
        repository: LeadRepository,
        capture: LeadCapture,
        clock: Clock,
        consent_version: str,
    ) -> None:
        self._repository = repository
        self._capture = capture
        self._clock = clock
        self._consent_version = consent_version

    def run(
        self,
        table: Table,
        columns: Columns,
        options: ImportOptions,
        form_id: str,
        progress: Callable[[int, int], None] = lambda done, total: None,
    ) -> ImportSummary:
        summary = ImportSummary()
        seen: set[str] = set()  # addresses this run has created or merged (dry run)
        total = len(table.rows)
        for done, (number, cells) in enumerate(table.rows, start=1):
            progress(done, total)
            if blank(cells):
                summary.blank += 1
                continue
            summary.rows += 1
            fields = row_fields(columns, cells, options, form_id)
            if len({email_key(e) for e in fields.get("email", [])}) > 1:
                summary.several_emails.append(number)
            try:
                submission = parse_submission(
                    fields, consent_required_for=options.consent_required_for, listed=True
                )
            except InvalidSubmission as exc:
                summary.rejected.append((number, exc.errors))
                continue
            existing = self._repository.find_by_email(submission.email)
            if existing is not None and existing.unsubscribed and submission.consent:
                submission = without_consent(submission)
                summary.kept_unsubscribed += 1
            key = email_key(submission.email)
            if existing is not None and adds_nothing(
                existing, submission, self._clock, self._consent_version
            ):
                summary.unchanged += 1
            elif options.dry_run:
                if existing is None and key not in seen:
                    summary.created += 1
                else:
                    summary.merged += 1
            else:
                result = self._capture.capture(submission, RequestInfo(user_agent=USER_AGENT))
                if result.created:
                    summary.created += 1
                else:
                    summary.merged += 1
            seen.add(key)
        return summary


def print_columns(
    path: Path, table: Table, columns: Columns, options: ImportOptions, out: TextIO
) -> None:
    """Before anything is written: each column, how many rows have a value in it, and
    what it is read as, or why it is ignored."""
    title = f"{path.name} ({table.encoding}, {len(table.rows)} rows)"
    print(f"{'Dry run: ' if options.dry_run else ''}import of {title}", file=out)
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

"""Importing a lead list (exhibition business cards, seminar registrations, an attendee
list) through the same validation, dedupe/merge and consent records as the web form.
The rows come as their columns read them (``shared.domain.lists`` says which column is which
field; the operator CLI reads the file).

Re-importing a file is harmless: a row whose lead already says everything the row says
(same profile, interests, source and consent) is left alone, so a second run creates
nothing, merges nothing and adds no activity, consent record or score. A lead that has
unsubscribed is never opted back in by a list: its rows merge without consent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.domain.clock import Clock
from shared.domain.leads import FormType, Lead
from shared.domain.normalize import email_key, nfkc, split_name, unsafe
from shared.ports import LeadRepository
from shared.services.capture import LeadCapture, RequestInfo, consent_of, merge, touch_of
from shared.web.submission import (
    ALIASES,
    FieldError,
    FormSubmission,
    InvalidSubmission,
    parse_submission,
)

USER_AGENT = "lead-nurture-cli import"
# What a row cannot be imported without when it is wrong (the address, and what the
# import's options say of every row); any other field written in a way that cannot be
# read (a card's phone "TELなし", a postcode cut short) is left out and the row kept.
# Markup and control characters in any field still refuse the row: they say the file
# holds more than a list's values.
_ESSENTIAL = frozenset(
    {"email", "consent", "consent_version", "form_type", "form_id", "source", "asset"}
)
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
    # Rows imported without the fields that were wrong (row number, what was wrong).
    dropped: list[tuple[int, tuple[FieldError, ...]]] = field(default_factory=list)
    several_emails: list[int] = field(default_factory=list)  # row numbers

    @property
    def ok(self) -> bool:
        return not self.rejected


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
    fields: dict[str, list[str]], options: ImportOptions, form_id: str
) -> dict[str, list[str]]:
    """A row's fields (as its columns read) with what the import's options say."""
    fields = {name: list(values) for name, values in fields.items()}
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


def parse_row(
    fields: dict[str, list[str]], options: ImportOptions
) -> tuple[FormSubmission, tuple[FieldError, ...]]:
    """A row through the form's validation; a wrong field that is not essential is left
    out, and said. Raises InvalidSubmission when an essential one is wrong."""
    try:
        return parse_submission(
            fields, consent_required_for=options.consent_required_for, listed=True
        ), ()
    except InvalidSubmission as exc:
        wrong = exc.errors
        if any(error.field in _ESSENTIAL for error in wrong):
            raise
    left_out = {error.field for error in wrong}
    values = {ALIASES.get(n, n): v for n, v in fields.items()}
    unsafe_values = [
        FieldError(name, code)
        for name in sorted(left_out)
        if (code := next(filter(None, (unsafe(nfkc(v)) for v in values.get(name, []))), None))
    ]
    if unsafe_values:
        raise InvalidSubmission(unsafe_values)
    kept = {name: v for name, v in fields.items() if ALIASES.get(name, name) not in left_out}
    submission = parse_submission(
        kept, consent_required_for=options.consent_required_for, listed=True
    )
    return submission, wrong


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
        rows: Sequence[tuple[int, dict[str, list[str]] | None]],
        options: ImportOptions,
        form_id: str,
        progress: Callable[[int, int], None] = lambda done, total: None,
    ) -> ImportSummary:
        """Each row (its number and its fields as its columns read; None: a blank row)
        through the web form's validation, dedupe and merge, and consent records."""
        summary = ImportSummary()
        seen: set[str] = set()  # addresses this run has created or merged (dry run)
        total = len(rows)
        for done, (number, read) in enumerate(rows, start=1):
            progress(done, total)
            if read is None:
                summary.blank += 1
                continue
            summary.rows += 1
            fields = row_fields(read, options, form_id)
            if len({email_key(e) for e in fields.get("email", [])}) > 1:
                summary.several_emails.append(number)
            try:
                submission, dropped = parse_row(fields, options)
            except InvalidSubmission as exc:
                summary.rejected.append((number, exc.errors))
                continue
            if dropped:
                summary.dropped.append((number, dropped))
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

"""Lead lists as services export them (business cards from Sansan and Eight, exhibition
badge scans): which column holds which lead field (pure; the column dictionary is
``shared/content/import_columns.yaml``, which marketers can read and extend)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from shared.web.submission import ALIASES, EMAIL_CONFIRMATION, FormSubmission
from shared.yamlfile import read_yaml

IMPORT_COLUMNS_FILE = Path(__file__).parents[1] / "content" / "import_columns.yaml"
# Set by the import's options, never by a column.
RESERVED = frozenset({"form_type", "consent", "consent_version", "source"})
# The fields a column may fill.
FIELDS = frozenset(FormSubmission.model_fields) - RESERVED
# What ``ColumnDictionary.field_for`` answers for a column a lead does not keep.
NOT_KEPT = "-"

_IGNORED_IN_HEADERS = str.maketrans("", "", "()[]{}【】「」〔〕<>-_・/")
_NUMBERED = re.compile(r"[0-9]+$")
# Words that make a form's address field the one typed again to confirm it (as compared:
# header_key), longest first so that 確認用 is taken before 確認.
_CONFIRMING = (
    "confirmation",
    "verification",
    "再入力",
    "再確認",
    "確認用",
    "confirm",
    "verify",
    "retype",
    "again",
    "check",
    "確認",
    "conf",
)


def header_key(text: str) -> str:
    """A header as compared: NFKC (全角 → 半角), lower case, without spaces, brackets,
    dashes, underscores, ・ and /, so 氏名（姓）, 氏名[姓] and 氏名 姓 are one header."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(text.split()).translate(_IGNORED_IN_HEADERS)


class ColumnDictionary(BaseModel):
    """Headers per lead field; fields whose columns are joined; columns not kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, tuple[str, ...]]
    joined: frozenset[str] = frozenset()
    ignore: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ColumnDictionary:
        unknown = sorted({*self.fields, *self.joined} - FIELDS)
        if unknown:
            raise ValueError(
                f"not a field a column may fill: {', '.join(unknown)} "
                f"(fields: {', '.join(sorted(FIELDS))})"
            )
        blank = [h for _, h in self._entries() if not header_key(h)]
        if blank:
            raise ValueError(f"headers with nothing to compare: {blank}")
        meanings: dict[str, list[tuple[str, str]]] = {}
        for field, header in self._entries():
            meanings.setdefault(header_key(header), []).append((field, header))
        # Headers compare loosely (氏名（姓） is 氏名[姓]): name the entries as written.
        clashes = [
            " and ".join(f"{header} ({_meaning(field)})" for field, header in found)
            for found in meanings.values()
            if len(found) > 1
        ]
        if clashes:
            raise ValueError(f"headers listed twice: {'; '.join(clashes)}")
        return self

    def _entries(self) -> Iterator[tuple[str, str]]:
        for field, headers in self.fields.items():
            for header in headers:
                yield field, header
        for header in self.ignore:
            yield NOT_KEPT, header

    @cached_property
    def _lookup(self) -> dict[str, str]:
        # The form's own field names and aliases, then the dictionary's headers.
        found = {header_key(f): f for f in FIELDS}
        found.update({header_key(a): f for a, f in ALIASES.items() if f in FIELDS})
        found.update({header_key(h): field for field, h in self._entries()})
        return found

    def field_for(self, header: str) -> str | None:
        """The field a column header stands for; ``NOT_KEPT`` for a column a lead does not
        keep; None for one the dictionary does not know. A header that is not listed is
        read without a trailing number (住所2 as 住所, e-mail(1) as e-mail)."""
        return self._field_of_key(header_key(header))

    def form_field(self, name: str) -> str | None:
        """What a website's form field stands for, read as a column header is; a name
        that says it repeats the address (メールアドレス（確認用）, email_confirm,
        confirm-email) is EMAIL_CONFIRMATION (``shared.web.submission.FieldNames``)."""
        key = header_key(name)
        found = self._field_of_key(key)
        if found is not None:
            return found
        for word in _CONFIRMING:
            for rest in (key.removesuffix(word), key.removeprefix(word)):
                if rest and rest != key and self._field_of_key(rest) == "email":
                    return EMAIL_CONFIRMATION
        return None

    def _field_of_key(self, key: str) -> str | None:
        if key in self._lookup:
            return self._lookup[key]
        return self._lookup.get(_NUMBERED.sub("", key)) if _NUMBERED.search(key) else None


def _meaning(field: str) -> str:
    return "not kept" if field == NOT_KEPT else field


def load_columns(path: Path = IMPORT_COLUMNS_FILE) -> ColumnDictionary:
    try:
        return ColumnDictionary.model_validate(read_yaml(path))
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc

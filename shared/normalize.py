"""Normalisation that Japanese web forms need.

People type full-width letters and digits (ＡＢＣ株式会社, ０３－１２３４), half-width
katakana, ideographic spaces and a zoo of dash characters. NFKC folds most of that;
the rest is handled here so that the same person typed twice is the same lead.
"""

from __future__ import annotations

import re
import unicodedata

# Dash-like characters that NFKC leaves alone but people type in phone numbers.
_DASHES = str.maketrans(dict.fromkeys("‐‑‒–—―−ーｰ－", "-"))
# C0 and C1 controls, zero-width and bidirectional-override characters (used to hide text).
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e"
    r"\u2066-\u2069\ufeff]"
)
_LINE_BREAK = re.compile(r"[\r\n]")
# Anything that looks like an HTML tag or comment: forms have no reason to carry markup.
_MARKUP = re.compile(r"<\s*(?:[/?]?\s*[A-Za-z]|!)")
_PHONE_ALLOWED = re.compile(r"^\+?[0-9()\- ]+$")


class NormalisationError(ValueError):
    """A value that cannot be accepted; ``code`` says why (see shared.submission.MESSAGES)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def clean_line(text: str, max_length: int) -> str:
    """A single-line field: NFKC, no line breaks, no markup, whitespace collapsed."""
    text = nfkc(text)
    if _LINE_BREAK.search(text):
        raise NormalisationError("line_break")
    return _clean(text, max_length)


def clean_text(text: str, max_length: int) -> str:
    """A multi-line field (message): line breaks kept as \\n, each line trimmed."""
    text = nfkc(text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    return _clean(text, max_length, collapse=False)


def _clean(text: str, max_length: int, *, collapse: bool = True) -> str:
    if _CONTROL.search(text):
        raise NormalisationError("control_char")
    if _MARKUP.search(text):
        raise NormalisationError("markup")
    if collapse:
        text = " ".join(text.split())
    if len(text) > max_length:
        raise NormalisationError("too_long")
    return text


def normalize_phone(text: str, default_country_code: str = "81") -> tuple[str, str]:
    """Return the number as written (NFKC, dashes unified) and its E.164 form.

    A national number starting with 0 is taken to be in the default country (Japan):
    03-1234-5678 becomes +81312345678.
    """
    if _LINE_BREAK.search(text):
        raise NormalisationError("line_break")
    written = " ".join(nfkc(text).translate(_DASHES).split())
    if len(written) > 30 or not _PHONE_ALLOWED.match(written):
        raise NormalisationError("invalid_phone")
    # +81 (0)3-1234-5678: the bracketed trunk zero is not dialled from abroad.
    dialled = re.sub(r"\(0\)", "", written) if written.startswith("+") else written
    digits = re.sub(r"\D", "", dialled)
    if written.startswith("+"):
        e164 = "+" + digits
    elif digits.startswith("0") and not digits.startswith("00"):
        e164 = f"+{default_country_code}{digits[1:]}"
    elif digits.startswith("00"):
        e164 = "+" + digits[2:]
    else:
        raise NormalisationError("invalid_phone")
    if not 8 <= len(e164) - 1 <= 15:
        raise NormalisationError("invalid_phone")
    return written, e164


def email_key(email: str) -> str:
    """The dedupe key: mailbox providers treat addresses case-insensitively in practice."""
    return email.casefold()


_TRUE = frozenset({"1", "true", "on", "yes", "y", "checked", "agree", "はい", "同意する"})


def is_checked(value: str) -> bool:
    """A checkbox or boolean field: what browsers and form builders send when ticked."""
    return nfkc(value).strip().lower() in _TRUE

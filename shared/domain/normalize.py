"""Normalisation that Japanese web forms need.

People type full-width letters and digits (ＡＢＣ株式会社, ０３－１２３４), half-width
katakana, ideographic spaces and a zoo of dash characters. NFKC folds most of that;
the rest is handled here so that the same person typed twice is the same lead.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

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
# What business cards and their exports write after a number: an extension (内線123,
# ext.123, x123, #123) and a note in brackets ((代表), （直通）, [本社]). Neither is dialled.
_EXTENSION = r"(?:内線|ext\.?|x|#)\s*:?\s*[0-9]{1,6}"
_PHONE_TAIL = re.compile(
    rf"\s*(?:{_EXTENSION}|[(\[]\s*{_EXTENSION}\s*[)\]]|[(\[](?:[^\W\d_]|[ ・/-]){{1,16}}[)\]])$",
    re.IGNORECASE,
)
_POSTCODE = re.compile(r"^〒?\s*([0-9]{3})[- ]?([0-9]{4})$")
# Hiragana, katakana and CJK ideographs (with 々 〆 ヶ): a name in Japanese script.
_JAPANESE_NAME = re.compile(
    r"^[\u3041-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    r"\U00020000-\U0003134f々〆ヶ]+$"
)
# 2026/10/15, 2026-10-15, 2026.10.15, 2026年10月15日, each with an optional time.
_LOCAL_TIME = re.compile(
    r"^([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?"
    r"(?:[ T]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]+)?)?)?$"
)
JAPAN = ZoneInfo("Asia/Tokyo")


class NormalisationError(ValueError):
    """A value that cannot be accepted; ``code`` says why (see shared.web.submission.MESSAGES)."""

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


def clean_folded(text: str, max_length: int) -> str:
    """A single-line field that a card or a list cell may split over lines (an address, a
    department: Excel's Alt+Enter, a textarea): each line break becomes a space."""
    return _clean(_LINE_BREAK.sub(" ", nfkc(text)), max_length)


def clean_text(text: str, max_length: int) -> str:
    """A multi-line field (message): line breaks kept as \\n, each line trimmed."""
    text = nfkc(text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    return _clean(text, max_length, collapse=False)


def unsafe(text: str) -> str | None:
    """``control_char`` or ``markup`` if the text holds either (what no field may), else
    None."""
    if _CONTROL.search(text):
        return "control_char"
    if _MARKUP.search(text):
        return "markup"
    return None


def _clean(text: str, max_length: int, *, collapse: bool = True) -> str:
    if code := unsafe(text):
        raise NormalisationError(code)
    if collapse:
        text = " ".join(text.split())
    if len(text) > max_length:
        raise NormalisationError("too_long")
    return text


def normalize_phone(text: str, default_country_code: str = "81") -> tuple[str, str]:
    """Return the number as written (NFKC, dashes unified) and its E.164 form.

    A national number starting with 0 is taken to be in the default country (Japan):
    03-1234-5678 becomes +81312345678. An extension or a bracketed note after the number
    (03-1234-5678（代表）内線123) stays in the written form and out of the E.164 one.
    """
    if _LINE_BREAK.search(text):
        raise NormalisationError("line_break")
    typed = " ".join(nfkc(text).split())
    if len(typed) > 50:
        raise NormalisationError("invalid_phone")
    # The tail first: a note's ー (サポートセンター) is a letter, the number's a dash.
    base = _without_tail(typed)
    dashed = base.translate(_DASHES)
    written = dashed + typed[len(base) :]
    number = dashed.replace(".", "-")  # 03.1234.5678, as some cards write
    if len(number) > 30 or not _PHONE_ALLOWED.match(number):
        raise NormalisationError("invalid_phone")
    # +81 (0)3-1234-5678: the bracketed trunk zero is not dialled from abroad.
    dialled = re.sub(r"\(0\)", "", number) if number.startswith("+") else number
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


def _without_tail(text: str) -> str:
    """The number without what follows it (extensions, notes), as written."""
    rest = text
    for _ in range(3):  # 03-1234-5678 (代表) 内線123 (直通): at most a few such tails
        shorter = _PHONE_TAIL.sub("", rest)
        if shorter == rest:
            break
        rest = shorter
    return rest


def normalize_postcode(text: str) -> str:
    """A Japanese postcode as ``123-4567`` (from 〒123-4567, １２３４５６７, 123 4567)."""
    found = _POSTCODE.match(nfkc(text).translate(_DASHES).strip())
    if found is None:
        raise NormalisationError("invalid_postcode")
    return f"{found[1]}-{found[2]}"


def normalize_website(text: str, max_length: int = 500) -> str:
    """A company's web site: an http(s) URL with a dotted host name. Business cards print
    the host alone (www.example.co.jp), which gets ``https://``."""
    value = clean_line(text, max_length)
    if "://" not in value:
        value = f"https://{value}"
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError as exc:
        raise NormalisationError("invalid_url") from exc
    scheme = value.split("://", 1)[0].lower()
    # A user name in the address (https://x@host, or mailto:x@host read as one) is no site.
    if scheme not in ("http", "https") or "." not in host or "@" in parts.netloc or " " in value:
        raise NormalisationError("invalid_url")
    if len(value) > max_length:
        raise NormalisationError("too_long")
    return value


def split_name(name: str) -> tuple[str, str] | None:
    """Family and given name of a full name in Japanese script written with one space
    (山田 太郎, 山田　太郎); None when that is not certain: no space (山田太郎 could be
    山田 + 太郎 or 山 + 田太郎), more parts, or Latin letters, whose order varies."""
    parts = nfkc(name).split()
    if len(parts) != 2 or not all(_JAPANESE_NAME.match(part) for part in parts):
        return None
    return parts[0], parts[1]


def parse_local_time(text: str, zone: tzinfo = JAPAN) -> datetime:
    """A date or date and time as lists write them (2026/10/15, 2026-10-15 10:30,
    2026年10月15日, ISO 8601), in ``zone`` unless it carries an offset."""
    value = nfkc(text).strip()
    found = _LOCAL_TIME.match(value)
    try:
        if found is not None:
            year, month, day, hour, minute, second = (int(p) if p else 0 for p in found.groups())
            moment = datetime(year, month, day, hour, minute, second)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise NormalisationError("invalid_date") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def email_key(email: str) -> str:
    """The dedupe key: mailbox providers treat addresses case-insensitively in practice."""
    return email.casefold()


_TRUE = frozenset({"1", "true", "on", "yes", "y", "checked", "ok", "はい"})
# Form builders often send the checkbox's label as its value ("同意します", "I agree"):
# words of agreement count, unless the words refuse ("同意しない", "disagree").
_AGREEING = re.compile(
    r"同意|承諾|承認|了承|許可|希望|受け取|受取|購読|agree|accept|consent|subscribe|opt.?in|[✓✔☑]"
)
_REFUSING = re.compile(
    r"ない|ません|不同意|不要|拒否|いいえ|\bnot?\b|n't|disagree|decline|refuse|opt.?out|unsub"
)


def is_checked(value: str) -> bool:
    """A checkbox or boolean field: what browsers and form builders send when ticked."""
    text = nfkc(value).strip().lower()
    if text in _TRUE:
        return True
    return bool(_AGREEING.search(text)) and not _REFUSING.search(text)

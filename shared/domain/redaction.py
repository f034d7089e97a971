"""Personal data out of what is written down (log lines): by key and by pattern.

E-mail addresses, phone numbers, postcodes and Japanese street addresses have a shape,
so they are found in any text: messages, exception texts, tracebacks. Names and most
addresses have none, so they are found by the key that holds them: anywhere in nested
structures, and as ``key=value`` / ``"key": "value"`` pairs in text (the reprs and
JSON that exception texts and validation errors quote). A company name is kept: it is
not personal data under APPI, and sales need it to read the logs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# Keys (lower case, without "_" and "-") whose values are personal data, whatever they
# hold: a string, a list of addresses, the whole ``commonHeaders`` of an SES event.
PERSONAL_KEYS = frozenset(
    {
        # names (form aliases included: sei/mei)
        "name",
        "fullname",
        "displayname",
        "familyname",
        "givenname",
        "firstname",
        "lastname",
        "middlename",
        "sei",
        "mei",
        "kana",
        # addresses, e-mail and postal
        "email",
        "emails",
        "address",
        "addresses",
        "postcode",
        "postalcode",
        "zip",
        "zipcode",
        # phones
        "phone",
        "phonenormalized",
        "phonee164",
        "tel",
        "mobile",
        "fax",
        # who an e-mail went to (SES events), and what travels with it
        "destination",
        "recipients",
        "to",
        "cc",
        "bcc",
        "replyto",
        "commonheaders",
        "headers",
        "subject",
        # raw request and message bodies, and what pydantic quotes of its input
        "body",
        "input",
        "inputvalue",
        "ip",
        "sourceip",
    }
)
# Key suffixes that make any key personal: ``emailAddress``, ``contact_email``, ``ipAddress``.
PERSONAL_SUFFIXES = ("address", "addresses", "email", "phone")

# The same keys as they are spelled in text (``name='…'``, ``"emailAddress": "…"``).
_KEY_IN_TEXT = r"""
    (?:e[-_]?mails?|contact[-_]?email)(?:[-_]?address(?:es)?)?
  | (?:full|display|family|given|first|last|middle)[-_]?name | name | sei | mei | kana
  | (?:postal|street|ip|to|from)?[-_]?address(?:es)?
  | post[-_]?code | postal[-_]?code | zip(?:[-_]?code)?
  | (?:mobile[-_]?)?phone(?:[-_]?(?:e164|normalized))? | tel | mobile | fax
  | destination | (?:bounced|complained|delayed)?[-_]?recipients | to | cc | bcc
  | common[-_]?headers | subject | body
"""
# A value in text: a (JSON-escaped) quoted string, a flat list, dict or tuple, or a word.
_VALUE_IN_TEXT = r"""
    \\"(?:(?!\\").)*\\" | "(?:[^"\\]|\\.)*" | '(?:[^'\\]|\\.)*'
  | \[[^\[\]]*\] | \{[^{}]*\} | \([^()]*\) | [^\s,;&)\]}]+
"""
_KEYED = re.compile(
    rf"""(?<![\w-])(?P<key>\\?["']?(?:{_KEY_IN_TEXT})\\?["']?)(?P<sep>\s*[:=]\s*)
         (?P<value>{_VALUE_IN_TEXT})""",
    re.IGNORECASE | re.VERBOSE,
)
# pydantic's errors quote the input: ``[type=…, input_value={…}, input_type=dict]``.
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL)

# The local part starts where no local-part character precedes it and is at most 64
# long (RFC 5321): a long run without an "@" is then tried once, not from every position.
_EMAIL = re.compile(
    r"(?<![\w.!#$%&*+/=?^`{|}~-])[\w.!#$%&*+/=?^`{|}~-]{1,64}(?:@|%40|＠)[\w-]+(?:\.[\w-]+)+"
)
_DASH = r"[-‐‑‒–—―−－ー]"
_PHONE = re.compile(
    rf"""(?<![\w+.-])(?:
        (?:\+81{_DASH}?\(?|0)\d{{1,4}}(?:{_DASH}|\)|）|\s)?\(?\d{{1,4}}(?:{_DASH}|\)|）|\s)?\d{{3,4}}
      | \+\d{{1,3}}[-\s]?\d{{1,4}}[-\s]?\d{{2,4}}[-\s]?\d{{3,4}}
    )(?![\w-])""",
    re.VERBOSE,
)
_POSTCODE = re.compile(rf"〒\s*\d{{3}}{_DASH}?\d{{4}}|(?<![\w-])\d{{3}}{_DASH}\d{{4}}(?![\w-])")
_PREFECTURE = (
    "北海道|東京都|京都府|大阪府|(?:青森|岩手|宮城|秋田|山形|福島|茨城|栃木|群馬|埼玉|千葉|"
    "神奈川|新潟|富山|石川|福井|山梨|長野|岐阜|静岡|愛知|三重|滋賀|兵庫|奈良|和歌山|鳥取|"
    "島根|岡山|広島|山口|徳島|香川|愛媛|高知|福岡|佐賀|長崎|熊本|大分|宮崎|鹿児島|沖縄)県"
)
_KANJI = r"\u3005\u3040-\u30ff\u4e00-\u9fff"
_ADDRESS_END = r"""[^\s"',;:、。()（）\[\]{}<>]"""
# A prefecture followed by more (a bare prefecture is a segment, not an address), or a
# city, ward, town or village followed by a block number.
_ADDRESS = re.compile(
    rf"(?:{_PREFECTURE}){_ADDRESS_END}+"
    rf"|[{_KANJI}]{{1,10}}[市区町村郡][{_KANJI}]*\d{_ADDRESS_END}*"
)
_PATTERNS = (
    (_EMAIL, "[email]"),
    (_ADDRESS, "[address]"),
    (_PHONE, "[phone]"),
    (_POSTCODE, "[postcode]"),
)
# Deeper than any log line needs: what lies below is dropped, not walked (no recursion
# error inside logging, which would print the record to stderr as it is).
MAX_DEPTH = 20


def personal_key(key: object) -> bool:
    name = str(key).lower().replace("_", "").replace("-", "")
    return name in PERSONAL_KEYS or name.endswith(PERSONAL_SUFFIXES)


def redact_text(text: str) -> str:
    """``text`` with the values of personal keys, e-mail addresses, Japanese street
    addresses, postcodes and phone numbers replaced."""
    text = _PYDANTIC_INPUT.sub("input_value=" + REDACTED, text)
    text = _KEYED.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` without personal data: values under personal keys
    replaced wholesale at any depth, text redacted by ``redact_text``. Models and
    dataclasses are read as their fields; other objects as their text."""
    if _depth > MAX_DEPTH:
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if personal_key(k) else redact(v, _depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth + 1) for item in value]
    fields = _fields(value)
    if fields is not None:
        return redact(fields, _depth + 1)
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not lose the log line
        return REDACTED
    return redact_text(text)


def _fields(value: Any) -> dict[str, Any] | None:
    """A pydantic model's or a dataclass instance's fields, so keys decide."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            fields = dump(mode="json")
        except Exception:
            return None
        return fields if isinstance(fields, dict) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None

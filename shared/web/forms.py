"""Decode a form post body into a multi-dict of strings.

Three encodings reach ``POST /leads``: a plain HTML form (urlencoded), ``fetch`` with
``FormData`` (multipart) and JSON. Each becomes ``{field: [values]}`` so that one
validator serves them all. Anything that is not cleanly decodable is a
``MalformedBody``; nothing here guesses.

Forms post in their page's character encoding (``shared.web.charsets``). A browser never
names it in the Content-Type; it fills a hidden ``_charset_`` field with it, when the
form has one. Scripts may send a ``charset`` parameter. The parameter wins, then the
``_charset_`` field, then UTF-8; a multipart part's own charset wins for that part
(RFC 7578, 4.4 and 4.6). Values are percent-decoded as bytes, then decoded strictly:
bytes invalid in the encoding are ``invalid_encoding``, never U+FFFD. An encoding we
do not decode is ``unsupported_charset``. JSON is UTF-8 only (RFC 8259, 8.1).
"""

from __future__ import annotations

import json
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from urllib.parse import parse_qsl

from shared.web import charsets
from shared.web.submission import FieldError, InvalidSubmission, is_known_field

MAX_FIELDS = 100
CHARSET_FIELD = "_charset_"


class MalformedBody(ValueError):
    """The body cannot be read as the content type it claims (code says how).

    ``field`` names the form field whose value could not be read, when one is known.
    """

    def __init__(self, code: str, detail: str = "", field: str = "body") -> None:
        super().__init__(detail or code)
        self.code = code
        self.field = field


class UnsupportedMediaType(ValueError):
    """A media type, or a charset of one, that we do not read (code says which)."""

    def __init__(self, detail: str, code: str = "unsupported_media_type") -> None:
        super().__init__(detail)
        self.code = code


FormFields = dict[str, list[str]]
# A field as sent, before decoding: name, value, and the value's own encoding if it has one.
_Entry = tuple[bytes, bytes, str | None]


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_form(body: bytes, content_type: str | None) -> FormFields:
    kind = media_type(content_type)
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body, _declared_encoding(content_type))
    if kind == "multipart/form-data":
        return _multipart(body, content_type or "", _declared_encoding(content_type))
    if kind == "application/json" or kind.endswith("+json"):
        if _declared_encoding(content_type) not in (None, charsets.UTF_8):
            raise UnsupportedMediaType("JSON is UTF-8", "unsupported_charset")
        return _json(body)
    raise UnsupportedMediaType(kind or "missing")


def _declared_encoding(content_type: str | None) -> str | None:
    """The encoding the Content-Type's ``charset`` parameter names, if it has one."""
    header = Message()
    header["Content-Type"] = content_type or ""
    label = header.get_param("charset")
    return None if label is None else _encoding(collapse_rfc2231_value(label))


def _encoding(label: str) -> str:
    encoding = charsets.encoding_for(label)
    if encoding is None:
        raise UnsupportedMediaType(f"charset {label[:40]!r}", "unsupported_charset")
    return encoding


def _field_encoding(value: bytes | None) -> str | None:
    """The encoding a ``_charset_`` field names; blank (not filled in) names none."""
    if value is None or not value.strip():
        return None
    return _encoding(value.decode("latin-1"))


def _decode(data: bytes, encoding: str, field: str = "body") -> str:
    try:
        return charsets.decode(data, encoding)
    except UnicodeDecodeError as exc:
        raise MalformedBody("invalid_encoding", f"not {encoding}", field) from exc


def _urlencoded(body: bytes, declared: str | None) -> FormFields:
    try:
        # Latin-1 maps every byte to one code point and back: this percent-decodes bytes,
        # which are decoded once the form's encoding is known.
        pairs = parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="latin-1",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError as exc:
        raise MalformedBody("too_many_fields") from exc
    return _decoded([(n.encode("latin-1"), v.encode("latin-1"), None) for n, v in pairs], declared)


def _multipart(body: bytes, content_type: str, declared: str | None) -> FormFields:
    if "boundary=" not in content_type.lower():
        raise MalformedBody("missing_boundary")
    envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "ascii", "replace"
    )
    message = BytesParser(policy=policy.HTTP).parsebytes(envelope + body)
    if not message.is_multipart() or message.defects:
        raise MalformedBody("malformed_multipart")
    parts = message.get_payload()
    if not isinstance(parts, list) or not parts:
        raise MalformedBody("malformed_multipart")
    if len(parts) > MAX_FIELDS:
        raise MalformedBody("too_many_fields")
    entries: list[_Entry] = []
    for part in parts:
        if not isinstance(part, Message) or part.get_content_disposition() != "form-data":
            raise MalformedBody("malformed_multipart")
        name = _raw_name(part)
        if name is None:
            raise MalformedBody("malformed_multipart")
        if part.get_filename() is not None:
            continue  # lead forms take no uploads; a file part is ignored, not stored
        payload = part.get_payload(decode=True)
        charset = part.get_param("charset")
        own = _encoding(collapse_rfc2231_value(charset)) if charset else None
        entries.append((name, payload if isinstance(payload, bytes) else b"", own))
    return _decoded(entries, declared)


def _raw_name(part: Message) -> bytes | None:
    """The part's field name as sent: browsers write it in the form's encoding."""
    raw = next((str(v) for k, v in part.raw_items() if k.lower() == "content-disposition"), "")
    # The parser keeps bytes that are not ASCII as surrogate escapes, which reading a
    # parameter would replace by U+FFFD; as Latin-1 they come back as the same bytes.
    header = Message()
    header["Content-Disposition"] = raw.encode("ascii", "surrogateescape").decode("latin-1")
    name = header.get_param("name", header="content-disposition")
    return name.encode("latin-1") if isinstance(name, str) else None


def _decoded(entries: list[_Entry], declared: str | None) -> FormFields:
    charset_field = next((v for n, v, _ in entries if n == CHARSET_FIELD.encode()), None)
    encoding = declared or _field_encoding(charset_field) or charsets.UTF_8
    fields: FormFields = {}
    for raw_name, raw_value, own in entries:
        name = _decode(raw_name, encoding)
        fields.setdefault(name, []).append(_decode(raw_value, own or encoding, name))
    return fields


def _json(body: bytes) -> FormFields:
    text = _decode(body, charsets.UTF_8)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError, and also over-deep nesting or integers past Python's digit limit
        raise MalformedBody("malformed_json") from exc
    if not isinstance(document, dict):
        raise MalformedBody("json_not_object")
    if len(document) > MAX_FIELDS:
        raise MalformedBody("too_many_fields")
    fields: FormFields = {}
    wrong_type: list[FieldError] = []
    for name, value in document.items():
        values = _json_values(value)
        if values is not None:
            fields[name] = values  # unknown fields too: the honeypot is one of them
        elif value is not None and is_known_field(name):
            wrong_type.append(FieldError(name, "invalid_type"))
    if wrong_type:
        raise InvalidSubmission(wrong_type)
    return fields


def _json_values(value: object) -> list[str] | None:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    return None  # an object or nested list is never a form value

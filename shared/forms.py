"""Decode a form post body into a multi-dict of strings.

Three encodings reach ``POST /leads``: a plain HTML form (urlencoded), ``fetch`` with
``FormData`` (multipart) and JSON. Each becomes ``{field: [values]}`` so that one
validator serves them all. Anything that is not cleanly decodable is a
``MalformedBody``; nothing here guesses.
"""

from __future__ import annotations

import json
from email import policy
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qs

from shared.submission import FieldError, InvalidSubmission, is_known_field

MAX_FIELDS = 100


class MalformedBody(ValueError):
    """The body cannot be read as the content type it claims (code says how)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


class UnsupportedMediaType(ValueError):
    pass


FormFields = dict[str, list[str]]


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_form(body: bytes, content_type: str | None) -> FormFields:
    kind = media_type(content_type)
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if kind == "multipart/form-data":
        return _multipart(body, content_type or "")
    if kind == "application/json" or kind.endswith("+json"):
        return _json(body)
    raise UnsupportedMediaType(kind or "missing")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody("invalid_utf8") from exc


def _urlencoded(body: bytes) -> FormFields:
    text = _text(body)
    try:
        parsed = parse_qs(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise MalformedBody("invalid_utf8") from exc
    except ValueError as exc:
        raise MalformedBody("too_many_fields") from exc
    return parsed


def _multipart(body: bytes, content_type: str) -> FormFields:
    if "boundary=" not in content_type.lower():
        raise MalformedBody("missing_boundary")
    envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "ascii", "replace"
    )
    message = BytesParser(policy=policy.HTTP).parsebytes(envelope + body)
    if not message.is_multipart() or message.defects:
        raise MalformedBody("malformed_multipart")
    fields: FormFields = {}
    parts = message.get_payload()
    if not isinstance(parts, list) or not parts:
        raise MalformedBody("malformed_multipart")
    if len(parts) > MAX_FIELDS:
        raise MalformedBody("too_many_fields")
    for part in parts:
        if not isinstance(part, Message):
            raise MalformedBody("malformed_multipart")
        name, is_file = _form_data_name(part)
        if name is None:
            raise MalformedBody("malformed_multipart")
        if is_file:
            continue  # lead forms take no uploads; a file part is ignored, not stored
        payload = part.get_payload(decode=True)
        value = _text(payload if isinstance(payload, bytes) else b"")
        fields.setdefault(name, []).append(value)
    return fields


def _form_data_name(part: Message) -> tuple[str | None, bool]:
    if part.get_content_disposition() != "form-data":
        return None, False
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str):
        return None, False
    return name, part.get_filename() is not None


def _json(body: bytes) -> FormFields:
    text = _text(body)
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

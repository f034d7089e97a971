"""HTTP concerns shared by the public endpoints: body limits, redirects, negotiation."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from shared.web.forms import MalformedBody, media_type

if TYPE_CHECKING:
    from jinja2 import Environment

PAGES_DIR = Path(__file__).parents[1] / "content" / "pages"


class BodyTooLarge(ValueError):
    pass


def raw_body(body: str | None, is_base64: bool, limit: int) -> bytes:
    """The request body as bytes, refusing anything over ``limit`` before decoding it."""
    if body is None:
        return b""
    # base64 is 4/3 the size of what it encodes: check the cheap bound first.
    if len(body) > (limit * 4 // 3 + 4 if is_base64 else limit * 4):
        raise BodyTooLarge
    if is_base64:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedBody("invalid_base64") from exc
    else:
        data = body.encode("utf-8", "surrogatepass")
    if len(data) > limit:
        raise BodyTooLarge
    return data


def form_body(body: str | None, is_base64: bool, limit: int) -> bytes:
    """``raw_body`` for a form post, refusing a text body that holds U+FFFD.

    The form media types are binary media types of the API, so API Gateway passes their
    bytes on in base64, unchanged. It passes a body as text only when the media type is
    not one of them (or the API lacks the setting), after replacing every byte that is
    not UTF-8 by U+FFFD. What was there cannot be recovered, nor told from a U+FFFD the
    client sent, so such a body is refused (``invalid_encoding``) rather than stored.
    """
    data = raw_body(body, is_base64, limit)
    if not is_base64 and "\ufffd".encode() in data:
        raise MalformedBody("invalid_encoding", "U+FFFD in a text body")
    return data


def wants_json(content_type: str | None, accept: str | None) -> bool:
    """JSON posts and scripts that ask for JSON get JSON; browsers posting forms get HTML."""
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        return True
    accepted = [media_type(part) for part in (accept or "").split(",")]
    return "application/json" in accepted and "text/html" not in accepted


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def allowed_redirect(url: str | None, allowed_origins: Iterable[str]) -> str | None:
    """``url`` if it points at an allow-listed origin, else None (never an open redirect)."""
    if not url or len(url) > 2048:
        return None
    if any(ch in url for ch in "\\\r\n\t ") or any(ord(ch) < 0x20 for ch in url):
        return None
    try:
        parts = urlsplit(url)
        origin = origin_of(url)
    except ValueError:
        return None
    if origin is None or parts.username or parts.password:
        return None
    allowed = {o.rstrip("/").lower() for o in allowed_origins}
    return url if origin.lower() in allowed else None


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class Pages:
    """User-facing HTML pages (Japanese first, English second) rendered from content.

    Jinja2 is imported when the first page is rendered, not before, so that a request
    path that renders none (capture's JSON replies) does not load it; a function whose
    every request renders one prepares it at build with ``environment()``.
    """

    def __init__(self, directory: Path = PAGES_DIR) -> None:
        self._directory = directory
        self._env: Environment | None = None

    def render(self, name: str, **context: object) -> str:
        return self.environment().get_template(name).render(**context)

    def environment(self) -> Environment:
        if self._env is None:
            from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

            self._env = Environment(
                loader=FileSystemLoader(self._directory),
                autoescape=select_autoescape(default=True),
                undefined=StrictUndefined,
            )
        return self._env

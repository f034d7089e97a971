"""The local stack's control endpoints (``infra/local/control.py``) over HTTP."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

DEFAULT_API = "http://127.0.0.1:3000"


class LocalStackError(Exception):
    pass


def call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    base = api.rstrip("/")
    if urlsplit(base).scheme not in ("http", "https"):
        raise LocalStackError(f"--api must be an http(s) URL, not {api!r}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        f"{base}/_local{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("message", detail)
        raise LocalStackError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LocalStackError(
            f"cannot reach the local stack at {base} ({exc}); is `make dev` running?"
        ) from exc


def clock(api: str) -> Any:
    return call(api, "GET", "/clock")


def advance(api: str, duration: str) -> Any:
    return call(api, "POST", "/clock/advance", {"by": duration})


def tick(api: str) -> Any:
    return call(api, "POST", "/tick")

"""A local API Gateway (REST, Lambda proxy integration) for the wiring's routes.

Each HTTP request becomes the event API Gateway would send, the function's handler
runs in-process, and its proxy response becomes the HTTP response: status, headers,
multi-value headers and base64 bodies included. IAM routes require a SigV4 signature
(``infra/local/sigv4.py``), as ``AuthorizationType.IAM`` does on AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.local.functions import ACCOUNT, REGION, Handler, LambdaContext
from infra.local.sigv4 import MISSING_AUTH, Denied, SigV4Verifier
from infra.wiring import BINARY_MEDIA_TYPES, Auth, FunctionSpec
from shared.domain.clock import Clock, SystemClock

# method, path, headers (lower-case names), body -> an answer, or None when not its path
Control = Callable[
    [str, str, Mapping[str, str], bytes], "tuple[int, list[tuple[str, str]], bytes] | None"
]
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit
CLIENT_TIMEOUT_S = 30


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    function: FunctionSpec
    handler: Handler
    auth: Auth = "NONE"


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join(
        f"(?P<{p[1:-1].rstrip('+')}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(f"^{regex}$")


def _error(status: int, message: str, error_type: str) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)]
    return status, headers, json.dumps({"message": message}).encode()


class _Server(ThreadingHTTPServer):
    # The standard library's backlog of 5 resets connections under a burst of posts.
    request_queue_size = 128


class LocalApiGateway:
    """Routes requests to ``handlers`` (function name -> its handler, built on ``clock``).

    ``clock`` stamps the events' request time, so it agrees with the functions' time.
    ``credentials`` (access key id -> secret access key) are the keys IAM routes accept,
    none by default; ``wall_clock`` is the real time their signatures are checked against.
    """

    def __init__(
        self,
        functions: Iterable[FunctionSpec],
        handlers: Mapping[str, Handler],
        stage: str = "v1",
        clock: Clock | None = None,
        credentials: Mapping[str, str] | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        self.stage = stage
        self._clock = clock or SystemClock()
        self._verifier = SigV4Verifier(credentials or {}, REGION, ACCOUNT, wall_clock)
        self._routes: list[_Route] = []
        for spec in functions:
            if not spec.routes:
                continue
            handler = handlers[spec.name]
            for route in spec.routes:
                self._routes.append(
                    _Route(
                        route.method, route.path, _pattern(route.path), spec, handler, route.auth
                    )
                )
                if route.cross_origin:
                    # Cross-origin routes answer CORS preflight in the function, as on AWS.
                    self._routes.append(
                        _Route("OPTIONS", route.path, _pattern(route.path), spec, handler)
                    )

    def invoke(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(target)
        path = parts.path
        prefix = f"/{self.stage}"
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        allowed = [r for r in self._routes if r.pattern.match(path)]
        route = next((r for r in allowed if r.method == method), None)
        if route is None:
            # What API Gateway answers for a path or method it has no resource for.
            return _error(403, "Missing Authentication Token", MISSING_AUTH)
        caller: dict[str, str] = {}
        if route.auth == "IAM":
            try:
                caller = self._verifier.verify(method, target, pairs, body)
            except Denied as denied:
                return _error(403, denied.message, denied.error_type)
        match = route.pattern.match(path)
        event = self.event(route, method, path, parts.query, pairs, body, source_ip, match, caller)
        try:
            result = route.handler(event, LambdaContext.of(route.function))
        except Exception:  # what API Gateway answers when the function fails
            logging.getLogger(__name__).exception("function %s failed", route.function.name)
            message = {"message": "Internal server error"}
            return 502, [("Content-Type", "application/json")], json.dumps(message).encode()
        return self.http_response(result)

    def event(
        self,
        route: _Route,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        match: re.Match[str] | None,
        caller: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        binary = content_type.split(";")[0].strip().lower() in BINARY_MEDIA_TYPES
        query_multi = parse_qs(query, keep_blank_values=True) if query else {}
        now = self._clock.now().astimezone(UTC)
        request_id = str(uuid.uuid4())
        return {
            "resource": route.template,
            "path": path,
            "httpMethod": method,
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} or None,
            "multiValueQueryStringParameters": query_multi or None,
            "pathParameters": (match.groupdict() if match else None) or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": "local",
                "resourceId": "local",
                "resourcePath": route.template,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "path": f"/{self.stage}{path}",
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainName": "localhost",
                "identity": {
                    **(caller or {}),
                    "sourceIp": source_ip,
                    "userAgent": single.get("User-Agent") or single.get("user-agent"),
                },
            },
            # As API Gateway: bytes of a binary media type in base64, anything else as UTF-8
            # text with U+FFFD for each byte that is not UTF-8.
            "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace"))
            if body
            else None,
            "isBase64Encoded": binary and bool(body),
        }

    @staticmethod
    def http_response(result: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        headers: list[tuple[str, str]] = []
        multi = result.get("multiValueHeaders") or {}
        for name, values in multi.items():
            headers.extend((name, str(v)) for v in values)
        for name, value in (result.get("headers") or {}).items():
            if name not in multi:
                headers.append((name, str(value)))
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        return int(result.get("statusCode", 502)), headers, body

    def serve(self, host: str, port: int, control: Control | None = None) -> ThreadingHTTPServer:
        """An HTTP server for the stage; ``control`` answers the paths it claims first."""
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            # A client that sends less than it announced is dropped, not waited on forever.
            timeout = CLIENT_TIMEOUT_S

            def _handle(self) -> None:
                if self.headers.get("Transfer-Encoding") and not self.headers.get(
                    "Content-Length"
                ):  # a body of unknown length: API Gateway wants it counted
                    self.close_connection = True
                    required = b'{"message":"Length Required"}'
                    self._send(411, [("Content-Type", "application/json")], required)
                    return
                declared = (self.headers.get("Content-Length") or "0").strip()
                if not (declared.isascii() and declared.isdigit()):  # "abc", "-1", "²"
                    self.close_connection = True
                    bad = b'{"message":"Invalid Content-Length"}'
                    self._send(400, [("Content-Type", "application/json")], bad)
                    return
                length = int(declared)
                if length > MAX_REQUEST_BYTES:
                    too_long = b'{"message":"Request Too Long"}'
                    self._send(413, [("Content-Type", "application/json")], too_long)
                    return
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                answer = control(self.command, self.path, headers, body) if control else None
                if answer is None:
                    answer = gateway.invoke(
                        self.command, self.path, self.headers.items(), body, self.client_address[0]
                    )
                self._send(*answer)

            def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Server((host, port), RequestHandler)

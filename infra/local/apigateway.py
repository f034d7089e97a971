"""A local API Gateway (REST, Lambda proxy integration) for the wiring's routes.

Each HTTP request becomes the event API Gateway would send, the function's handler
runs in-process, and its proxy response becomes the HTTP response: status, headers,
multi-value headers and base64 bodies included.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.wiring import FunctionSpec

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
BINARY_MEDIA_TYPES = ("multipart/form-data",)
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit


def load_handler(dotted: str) -> Handler:
    module_name, _, attribute = dotted.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    function: str
    handler: Handler


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = (
            f"arn:aws:lambda:ap-northeast-1:123456789012:function:{function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join(
        f"(?P<{p[1:-1].rstrip('+')}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(f"^{regex}$")


class LocalApiGateway:
    def __init__(
        self,
        functions: Iterable[FunctionSpec],
        stage: str = "v1",
        load: Callable[[str], Handler] = load_handler,
    ) -> None:
        self.stage = stage
        self._routes: list[_Route] = []
        for spec in functions:
            handler = load(spec.handler)
            for route in spec.routes:
                self._routes.append(
                    _Route(route.method, route.path, _pattern(route.path), spec.name, handler)
                )
                if route.cross_origin:
                    # Cross-origin routes answer CORS preflight in the function, as on AWS.
                    self._routes.append(
                        _Route("OPTIONS", route.path, _pattern(route.path), spec.name, handler)
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
            message = {"message": "Missing Authentication Token"}
            return 403, [("Content-Type", "application/json")], json.dumps(message).encode()
        match = route.pattern.match(path)
        event = self.event(route, method, path, parts.query, pairs, body, source_ip, match)
        try:
            result = route.handler(event, LambdaContext(route.function))
        except Exception:  # what API Gateway answers when the function fails
            logging.getLogger(__name__).exception("function %s failed", route.function)
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
    ) -> dict[str, Any]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        binary = content_type.split(";")[0].strip().lower() in BINARY_MEDIA_TYPES
        query_multi = parse_qs(query, keep_blank_values=True) if query else {}
        now = datetime.now(UTC)
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
                "accountId": "123456789012",
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
                    "sourceIp": source_ip,
                    "userAgent": single.get("User-Agent") or single.get("user-agent"),
                },
            },
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

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    too_long = b'{"message":"Request Too Long"}'
                    self._send(413, [("Content-Type", "application/json")], too_long)
                    return
                body = self.rfile.read(length) if length else b""
                status, headers, payload = gateway.invoke(
                    self.command, self.path, self.headers.items(), body, self.client_address[0]
                )
                self._send(status, headers, payload)

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

        return ThreadingHTTPServer((host, port), RequestHandler)

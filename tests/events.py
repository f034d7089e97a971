"""Real-shaped API Gateway REST proxy events (as the AWS documentation shows them)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


def rest_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
    source_ip: str = "203.0.113.10",
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    headers = {
        "Host": "abc123.execute-api.ap-northeast-1.amazonaws.com",
        "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Chrome/126.0",
        "X-Forwarded-For": source_ip,
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode("ascii") if base64_encoded else body.decode()
    elif body is not None and base64_encoded:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "resourceId": "res123",
            "resourcePath": path,
            "httpMethod": method,
            "extendedRequestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "22/Nov/2026:10:00:00 +0000",
            "path": f"/v1{path}",
            "protocol": "HTTP/1.1",
            "stage": "v1",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1795341600000,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "domainName": "abc123.execute-api.ap-northeast-1.amazonaws.com",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent"),
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
            },
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def form_post(fields: dict[str, str | list[str]], **kwargs: Any) -> dict[str, Any]:
    """A plain HTML form post (application/x-www-form-urlencoded)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
    return rest_event(
        "POST", "/leads", body=urlencode(fields, doseq=True), headers=headers, **kwargs
    )


def multipart_body(fields: dict[str, str | list[str]], boundary: str = BOUNDARY) -> bytes:
    """What ``fetch(url, {body: new FormData(form)})`` sends."""
    chunks: list[bytes] = []
    for name, value in fields.items():
        for item in [value] if isinstance(value, str) else value:
            chunks.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + item.encode("utf-8")
                + b"\r\n"
            )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def multipart_post(fields: dict[str, str | list[str]], **kwargs: Any) -> dict[str, Any]:
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Accept": "application/json",
        **kwargs.pop("headers", {}),
    }
    # API Gateway base64-encodes it: multipart/form-data is a binary media type of the API.
    return rest_event(
        "POST",
        "/leads",
        body=multipart_body(fields),
        headers=headers,
        base64_encoded=True,
        **kwargs,
    )


def json_post(document: Any, **kwargs: Any) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    body = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)
    return rest_event("POST", "/leads", body=body, headers=headers, **kwargs)

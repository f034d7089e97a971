"""The local API Gateway: SigV4 as API Gateway checks it for AWS_IAM routes, and
request bodies passed on as API Gateway passes them (binary media types in base64).

Requests are signed the way AWS clients sign them (botocore's ``SigV4Auth``) and sent
through ``LocalApiGateway.invoke`` to the wiring's routes, whose functions are stubs
that record what reached them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.apigateway import LocalApiGateway
from infra.wiring import ADMIN, CAPTURE, FUNCTIONS
from shared.domain.clock import FixedClock
from tests.legacy_forms import EUC_JP, SHIFT_JIS

HOST = "127.0.0.1:3000"
REGION = "ap-northeast-1"
KEYS = {"local": "local"}
LEAD = "/v1/leads/01JABCDEF"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


class Recorder:
    """A function that answers 200 and keeps the events it was invoked with."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


@pytest.fixture
def functions() -> dict[str, Recorder]:
    return {spec.name: Recorder() for spec in FUNCTIONS}


def gateway(
    functions: dict[str, Recorder], wall_clock: FixedClock | None = None
) -> LocalApiGateway:
    return LocalApiGateway(FUNCTIONS, functions, credentials=KEYS, wall_clock=wall_clock)


def sign(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    key: str = "local",
    secret: str = KEYS["local"],
    token: str | None = None,
    service: str = "execute-api",
    region: str = REGION,
    headers: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The headers an AWS client sends for the request (Host as HTTP clients add it)."""
    request = AWSRequest(method=method, url=f"http://{HOST}{target}", data=body, headers=headers)
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return [("Host", HOST), ("User-Agent", "test-client/1.0"), *request.headers.items()]


def refusal(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[int, str, str]:
    status, headers, body = answer
    return status, dict(headers).get("x-amzn-ErrorType", ""), json.loads(body)["message"]


def test_a_signed_get_reaches_the_function_with_the_callers_identity(
    functions: dict[str, Recorder],
) -> None:
    status, _, _ = gateway(functions).invoke("GET", LEAD, sign("GET", LEAD), b"", "10.0.0.7")

    assert status == 200
    [event] = functions[ADMIN.name].events
    identity = event["requestContext"]["identity"]
    assert identity["accessKey"] == "local"
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/local"
    assert identity["accountId"] == "123456789012"
    assert identity["caller"] == identity["user"]
    assert identity["user"].startswith("AIDA")
    assert (identity["sourceIp"], identity["userAgent"]) == ("10.0.0.7", "test-client/1.0")
    assert event["pathParameters"] == {"lead_id": "01JABCDEF"}


def test_a_signed_post_with_a_json_body_reaches_the_function(
    functions: dict[str, Recorder],
) -> None:
    target = f"{LEAD}/disposition"
    body = json.dumps({"disposition": "won", "by": "佐藤"}, ensure_ascii=False).encode()
    headers = sign("POST", target, body, headers={"Content-Type": "application/json"})

    status, _, _ = gateway(functions).invoke("POST", target, headers, body)

    assert status == 200
    [event] = functions[ADMIN.name].events
    assert event["isBase64Encoded"]  # JSON is a binary media type of the API
    assert json.loads(base64.b64decode(event["body"])) == {"disposition": "won", "by": "佐藤"}
    assert event["requestContext"]["identity"]["accessKey"] == "local"


def test_a_signed_query_string_is_checked_in_its_canonical_order(
    functions: dict[str, Recorder],
) -> None:
    target = f"{LEAD}?z=1&a=b%20c&a=a"

    status, _, _ = gateway(functions).invoke("GET", target, sign("GET", target), b"")

    assert status == 200
    assert functions[ADMIN.name].events


def test_an_unsigned_call_is_refused_before_the_function(functions: dict[str, Recorder]) -> None:
    answer = gateway(functions).invoke("GET", LEAD, [("Host", HOST)], b"")

    assert refusal(answer) == (
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
    assert not functions[ADMIN.name].events


def test_the_export_route_answers_only_a_signed_call(functions: dict[str, Recorder]) -> None:
    target = f"{LEAD}/export"
    api = gateway(functions)

    # Unsigned, or signed for the lead's other route: refused before the function
    assert refusal(api.invoke("GET", target, [("Host", HOST)], b""))[0] == 403
    assert refusal(api.invoke("GET", target, sign("GET", LEAD), b""))[:2] == (
        403,
        "InvalidSignatureException",
    )
    assert not functions[ADMIN.name].events

    # Signed: the admin function gets it, with the caller and the lead's id
    assert api.invoke("GET", target, sign("GET", target), b"")[0] == 200
    [event] = functions[ADMIN.name].events
    assert event["resource"] == "/leads/{lead_id}/export"
    assert event["pathParameters"] == {"lead_id": "01JABCDEF"}
    assert event["requestContext"]["identity"]["userArn"] == "arn:aws:iam::123456789012:user/local"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_signature_made_with_the_wrong_secret_is_refused(
    functions: dict[str, Recorder], method: str
) -> None:
    answer = gateway(functions).invoke(method, LEAD, sign(method, LEAD, secret="guess"), b"")

    assert refusal(answer) == (403, "InvalidSignatureException", MISMATCH)
    assert not functions[ADMIN.name].events


def test_a_body_changed_after_signing_is_refused(functions: dict[str, Recorder]) -> None:
    target = f"{LEAD}/disposition"
    headers = sign("POST", target, b'{"disposition": "lost"}')

    answer = gateway(functions).invoke("POST", target, headers, b'{"disposition": "won"}')

    assert refusal(answer) == (403, "InvalidSignatureException", MISMATCH)
    assert not functions[ADMIN.name].events


@pytest.mark.parametrize(
    ("signed", "sent"),
    [
        (LEAD, "/v1/leads/01JOTHER"),
        (f"{LEAD}?view=short", f"{LEAD}?view=full"),
        (LEAD, f"{LEAD}?view=full"),
    ],
)
def test_a_path_or_query_changed_after_signing_is_refused(
    functions: dict[str, Recorder], signed: str, sent: str
) -> None:
    answer = gateway(functions).invoke("GET", sent, sign("GET", signed), b"")

    assert refusal(answer) == (403, "InvalidSignatureException", MISMATCH)
    assert not functions[ADMIN.name].events


def test_a_signature_for_another_host_is_refused(functions: dict[str, Recorder]) -> None:
    headers = [(n, "127.0.0.1:3001" if n == "Host" else v) for n, v in sign("GET", LEAD)]

    answer = gateway(functions).invoke("GET", LEAD, headers, b"")

    assert refusal(answer)[:2] == (403, "InvalidSignatureException")


def test_an_unknown_access_key_is_refused(functions: dict[str, Recorder]) -> None:
    answer = gateway(functions).invoke("GET", LEAD, sign("GET", LEAD, key="AKIAOTHER"), b"")

    assert refusal(answer) == (
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    assert not functions[ADMIN.name].events


@pytest.mark.parametrize(
    ("later", "message"),
    [
        (timedelta(minutes=10), "Signature expired: "),
        (timedelta(minutes=-10), "Signature not yet current: "),
    ],
)
def test_a_signature_more_than_five_minutes_off_real_time_is_refused(
    functions: dict[str, Recorder], later: timedelta, message: str
) -> None:
    headers = sign("GET", LEAD)
    now = datetime.now(UTC) + later

    answer = gateway(functions, FixedClock(now)).invoke("GET", LEAD, headers, b"")

    status, error_type, text = refusal(answer)
    assert (status, error_type) == (403, "InvalidSignatureException")
    assert text.startswith(message)
    assert not functions[ADMIN.name].events


def test_a_signature_within_five_minutes_is_accepted(functions: dict[str, Recorder]) -> None:
    headers = sign("GET", LEAD)
    now = datetime.now(UTC) + timedelta(minutes=4)

    status, _, _ = gateway(functions, FixedClock(now)).invoke("GET", LEAD, headers, b"")

    assert status == 200


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer eyJhbGciOiJIUzI1NiJ9",
        "AWS4-HMAC-SHA256 Credential=local/20260101/ap-northeast-1/execute-api/aws4_request",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=local, SignedHeaders=host;x-amz-date, Signature=00",
    ],
)
def test_a_malformed_authorization_header_is_refused_as_incomplete(
    functions: dict[str, Recorder], authorization: str
) -> None:
    headers = [(n, authorization if n == "Authorization" else v) for n, v in sign("GET", LEAD)]

    answer = gateway(functions).invoke("GET", LEAD, headers, b"")

    assert refusal(answer)[:2] == (403, "IncompleteSignatureException")
    assert not functions[ADMIN.name].events


def test_a_signature_without_its_date_is_refused_as_incomplete(
    functions: dict[str, Recorder],
) -> None:
    headers = [(n, v) for n, v in sign("GET", LEAD) if n != "X-Amz-Date"]

    answer = gateway(functions).invoke("GET", LEAD, headers, b"")

    assert refusal(answer)[:2] == (403, "IncompleteSignatureException")


@pytest.mark.parametrize(("service", "region"), [("s3", REGION), ("execute-api", "us-east-1")])
def test_a_signature_scoped_to_another_service_or_region_is_refused(
    functions: dict[str, Recorder], service: str, region: str
) -> None:
    headers = sign("GET", LEAD, service=service, region=region)

    answer = gateway(functions).invoke("GET", LEAD, headers, b"")

    assert refusal(answer)[:2] == (403, "InvalidSignatureException")
    assert not functions[ADMIN.name].events


def test_a_signed_payload_hash_must_be_the_bodys(functions: dict[str, Recorder]) -> None:
    target = f"{LEAD}/disposition"
    signed = b'{"disposition": "lost"}'
    digest = {"X-Amz-Content-SHA256": hashlib.sha256(signed).hexdigest()}
    headers = sign("POST", target, signed, headers=digest)
    api = gateway(functions)

    assert api.invoke("POST", target, headers, signed)[0] == 200
    answer = api.invoke("POST", target, headers, b'{"disposition": "won"}')

    assert refusal(answer) == (403, "InvalidSignatureException", MISMATCH)
    assert len(functions[ADMIN.name].events) == 1


def test_a_signed_session_token_is_accepted(functions: dict[str, Recorder]) -> None:
    headers = sign("GET", LEAD, token="FwoGZXIvYXdzEXAMPLE")
    assert any(n == "X-Amz-Security-Token" for n, _ in headers)

    status, _, _ = gateway(functions).invoke("GET", LEAD, headers, b"")

    assert status == 200


def test_no_key_is_accepted_unless_given(functions: dict[str, Recorder]) -> None:
    api = LocalApiGateway(FUNCTIONS, functions)

    answer = api.invoke("GET", LEAD, sign("GET", LEAD), b"")

    assert refusal(answer)[:2] == (403, "UnrecognizedClientException")


def test_routes_without_iam_auth_need_no_signature(functions: dict[str, Recorder]) -> None:
    body = b'{"email": "a@example.co.jp", "form_type": "inquiry", "consent": true}'
    headers = [("Host", HOST), ("Content-Type", "application/json")]

    status, _, _ = gateway(functions).invoke("POST", "/v1/leads", headers, body)

    assert status == 200
    [event] = functions[CAPTURE.name].events
    assert "accessKey" not in event["requestContext"]["identity"]


@pytest.fixture
def served(functions: dict[str, Recorder]) -> Iterator[str]:
    server = gateway(functions).serve("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_over_http_the_host_header_with_its_port_is_what_is_signed(
    functions: dict[str, Recorder], served: str
) -> None:
    url = f"{served}{LEAD}/disposition"
    body = b'{"disposition": "won"}'
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials("local", "local"), "execute-api", REGION).add_auth(request)
    call = urllib.request.Request(url, body, dict(request.headers.items()), method="POST")  # noqa: S310

    with urllib.request.urlopen(call, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
    unsigned = urllib.request.Request(url, body, method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=10)  # noqa: S310 - loopback
    assert refused.value.code == 403
    assert refused.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert len(functions[ADMIN.name].events) == 1


# -- request bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/x-www-form-urlencoded", SHIFT_JIS.urlencoded, id="urlencoded"),
        pytest.param(EUC_JP.multipart_type, EUC_JP.multipart, id="multipart"),
        pytest.param(
            "application/json; charset=Shift_JIS", '{"name": "髙橋"}'.encode("cp932"), id="json"
        ),
    ],
)
def test_a_body_of_a_binary_media_type_reaches_the_function_in_base64_byte_for_byte(
    functions: dict[str, Recorder], content_type: str, body: bytes
) -> None:
    headers = [("Host", HOST), ("Content-Type", content_type)]

    status, _, _ = gateway(functions).invoke("POST", "/v1/leads", headers, body)

    assert status == 200
    [event] = functions[CAPTURE.name].events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_a_body_of_another_media_type_reaches_the_function_as_text_with_u_fffd(
    functions: dict[str, Recorder],
) -> None:
    # As API Gateway: the bytes are decoded as UTF-8 and what is not UTF-8 is replaced.
    body = "name=髙橋".encode("cp932")
    headers = [("Host", HOST), ("Content-Type", "text/plain; charset=Shift_JIS")]

    gateway(functions).invoke("POST", "/v1/leads", headers, body)

    [event] = functions[CAPTURE.name].events
    assert event["isBase64Encoded"] is False
    assert event["body"] == "name=" + "\ufffd" * 4

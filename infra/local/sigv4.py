"""API Gateway's AWS_IAM authorization for the local API Gateway: SigV4, checked.

Requests to IAM routes must carry a Signature Version 4 ``Authorization`` header for
the ``execute-api`` service, signed with one of the known keys. The signature is
recomputed with botocore's own signer over what was received, so a request passes
here exactly when a client that signs for API Gateway would be let through there.
Refusals carry the status, message and ``x-amzn-ErrorType`` API Gateway answers with.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from shared.domain.clock import Clock, SystemClock

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
TERMINATOR = "aws4_request"
# How far the signing time may be from the gateway's own, either way.
MAX_SKEW = timedelta(minutes=5)

MISSING_AUTH = "MissingAuthenticationTokenException"
INCOMPLETE = "IncompleteSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"
INVALID = "InvalidSignatureException"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


class Denied(Exception):
    """A refusal, named as API Gateway names it (``x-amzn-ErrorType``)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class _ReceivedRequestSigner(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client listed in SignedHeaders.

    botocore's signer picks the headers itself (all but a few, such as User-Agent);
    a verifier has to take the client's list as it is, whatever the client chose.
    """

    def __init__(
        self, credentials: Credentials, region: str, signed: list[tuple[str, str]]
    ) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in self._signed:
            headers[name] = value  # appends: repeated headers are joined in order
        return headers


def _parameters(authorization: str) -> dict[str, str]:
    """The ``Credential``, ``SignedHeaders`` and ``Signature`` of the header."""
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise Denied(INCOMPLETE, f"Unsupported Authorization Type; expected {ALGORITHM}.")
    parameters: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if equals:
            parameters[name] = value
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not parameters.get(name)
    ]
    if missing:
        raise Denied(INCOMPLETE, " ".join(missing))
    return parameters


def _timestamp(headers: Mapping[str, str]) -> str:
    """The signing time as SigV4 writes it: X-Amz-Date, else the Date header."""
    if "x-amz-date" in headers:
        stamp = headers["x-amz-date"].strip()
        try:
            datetime.strptime(stamp, SIGV4_TIMESTAMP)
        except ValueError:
            raise Denied(
                INCOMPLETE, f"Date must be in ISO-8601 'basic format'. Got '{stamp}'."
            ) from None
        return stamp
    if "date" in headers:
        try:
            moment = parsedate_to_datetime(headers["date"])
        except (TypeError, ValueError):
            raise Denied(INCOMPLETE, f"Invalid Date header: '{headers['date']}'.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
    raise Denied(
        INCOMPLETE,
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )


def _canonical_query(query: str) -> str:
    """Each name and value encoded as SigV4 encodes them, whatever the client sent.

    botocore sorts the pairs; it leaves their encoding as it finds it in the URL.
    """
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append(f"{quote(unquote(name), safe='-_.~')}={quote(unquote(value), safe='-_.~')}")
    return "&".join(pairs)


def principal_id(access_key: str) -> str:
    """A stable IAM user id (``AIDA...``) for a key: what ``caller`` and ``user`` hold."""
    return "AIDA" + hashlib.sha256(access_key.encode()).hexdigest()[:17].upper()


class SigV4Verifier:
    """Checks requests against ``credentials`` (access key id -> secret access key).

    ``clock`` is real time, not the local stack's movable clock: clients sign with
    the time of their own machine.
    """

    def __init__(
        self,
        credentials: Mapping[str, str],
        region: str,
        account: str,
        clock: Clock | None = None,
    ) -> None:
        self._credentials = dict(credentials)
        self._region = region
        self._account = account
        self._clock = clock or SystemClock()

    def verify(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> dict[str, str]:
        """The caller's ``requestContext.identity`` fields; raises ``Denied``."""
        received: dict[str, list[str]] = {}
        for name, value in headers:
            received.setdefault(name.lower(), []).append(value)
        first = {name: values[0] for name, values in received.items()}
        authorization = first.get("authorization")
        if not authorization:
            raise Denied(MISSING_AUTH, "Missing Authentication Token")
        parameters = _parameters(authorization)
        stamp = _timestamp(first)

        scope = parameters["Credential"].split("/")
        if len(scope) != 5:
            raise Denied(
                INCOMPLETE,
                "Credential should be of the form "
                f"'<access key>/<date>/{self._region}/{SERVICE}/{TERMINATOR}'.",
            )
        access_key, date, region, service, terminator = scope
        secret = self._credentials.get(access_key)
        if secret is None:
            raise Denied(UNRECOGNIZED, "The security token included in the request is invalid.")
        if date != stamp[:8]:
            raise Denied(
                INVALID,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{date}' != '{stamp[:8]}', from '{stamp}'.",
            )
        if region != self._region:
            raise Denied(INVALID, f"Credential should be scoped to a valid region, not '{region}'.")
        if service != SERVICE:
            raise Denied(INVALID, f"Credential should be scoped to correct service: '{SERVICE}'.")
        if terminator != TERMINATOR:
            raise Denied(
                INVALID,
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{terminator}'.",
            )
        self._check_skew(stamp)

        names = [n.strip().lower() for n in parameters["SignedHeaders"].split(";") if n.strip()]
        if "host" not in names:
            raise Denied(INCOMPLETE, "'Host' or ':authority' must be a 'SignedHeader'.")
        if "x-amz-security-token" in received and "x-amz-security-token" not in names:
            raise Denied(INCOMPLETE, "'X-Amz-Security-Token' must be a 'SignedHeader'.")
        # A declared payload hash stands in for the body in the signature, so it has to
        # be the body's: otherwise a signed request could carry any body.
        declared = first.get("x-amz-content-sha256")
        if declared is not None and declared.strip() != hashlib.sha256(body).hexdigest():
            raise Denied(INVALID, MISMATCH)

        signed = [(name, value) for name in names for value in received.get(name, [])]
        parts = urlsplit(target)
        url = f"http://{first.get('host', '')}{parts.path}"
        if parts.query:
            url += f"?{_canonical_query(parts.query)}"
        request = AWSRequest(method=method, url=url, data=body)
        for name, value in signed:
            request.headers[name] = value
        request.context["timestamp"] = stamp
        signer = _ReceivedRequestSigner(Credentials(access_key, secret), self._region, signed)
        try:
            canonical = signer.canonical_request(request)
            expected = signer.signature(signer.string_to_sign(request, canonical), request)
        except ValueError:  # a path or host no client could have signed
            raise Denied(INVALID, MISMATCH) from None
        provided = parameters["Signature"].encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode(), provided):
            raise Denied(INVALID, MISMATCH)

        user = principal_id(access_key)
        return {
            "accountId": self._account,
            "accessKey": access_key,
            "caller": user,
            "user": user,
            "userArn": f"arn:aws:iam::{self._account}:user/{access_key}",
        }

    def _check_skew(self, stamp: str) -> None:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
        now = self._clock.now().astimezone(UTC)

        def text(moment: datetime) -> str:
            return moment.strftime(SIGV4_TIMESTAMP)

        if signed_at < now - MAX_SKEW:
            raise Denied(
                INVALID,
                f"Signature expired: {stamp} is now earlier than {text(now - MAX_SKEW)} "
                f"({text(now)} - 5 min.)",
            )
        if signed_at > now + MAX_SKEW:
            raise Denied(
                INVALID,
                f"Signature not yet current: {stamp} is still later than "
                f"{text(now + MAX_SKEW)} ({text(now)} + 5 min.)",
            )

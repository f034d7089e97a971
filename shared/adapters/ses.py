"""Sending through SES v2 with the configuration set (engagement events, reputation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from shared.email import (
    OutgoingEmail,
    SendFailed,
    SendRejected,
    SendThrottled,
    SendUncertain,
    build_mime,
)

if TYPE_CHECKING:
    from mypy_boto3_sesv2.client import SESV2Client

THROTTLED = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "SendingPausedException", "Throttling"}
)
REJECTED = frozenset({"MessageRejected", "BadRequestException"})
SERVER_ERRORS = frozenset(
    {"InternalFailure", "InternalServerError", "InternalError", "ServiceUnavailable"}
)


class SesMailer:
    """Give the client no retries of its own (``total_max_attempts=1``): a retried
    SendEmail after a lost answer could mail the lead twice; the sender decides."""

    def __init__(self, client: SESV2Client, configuration_set: str) -> None:
        self._client = client
        self._configuration_set = configuration_set

    def send(self, email: OutgoingEmail) -> str:
        try:
            response = self._client.send_email(
                FromEmailAddress=email.from_address,
                Destination={"ToAddresses": [email.to_address]},
                Content={"Raw": {"Data": build_mime(email)}},
                ConfigurationSetName=self._configuration_set,
                EmailTags=[{"Name": k, "Value": v} for k, v in email.tags.items()],
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in THROTTLED:
                raise SendThrottled(code) from exc
            if code in REJECTED:
                raise SendRejected(code) from exc
            if status >= 500 or code in SERVER_ERRORS:
                raise SendUncertain(code) from exc  # SES may have accepted it first
            raise SendFailed(code) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise SendFailed(type(exc).__name__) from exc  # never connected: not sent
        except BotoCoreError as exc:
            raise SendUncertain(type(exc).__name__) from exc  # the answer was lost
        return response["MessageId"]

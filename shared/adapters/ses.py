"""Sending through SES v2 with the configuration set (engagement events, reputation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from shared.email import OutgoingEmail, SendFailed, SendRejected, SendThrottled, build_mime

if TYPE_CHECKING:
    from mypy_boto3_sesv2.client import SESV2Client

THROTTLED = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "SendingPausedException", "Throttling"}
)
REJECTED = frozenset({"MessageRejected", "BadRequestException"})


class SesMailer:
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
            if code in THROTTLED:
                raise SendThrottled(code) from exc
            if code in REJECTED:
                raise SendRejected(code) from exc
            raise SendFailed(code) from exc
        return response["MessageId"]

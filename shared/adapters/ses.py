"""Sending through SES v2 with the configuration set (engagement events, reputation)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from shared.domain.email import (
    Mailer,
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


class SendPace:
    """At most ``rate`` sends per second, evenly spaced, shared by every thread that
    sends (a function's concurrent jobs); ``rate`` 0: no limit.

    ``wait`` reserves the next free slot under a lock and sleeps until it outside it,
    so threads queue for slots in the order they asked.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must not be negative")
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: float | None = None

    def wait(self) -> float:
        """Wait for this send's slot; return the seconds waited."""
        if not self._interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + self._interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay


class PacedMailer:
    """A mailer whose sends keep to a ``SendPace`` (the account's SES sending rate)."""

    def __init__(self, mailer: Mailer, pace: SendPace) -> None:
        self._mailer = mailer
        self._pace = pace

    def send(self, email: OutgoingEmail) -> str:
        self._pace.wait()
        return self._mailer.send(email)

"""The AWS clients of a function: the one place where they are created.

They come from botocore, which boto3's clients are too: importing boto3 imports its S3
transfer manager (s3transfer, multiprocessing, boto3's resource and docs modules), a
cost of every cold start that no function here needs. Creating a client makes no call
on AWS; region, credentials and ``AWS_ENDPOINT_URL`` (the local stack) come from the
environment, as they do for ``boto3.client``.

One ``AwsClients`` per function container (a handler's ``build()``): its clients share
one botocore session, so the endpoint and retry data are loaded once, and the session
is created when the first client is, after the test tools or the local stack have set
the environment up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from botocore.config import Config
    from botocore.session import Session
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sesv2.client import SESV2Client
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

_shared_session: Session | None = None  # set by use_session()


def use_session(session: Session | None) -> Session | None:
    """Every ``AwsClients`` made after this without a session of its own (each function's
    ``build()``) uses ``session``; ``None`` goes back to a new session each. Returns the
    one it replaces. For a harness that hooks every function's calls on one session (the
    fault suite, the benchmarks), as ``boto3.DEFAULT_SESSION`` does for ``boto3.client``.
    """
    global _shared_session
    previous, _shared_session = _shared_session, session
    return previous


class AwsClients:
    def __init__(self, session: Session | None = None) -> None:
        self._session = session or _shared_session

    @overload
    def client(
        self, service: Literal["dynamodb"], config: Config | None = None
    ) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["sns"], config: Config | None = None) -> SNSClient: ...
    @overload
    def client(self, service: Literal["sqs"], config: Config | None = None) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sesv2"], config: Config | None = None) -> SESV2Client: ...
    @overload
    def client(
        self, service: Literal["secretsmanager"], config: Config | None = None
    ) -> SecretsManagerClient: ...

    def client(self, service: str, config: Config | None = None) -> Any:
        """A new client of ``service``, as ``boto3.client(service, config=config)`` makes it."""
        if self._session is None:
            import botocore.session

            self._session = botocore.session.get_session()
        return self._session.create_client(service, config=config)

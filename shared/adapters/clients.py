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
    from botocore.session import Session
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sesv2.client import SESV2Client
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient


class AwsClients:
    def __init__(self, session: Session | None = None) -> None:
        self._session = session

    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["sns"]) -> SNSClient: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sesv2"]) -> SESV2Client: ...
    @overload
    def client(self, service: Literal["secretsmanager"]) -> SecretsManagerClient: ...

    def client(self, service: str) -> Any:
        """A new client of ``service``, as ``boto3.client(service)`` makes it."""
        if self._session is None:
            import botocore.session

            self._session = botocore.session.get_session()
        return self._session.create_client(service)

"""The injector itself: a fault before a call leaves nothing done, after it the call is done
and its answer lost; calls are numbered per operation; only the named call fails."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from infra.provision import create_table
from tests.faults.injector import Call, Fault, Injector, Kind, Position, faults_for

TABLE = "injector-test"


@pytest.fixture
def table(aws: None) -> tuple[Injector, Any]:
    injector = Injector()
    session = boto3.Session(region_name="ap-northeast-1")
    injector.install(session._session)
    client = session.client("dynamodb")
    create_table(client, TABLE)
    return injector, client


def put(client: Any, key: str) -> None:
    client.put_item(TableName=TABLE, Item={"pk": {"S": key}, "sk": {"S": "X"}})


def stored(client: Any, key: str) -> bool:
    response = client.get_item(TableName=TABLE, Key={"pk": {"S": key}, "sk": {"S": "X"}})
    return "Item" in response


@pytest.mark.parametrize(
    ("position", "kind", "error", "applied"),
    [
        (Position.BEFORE, Kind.THROTTLING, ClientError, False),
        (Position.BEFORE, Kind.NETWORK, EndpointConnectionError, False),
        (Position.AFTER, Kind.SERVER, ClientError, True),
        (Position.AFTER, Kind.NETWORK, ReadTimeoutError, True),
    ],
)
def test_a_fault_fails_the_named_call_before_or_after_its_effect(
    table: tuple[Injector, Any],
    position: Position,
    kind: Kind,
    error: type[Exception],
    applied: bool,
) -> None:
    injector, client = table
    fault = Fault(Call("dynamodb", "PutItem", 2), position, kind)

    with injector.armed_with(fault) as calls:
        put(client, "first")
        with pytest.raises(error):
            put(client, "second")
        put(client, "third")

    assert injector.fired
    assert [str(c) for c in calls] == [
        "dynamodb.PutItem#1",
        "dynamodb.PutItem#2",
        "dynamodb.PutItem#3",
    ]
    assert (stored(client, "first"), stored(client, "second"), stored(client, "third")) == (
        True,
        applied,
        True,
    )


def test_each_service_throttles_and_fails_with_its_own_codes() -> None:
    def code(service: str, kind: Kind) -> str:
        error = Fault(Call(service, "Op", 1), Position.BEFORE, kind).error()
        assert isinstance(error, ClientError)
        return str(error.response["Error"]["Code"])

    assert code("dynamodb", Kind.THROTTLING) == "ProvisionedThroughputExceededException"
    assert code("sesv2", Kind.THROTTLING) == "TooManyRequestsException"
    assert code("dynamodb", Kind.SERVER) == "InternalServerError"
    assert code("sns", Kind.SERVER) == "ServiceUnavailable"


def test_reads_are_failed_before_only_and_writes_in_both_positions() -> None:
    faults = faults_for([Call("dynamodb", "GetItem", 1), Call("dynamodb", "PutItem", 1)])

    assert [str(f) for f in faults] == [
        "dynamodb.GetItem#1-before-5xx",
        "dynamodb.GetItem#1-before-network",
        "dynamodb.PutItem#1-before-throttling",
        "dynamodb.PutItem#1-before-5xx",
        "dynamodb.PutItem#1-before-network",
        "dynamodb.PutItem#1-after-5xx",
        "dynamodb.PutItem#1-after-network",
    ]

"""Create the wiring's resources through plain boto3 (moto in tests and the local stack).

The CDK app is the source of truth on AWS; this reads the same declaration
(``infra.wiring``) so the local resources have the same keys, indexes and streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.wiring import TABLE, TableSpec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        GlobalSecondaryIndexTypeDef,
    )


def create_table(client: DynamoDBClient, name: str, spec: TableSpec = TABLE) -> None:
    attributes: dict[str, str] = {
        spec.partition_key.name: spec.partition_key.type,
        spec.sort_key.name: spec.sort_key.type,
    }
    indexes: list[GlobalSecondaryIndexTypeDef] = []
    for index in spec.indexes:
        attributes[index.partition_key.name] = index.partition_key.type
        attributes[index.sort_key.name] = index.sort_key.type
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key.name, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key.name, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(index.projected),
                }
                if index.projected
                else {"ProjectionType": "KEYS_ONLY"},
            }
        )
    definitions: list[AttributeDefinitionTypeDef] = [
        {"AttributeName": n, "AttributeType": t}  # type: ignore[typeddict-item]
        for n, t in attributes.items()
    ]
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": spec.partition_key.name, "KeyType": "HASH"},
            {"AttributeName": spec.sort_key.name, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=definitions,
        GlobalSecondaryIndexes=indexes,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": spec.stream},
    )
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
    )

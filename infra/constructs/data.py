"""The single DynamoDB table that holds leads, their timeline and the counters."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.keys import data_key
from infra.wiring import Attribute, TableAccess, TableSpec

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}

# A function is granted the item actions its spec names (wiring.TableAccess): never
# Scan (nothing in a request or schedule path may scan) and no table management.
# DynamoDB calls KMS on the caller's behalf to unwrap (and, on writes, wrap) the table key.
KEY_READ_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
KEY_WRITE_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey")


def _attribute(attribute: Attribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=attribute.name, type=_ATTRIBUTE_TYPES[attribute.type])


class LeadData(Construct):
    """The lead table, encrypted with its own key, built from ``wiring.TABLE``."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: TableSpec) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.key = data_key(self, "Key", "Encrypts the lead table (personal data) at rest")
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_attribute(spec.partition_key),
            sort_key=_attribute(spec.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            stream=dynamodb.StreamViewType[spec.stream],
            time_to_live_attribute=spec.ttl_attribute,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in spec.indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key),
                projection_type=(
                    dynamodb.ProjectionType.INCLUDE
                    if index.projected
                    else dynamodb.ProjectionType.KEYS_ONLY
                ),
                non_key_attributes=list(index.projected) or None,
            )

    def grant_items(self, grantee: iam.IGrantable, access: TableAccess) -> None:
        """Grant the item actions of ``access``: its reads on the table (and queries on
        the due index), its writes only on items whose partition key is of the kinds it
        writes (IAM's ``dynamodb:LeadingKeys``), and what DynamoDB asks of the table key.

        Narrower than ``grant_read_data``/``grant_read_write_data``: those add Scan,
        table description, an ``index/*`` wildcard and writes to any item.
        """
        if access.reads:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=[f"dynamodb:{action}" for action in access.reads],
                resource_arns=[self.table.table_arn],
            )
        if access.due_index:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["dynamodb:Query"],
                resource_arns=[
                    f"{self.table.table_arn}/index/{index.name}" for index in self.spec.indexes
                ],
            )
        if access.writes:
            grantee.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[f"dynamodb:{action}" for action in access.writes],
                    resources=[self.table.table_arn],
                    conditions={
                        "ForAllValues:StringLike": {
                            "dynamodb:LeadingKeys": [leading_keys(kind) for kind in access.kinds]
                        }
                    },
                )
            )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[*KEY_READ_ACTIONS, *(KEY_WRITE_ACTIONS if access.writes else ())],
            resource_arns=[self.key.key_arn],
        )


def leading_keys(kind: str) -> str:
    """The ``dynamodb:LeadingKeys`` pattern of an item kind: ``LEAD#`` covers every
    ``LEAD#<id>``; a kind without ``#`` names one partition."""
    return f"{kind}*" if kind.endswith("#") else kind

"""The single DynamoDB table that holds leads, their timeline and the counters."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.wiring import Attribute, TableSpec

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}

# Item-level actions only: no Scan (nothing in a request or schedule path may scan)
# and no table management. Transactions are authorised by these item actions.
READ_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
INDEX_ACTIONS = ("dynamodb:Query",)
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
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the lead table (personal data) at rest",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
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

    def grant_items(self, grantee: iam.IGrantable, *, write: bool) -> None:
        """Grant item reads (and writes) on the table and queries on its named indexes.

        Narrower than ``grant_read_data``/``grant_read_write_data``: those add Scan,
        table description and an ``index/*`` wildcard.
        """
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[*READ_ACTIONS, *(WRITE_ACTIONS if write else ())],
            resource_arns=[self.table.table_arn],
        )
        if self.spec.indexes:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=list(INDEX_ACTIONS),
                resource_arns=[
                    f"{self.table.table_arn}/index/{index.name}" for index in self.spec.indexes
                ],
            )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[*KEY_READ_ACTIONS, *(KEY_WRITE_ACTIONS if write else ())],
            resource_arns=[self.key.key_arn],
        )

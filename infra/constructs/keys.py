"""The stack's customer-managed keys, made one way."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct


def data_key(scope: Construct, construct_id: str, description: str) -> kms.Key:
    """A key for data at rest: rotated yearly by KMS, and kept when the stack is deleted
    (what it encrypted, backups and retained logs included, would be unreadable)."""
    return kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )

"""The stack's customer-managed keys, made one way."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct

# What a producer needs of the key of an encrypted topic or queue: the service asks for a
# data key to encrypt each message and decrypts it again to deliver (or while it reuses
# it), in the producer's name. CDK's grant_publish/grant_send_messages grant
# "kms:GenerateDataKey*" (and "kms:ReEncrypt*"), wildcards cdk-nag flags (IAM5) that
# also cover key pairs neither service asks for.
PRODUCER_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


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

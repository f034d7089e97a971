"""cdk-nag acknowledgements: one rule, one construct, one specific reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (a finding id such as ``AwsSolutions-IAM5[Resource::*]``).

    Pass the CloudFormation resource the finding is about, so the acknowledgement
    cannot silence the same rule on anything added later around it.
    """
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))

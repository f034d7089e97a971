"""Log groups (retention and encryption) and the alarms on the stack's own metrics,
decided in one place."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from shared.metrics import NAMESPACE, SENDS_UNCERTAIN

# RetentionDays members by their number of days (the jsii enum has names as values).
RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


class Observability(Construct):
    """Owns the key that encrypts every log group of the stack."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self.retention = RETENTION_BY_DAYS[log_retention_days]
        # Logs can carry lead ids and error details: keep them under a key we control.
        self.logs_key = kms.Key(
            self,
            "LogsKey",
            description="Encrypts the CloudWatch log groups of the lead-nurture stack",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch Logs needs the key policy itself to allow it (an IAM grant cannot),
        # limited to log groups of this account and region.
        self.logs_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )

    def log_group(self, scope: Construct, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(
            scope,
            construct_id,
            retention=self.retention,
            encryption_key=self.logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def alarm_on_uncertain_sends(self) -> cloudwatch.Alarm:
        """Every send whose SES answer was lost is worth a look (the email may not have
        gone out, and it is never sent again): alarm on the first."""
        return cloudwatch.Alarm(
            self,
            "SendsUncertainAlarm",
            alarm_description=(
                "A send's SES answer was lost (5xx, timeout or an interrupted run): the "
                "step counts as sent and is not sent again; see email_send_uncertain"
            ),
            metric=cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=SENDS_UNCERTAIN,
                dimensions_map={"service": "sender"},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

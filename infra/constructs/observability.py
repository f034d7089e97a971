"""Log groups (retention and encryption), the alarms on the stack's own metrics and the
dashboard, decided in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import (
    SES_REVIEW_BOUNCE_PERCENT,
    SES_REVIEW_COMPLAINT_PERCENT,
    ReputationConfig,
)
from infra.constructs.keys import data_key
from infra.wiring import CAPTURE, ENGAGEMENT, HANDOFF, SCHEDULER, SENDER, UNSUBSCRIBE, VISITS
from shared.domain.metrics import (
    COMPLAINTS,
    EMAILS_DELIVERED,
    EMAILS_SENT,
    FORM_POSTS,
    HANDOFFS_PUBLISHED,
    HARD_BOUNCES,
    HUMAN_CLICKS,
    HUMAN_OPENS,
    LEADS_CREATED,
    LEADS_QUALIFIED,
    MACHINE_CLICKS,
    MACHINE_OPENS,
    NAMESPACE,
    OPT_OUTS,
    SENDING_PAUSED,
    SENDS_REJECTED,
    SENDS_THROTTLED,
    SENDS_UNCERTAIN,
    SOFT_BOUNCES,
)

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

# The functions that emit each of the stack's metrics (its ``service`` dimension); a
# metric several emit is shown as their sum.
EMITTERS: dict[str, tuple[str, ...]] = {
    FORM_POSTS: (CAPTURE.name,),
    LEADS_CREATED: (CAPTURE.name,),
    LEADS_QUALIFIED: (CAPTURE.name, ENGAGEMENT.name, VISITS.name),
    HANDOFFS_PUBLISHED: (HANDOFF.name,),
    EMAILS_SENT: (SENDER.name,),
    SENDS_THROTTLED: (SENDER.name,),
    SENDS_REJECTED: (SENDER.name,),
    SENDS_UNCERTAIN: (SENDER.name,),
    EMAILS_DELIVERED: (ENGAGEMENT.name,),
    HUMAN_OPENS: (ENGAGEMENT.name,),
    MACHINE_OPENS: (ENGAGEMENT.name,),
    HUMAN_CLICKS: (ENGAGEMENT.name,),
    MACHINE_CLICKS: (ENGAGEMENT.name,),
    HARD_BOUNCES: (ENGAGEMENT.name,),
    SOFT_BOUNCES: (ENGAGEMENT.name,),
    COMPLAINTS: (ENGAGEMENT.name,),
    OPT_OUTS: (UNSUBSCRIBE.name, ENGAGEMENT.name),
    SENDING_PAUSED: (SCHEDULER.name,),
}
# Counts on the dashboard's graphs: per hour reads well over a day and over a month.
GRAPH_PERIOD = Duration.hours(1)
# Queues and functions: short enough to see a burst of failures.
HEALTH_PERIOD = Duration.minutes(5)


def own_metric(
    name: str, service: str, period: Duration, label: str | None = None
) -> cloudwatch.Metric:
    """One of the stack's metrics (``shared/domain/metrics.py``) as one function emits it."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        statistic="Sum",
        period=period,
        label=label,
    )


def metric_id(name: str, service: str) -> str:
    """The id of one function's metric in a math expression (``sender_emailssent``)."""
    return f"{service}_{name.lower()}"


def total(name: str, period: Duration, label: str) -> cloudwatch.IMetric:
    """A metric as counted by every function that emits it (missing counts as 0)."""
    services = EMITTERS[name]
    if len(services) == 1:
        return own_metric(name, services[0], period, label)
    # Ids name the metric too: two expressions in one graph must not share an id.
    using = {metric_id(name, service): own_metric(name, service, period) for service in services}
    return cloudwatch.MathExpression(
        expression=" + ".join(f"FILL({each}, 0)" for each in using),
        using_metrics=using,
        label=label,
        period=period,
    )


class Observability(Construct):
    """Owns the key that encrypts every log group of the stack, the alarms on the
    stack's own metrics and the dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self.retention = RETENTION_BY_DAYS[log_retention_days]
        # Logs can carry lead ids and error details: keep them under a key we control.
        self.logs_key = data_key(
            self, "LogsKey", "Encrypts the CloudWatch log groups of the lead-nurture stack"
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
            metric=own_metric(SENDS_UNCERTAIN, SENDER.name, Duration.minutes(5)),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def alarm_on_sending_paused(self) -> cloudwatch.Alarm:
        """The sending guard paused nurture email: someone must find the cause and
        resume it (``lead-nurture sending resume``)."""
        return cloudwatch.Alarm(
            self,
            "SendingPausedAlarm",
            alarm_description=(
                "The sending guard paused nurture email: the bounce or complaint rate "
                "reached its limit. Find the cause, then run lead-nurture sending resume"
            ),
            metric=own_metric(SENDING_PAUSED, SCHEDULER.name, Duration.minutes(5)),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def alarm_on_reputation(self, reputation: ReputationConfig) -> list[cloudwatch.Alarm]:
        """Hard bounces and complaints per email sent, each alarmed below the rate at
        which SES reviews the account, once the window holds enough sends to mean
        something. No sends, no rate: missing data does not breach."""
        return [
            self._rate_alarm(
                "BounceRateAlarm",
                HARD_BOUNCES,
                reputation.bounce_rate_percent,
                SES_REVIEW_BOUNCE_PERCENT,
                reputation,
            ),
            self._rate_alarm(
                "ComplaintRateAlarm",
                COMPLAINTS,
                reputation.complaint_rate_percent,
                SES_REVIEW_COMPLAINT_PERCENT,
                reputation,
            ),
        ]

    def _rate_alarm(
        self,
        construct_id: str,
        name: str,
        threshold: float,
        ses_review: float,
        reputation: ReputationConfig,
    ) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=(
                f"{name} reached {threshold:g}% of the emails sent in {reputation.window_hours} h "
                f"(at least {reputation.min_sends}); SES reviews accounts at {ses_review:g}%. "
                "Find the list or step behind it: lead-nurture report funnel"
            ),
            metric=rate_of(name, reputation),
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def dashboard(
        self,
        *,
        functions: Mapping[str, lambda_.IFunction],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        alarms: Sequence[cloudwatch.IAlarm],
        reputation: ReputationConfig,
    ) -> cloudwatch.Dashboard:
        """The funnel, the email KPIs, what failed for good and the functions' health."""

        def graph(title: str, *names: tuple[str, str]) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=[total(name, GRAPH_PERIOD, label) for name, label in names],
                width=12,
            )

        funnel = [
            (FORM_POSTS, "Form posts"),
            (LEADS_CREATED, "Leads created"),
            (LEADS_QUALIFIED, "MQLs"),
            (HANDOFFS_PUBLISHED, "Hand-offs"),
        ]
        bounce_rate = rate_of(HARD_BOUNCES, reputation, "Hard bounce rate (%)")
        complaint_rate = rate_of(COMPLAINTS, reputation, "Complaint rate (%)")
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=Stack.of(self).stack_name
        )
        dashboard.add_widgets(
            cloudwatch.SingleValueWidget(
                title="Funnel over the time range",
                metrics=[total(name, GRAPH_PERIOD, label) for name, label in funnel],
                set_period_to_time_range=True,
                width=24,
            )
        )
        dashboard.add_widgets(
            graph("Funnel per hour", *funnel),
            cloudwatch.GraphWidget(
                title="MQLs per hour, by where they qualified",
                left=[
                    own_metric(LEADS_QUALIFIED, service, GRAPH_PERIOD, service)
                    for service in EMITTERS[LEADS_QUALIFIED]
                ],
                stacked=True,
                width=12,
            ),
        )
        dashboard.add_widgets(
            graph(
                "Emails per hour",
                (EMAILS_SENT, "Sent"),
                (EMAILS_DELIVERED, "Delivered"),
                (OPT_OUTS, "Opt-outs"),
            ),
            graph(
                "Opens and clicks per hour, by person or machine",
                (HUMAN_OPENS, "Opens (people)"),
                (MACHINE_OPENS, "Opens (machines)"),
                (HUMAN_CLICKS, "Clicks (people)"),
                (MACHINE_CLICKS, "Clicks (machines)"),
            ),
        )
        dashboard.add_widgets(
            graph(
                "Bounces and complaints per hour",
                (HARD_BOUNCES, "Hard bounces"),
                (SOFT_BOUNCES, "Soft bounces"),
                (COMPLAINTS, "Complaints"),
            ),
            cloudwatch.GraphWidget(
                title=(
                    f"Bounce and complaint rates over {reputation.window_hours} h "
                    f"(at least {reputation.min_sends} sent)"
                ),
                left=[bounce_rate],
                right=[complaint_rate],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=reputation.bounce_rate_percent, label="Bounce alarm"
                    )
                ],
                right_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=reputation.complaint_rate_percent, label="Complaint alarm"
                    )
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            graph(
                "SES answers to sends, per hour",
                (SENDS_THROTTLED, "Throttled"),
                (SENDS_REJECTED, "Rejected"),
                (SENDS_UNCERTAIN, "Uncertain"),
                (SENDING_PAUSED, "Sending paused by the guard"),
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues: messages waiting",
                left=[
                    queue.metric_approximate_number_of_messages_visible(
                        period=HEALTH_PERIOD, statistic="Maximum", label=label
                    )
                    for label, queue in dead_letter_queues.items()
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function errors",
                left=[
                    function.metric_errors(period=HEALTH_PERIOD, statistic="Sum", label=name)
                    for name, function in functions.items()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function throttles",
                left=[
                    function.metric_throttles(period=HEALTH_PERIOD, statistic="Sum", label=name)
                    for name, function in functions.items()
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24)
        )
        return dashboard


def rate_of(
    name: str, reputation: ReputationConfig, label: str | None = None
) -> cloudwatch.MathExpression:
    """``name`` per email sent, in percent, over the reputation window; 0 while the
    window holds fewer sends than ``min_sends`` (one bounce of three sends is no news)."""
    window = Duration.hours(reputation.window_hours)
    sent, events = metric_id(EMAILS_SENT, SENDER.name), metric_id(name, ENGAGEMENT.name)
    return cloudwatch.MathExpression(
        expression=f"IF({sent} >= {reputation.min_sends}, 100 * FILL({events}, 0) / {sent}, 0)",
        using_metrics={
            sent: own_metric(EMAILS_SENT, SENDER.name, window),
            events: own_metric(name, ENGAGEMENT.name, window),
        },
        label=label,
        period=window,
    )

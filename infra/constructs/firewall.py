"""WAF in front of the public API stage."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# Managed rule groups with few false positives on form posts. The common rule set is
# left out on purpose: its 8 KB body limit and XSS body rules would block legitimate
# multipart posts, which the function already bounds and validates.
_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesKnownBadInputsRuleSet",
)


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=True,
    )


class ApiFirewall(Construct):
    """A web ACL on the stage: per-IP rate limit plus AWS reputation and bad-input rules."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: apigw.Stage, ip_rate_limit: int
    ) -> None:
        super().__init__(scope, construct_id)
        rate_limit = wafv2.CfnWebACL.RuleProperty(
            name="ip-rate-limit",
            priority=0,
            # Stage throttling is shared by all callers; this stops one source from
            # using it all up. 429 tells a well-behaved client to back off.
            action=wafv2.CfnWebACL.RuleActionProperty(
                block=wafv2.CfnWebACL.BlockActionProperty(
                    custom_response=wafv2.CfnWebACL.CustomResponseProperty(response_code=429)
                )
            ),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    aggregate_key_type="IP", limit=ip_rate_limit, evaluation_window_sec=300
                )
            ),
            visibility_config=_visibility("ip-rate-limit"),
        )
        managed = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=group
                    )
                ),
                visibility_config=_visibility(group),
            )
            for priority, group in enumerate(_MANAGED_RULE_GROUPS, start=1)
        ]
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("lead-nurture-api"),
            rules=[rate_limit, *managed],
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )

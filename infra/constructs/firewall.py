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


OPT_OUT_PATH = "/unsubscribe"


def _path_ends_with(suffix: str) -> wafv2.CfnWebACL.StatementProperty:
    # The path WAF sees carries the stage (/v1/unsubscribe), or a custom domain's base path.
    return wafv2.CfnWebACL.StatementProperty(
        byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
            positional_constraint="ENDS_WITH",
            search_string=suffix,
            text_transformations=[
                wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="LOWERCASE")
            ],
        )
    )


def _ip_rate_rule(
    name: str, priority: int, limit: int, scope: wafv2.CfnWebACL.StatementProperty
) -> wafv2.CfnWebACL.RuleProperty:
    """429 for a source IP over ``limit`` requests in 5 minutes, counting what ``scope``
    matches. 429 tells a well-behaved client to back off."""
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(
            block=wafv2.CfnWebACL.BlockActionProperty(
                custom_response=wafv2.CfnWebACL.CustomResponseProperty(response_code=429)
            )
        ),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                aggregate_key_type="IP",
                limit=limit,
                evaluation_window_sec=300,
                scope_down_statement=scope,
            )
        ),
        visibility_config=_visibility(name),
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
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: apigw.Stage,
        ip_rate_limit: int,
        opt_out_ip_rate_limit: int,
    ) -> None:
        super().__init__(scope, construct_id)
        rate_limit = _ip_rate_rule(
            "ip-rate-limit",
            0,
            ip_rate_limit,
            # Opt-outs are counted apart (the next rule): a person behind an office's shared
            # address must be able to opt out while colleagues post forms.
            wafv2.CfnWebACL.StatementProperty(
                not_statement=wafv2.CfnWebACL.NotStatementProperty(
                    statement=_path_ends_with(OPT_OUT_PATH)
                )
            ),
        )
        # One-click opt-outs come in bursts from a mail provider's few servers: a limit
        # of their own, far above the forms', still stops one source flooding the route.
        opt_out_limit = _ip_rate_rule(
            "opt-out-ip-rate-limit", 1, opt_out_ip_rate_limit, _path_ends_with(OPT_OUT_PATH)
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
            for priority, group in enumerate(_MANAGED_RULE_GROUPS, start=2)
        ]
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("lead-nurture-api"),
            rules=[rate_limit, opt_out_limit, *managed],
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )

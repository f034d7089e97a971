"""The REST API: every route of the wiring, proxied to its function."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import DeploymentConfig
from infra.constructs.nag import acknowledge
from infra.constructs.observability import Observability
from infra.wiring import BINARY_MEDIA_TYPES, FUNCTIONS, FunctionSpec, Route

STAGE = "v1"

_AUTHORIZATION = {
    "NONE": apigw.AuthorizationType.NONE,
    "IAM": apigw.AuthorizationType.IAM,
}

_PUBLIC_FORM_REASON = (
    "Public form endpoint posted by anonymous website visitors, so no authorizer can "
    "apply; abuse is handled by the route's throttling, the WAF rate limit, and the honeypot "
    "field and body size limit checked in the function."
)
_BEACON_REASON = (
    "The website's own first-party tracking snippet and its page-view beacons, sent by "
    "anonymous visitors' browsers after they consented, so no authorizer can apply; "
    "the routes have their own method throttling, the WAF rate limit applies, and the "
    "function accepts only the snippet's small JSON beacons for the site's own origins."
)
_SIGNED_LINK_REASON = (
    "Opened from a link in an email by a recipient who has no account, and posted by "
    "mail providers for RFC 8058 one-click unsubscribe, so no authorizer can apply; the "
    "function verifies the link's HMAC-signed token, and the route's own throttling "
    "bounds abuse."
)

# One JSON object per request; no body or query string, so no personal data.
_ACCESS_LOG_FORMAT = apigw.AccessLogFormat.custom(
    json.dumps(
        {
            "requestId": apigw.AccessLogField.context_request_id(),
            "extendedRequestId": apigw.AccessLogField.context_extended_request_id(),
            "requestTime": apigw.AccessLogField.context_request_time(),
            "ip": apigw.AccessLogField.context_identity_source_ip(),
            "httpMethod": apigw.AccessLogField.context_http_method(),
            "resourcePath": apigw.AccessLogField.context_resource_path(),
            "status": apigw.AccessLogField.context_status(),
            "protocol": apigw.AccessLogField.context_protocol(),
            "responseLength": apigw.AccessLogField.context_response_length(),
            "responseLatency": apigw.AccessLogField.context_response_latency(),
            "integrationLatency": apigw.AccessLogField.context_integration_latency(),
            "integrationStatus": apigw.AccessLogField.context_integration_status(),
            "error": apigw.AccessLogField.context_error_message(),
        }
    )
)


def _throttled(config: DeploymentConfig, route: Route) -> apigw.MethodDeploymentOptions:
    limits = getattr(config.throttling, route.throttle)
    return apigw.MethodDeploymentOptions(
        throttling_rate_limit=limits.rate_limit, throttling_burst_limit=limits.burst_limit
    )


class LeadApi(Construct):
    """REST API with proxy integrations; CORS preflight is answered by the functions.

    The API exists before the functions (some link to it, e.g. unsubscribe URLs in
    emails); ``add_routes`` then wires the routes of the specs to their functions.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        observability: Observability,
    ) -> None:
        super().__init__(scope, construct_id)
        account_logging = _ApiGatewayLogging(self, "AccountLogging")
        access_logs = observability.log_group(self, "AccessLogs")
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name="lead-nurture",
            description="Lead capture, unsubscribe and admin routes",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=list(BINARY_MEDIA_TYPES),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                # The stage's default; every route below has its own bucket.
                throttling_rate_limit=config.throttling.forms.rate_limit,
                throttling_burst_limit=config.throttling.forms.burst_limit,
                method_options={
                    f"{route.path}/{route.method}": _throttled(config, route)
                    for spec in FUNCTIONS
                    for route in spec.routes
                },
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=_ACCESS_LOG_FORMAT,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Request and response bodies hold personal data; never log them.
                data_trace_enabled=False,
                metrics_enabled=True,
            ),
        )
        # Execution logging fails to deploy until the account names a logging role.
        self.rest_api.deployment_stage.node.add_dependency(account_logging.account)
        acknowledge(
            self.rest_api.node.find_child("Resource"),
            "AwsSolutions-APIG2",
            "Requests are validated in the function, which returns field-level errors to "
            "the form; an API Gateway validator could only return a generic 400.",
        )

    def add_routes(
        self, specs: Sequence[FunctionSpec], functions: Mapping[str, lambda_.IFunction]
    ) -> None:
        for spec in specs:
            # Routes of link-signing functions are opened from emails, not from forms.
            reason = _SIGNED_LINK_REASON if spec.signs_links else _PUBLIC_FORM_REASON
            for route in spec.routes:
                public = _BEACON_REASON if route.throttle == "beacon" else reason
                self._add_route(functions[spec.name], route, public_reason=public)

    def _add_route(self, function: lambda_.IFunction, route: Route, *, public_reason: str) -> None:
        resource = self.rest_api.root.resource_for_path(route.path)
        # allow_test_invoke=False: no extra Lambda permission for the console test stage.
        integration = apigw.LambdaIntegration(function, proxy=True, allow_test_invoke=False)
        method = resource.add_method(
            route.method, integration, authorization_type=_AUTHORIZATION[route.auth]
        )
        if route.auth == "IAM":
            acknowledge(
                method.node.find_child("Resource"),
                "AwsSolutions-COG4",
                "Admin and sales tooling call this route with IAM (SigV4) credentials, "
                "not as Cognito users.",
            )
            return
        acknowledge(method.node.find_child("Resource"), "AwsSolutions-APIG4", public_reason)
        acknowledge(method.node.find_child("Resource"), "AwsSolutions-COG4", public_reason)
        # Browsers preflight cross-origin posts. The function answers OPTIONS itself,
        # because it must echo one of several allowed origins, which a mock cannot.
        if route.cross_origin and resource.node.try_find_child("OPTIONS") is None:
            preflight = resource.add_method("OPTIONS", integration)
            acknowledge(
                preflight.node.find_child("Resource"),
                "AwsSolutions-APIG4",
                "CORS preflight: browsers send it without credentials by design.",
            )


class _ApiGatewayLogging(Construct):
    """The account-level role API Gateway needs before any stage can log to CloudWatch.

    API Gateway reads it from the account settings of the region, so it serves every
    REST API there; the permissions match the AWS managed policy
    AmazonAPIGatewayPushToCloudWatchLogs, written inline (no managed policy) and
    limited to this account and region.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        log_groups = Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name="*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="Lets API Gateway write execution logs (account-level setting)",
            inline_policies={
                "PushToCloudWatchLogs": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=[
                                "logs:CreateLogGroup",
                                "logs:CreateLogStream",
                                "logs:DescribeLogGroups",
                                "logs:DescribeLogStreams",
                                "logs:PutLogEvents",
                                "logs:GetLogEvents",
                                "logs:FilterLogEvents",
                            ],
                            resources=[log_groups],
                        )
                    ]
                )
            },
        )
        # Other APIs of the account rely on the setting too: keep the role on delete,
        # as CDK's own cloudWatchRole does.
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            role.node.find_child("Resource"),
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:*]",
            "API Gateway names execution log groups API-Gateway-Execution-Logs_{api-id}/"
            "{stage} and the role is shared by every REST API of the account and region, "
            "so it cannot name them in advance.",
        )
        self.account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=role.role_arn)

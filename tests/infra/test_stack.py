"""The synthesized template follows the wiring and the deployment config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.config import CONTEXT_KEY, DeploymentConfig
from infra.wiring import FUNCTIONS, TABLE, FunctionSpec
from tests.infra.conftest import Synthesized, cdk_context, synthesize

pytestmark = pytest.mark.infra

Resources = dict[str, dict[str, Any]]

ITEM_READS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


def of_type(template_json: dict[str, Any], resource_type: str) -> Resources:
    return {
        logical_id: resource
        for logical_id, resource in template_json["Resources"].items()
        if resource["Type"] == resource_type
    }


def only(resources: Resources) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def table_id(template_json: dict[str, Any]) -> str:
    return only(of_type(template_json, "AWS::DynamoDB::Table"))[0]


def function_for(template_json: dict[str, Any], spec: FunctionSpec) -> tuple[str, dict[str, Any]]:
    return only(
        {
            logical_id: resource
            for logical_id, resource in of_type(template_json, "AWS::Lambda::Function").items()
            if resource["Properties"]["Handler"] == spec.handler
        }
    )


def statements_of_role(template_json: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    role = template_json["Resources"][role_id]["Properties"]
    statements = [
        statement
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    for policy in of_type(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def method_routes(template_json: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """API methods by (HTTP method, path), the path rebuilt from the resource tree."""
    resources = of_type(template_json, "AWS::ApiGateway::Resource")

    def path_of(reference: dict[str, Any]) -> str:
        if "Fn::GetAtt" in reference:  # the root resource
            return ""
        resource = resources[reference["Ref"]]["Properties"]
        return f"{path_of(resource['ParentId'])}/{resource['PathPart']}"

    return {
        (method["Properties"]["HttpMethod"], path_of(method["Properties"]["ResourceId"]) or "/"): (
            method["Properties"]
        )
        for method in of_type(template_json, "AWS::ApiGateway::Method").values()
    }


# --- data -------------------------------------------------------------------------------


def test_table_is_on_demand_recoverable_streamed_and_expiring(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": TABLE.partition_key.name, "KeyType": "HASH"},
                {"AttributeName": TABLE.sort_key.name, "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "DeletionProtectionEnabled": True,
        },
    )
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})


def test_table_is_encrypted_with_its_own_rotating_key(template_json: dict[str, Any]) -> None:
    table = template_json["Resources"][table_id(template_json)]["Properties"]
    sse = table["SSESpecification"]
    assert sse["SSEEnabled"] is True
    assert sse["SSEType"] == "KMS"
    key_id = sse["KMSMasterKeyId"]["Fn::GetAtt"][0]
    key = template_json["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True


def test_due_index_is_sparse_sharded_and_projects_only_what_the_scheduler_reads(
    template: Template,
) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": "due_shard", "AttributeType": "N"},
                    {"AttributeName": "due_at", "AttributeType": "S"},
                ]
            ),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "due",
                    "KeySchema": [
                        {"AttributeName": "due_shard", "KeyType": "HASH"},
                        {"AttributeName": "due_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {
                        "ProjectionType": "INCLUDE",
                        "NonKeyAttributes": ["lead_id", "program_id", "step_id", "version"],
                    },
                }
            ],
        },
    )


def test_every_index_of_the_wiring_is_built(template_json: dict[str, Any]) -> None:
    table = template_json["Resources"][table_id(template_json)]["Properties"]
    built = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
    assert set(built) == {index.name for index in TABLE.indexes}
    for index in TABLE.indexes:
        assert built[index.name]["Projection"].get("NonKeyAttributes", []) == list(index.projected)


def test_every_kms_key_rotates(template_json: dict[str, Any]) -> None:
    keys = of_type(template_json, "AWS::KMS::Key")
    assert keys
    assert all(key["Properties"]["EnableKeyRotation"] is True for key in keys.values())


# --- functions --------------------------------------------------------------------------


def test_one_function_per_wiring_entry_and_no_hidden_ones(template: Template) -> None:
    # A second Lambda would mean a CDK custom resource crept in (e.g. log retention).
    template.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_function_runtime_and_observability(
    template_json: dict[str, Any], spec: FunctionSpec
) -> None:
    _, function = function_for(template_json, spec)
    props = function["Properties"]
    layer_id = only(of_type(template_json, "AWS::Lambda::LayerVersion"))[0]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Layers"] == [{"Ref": layer_id}]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["MemorySize"] == spec.memory_mb
    assert props["Timeout"] == spec.timeout_s
    assert props["Description"] == spec.description


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_function_logs_to_its_own_retained_encrypted_group(
    template_json: dict[str, Any], spec: FunctionSpec
) -> None:
    _, function = function_for(template_json, spec)
    log_group = template_json["Resources"][
        function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    ]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == DeploymentConfig().log_retention_days
    assert "KmsKeyId" in log_group["Properties"]


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_function_environment(template_json: dict[str, Any], spec: FunctionSpec) -> None:
    _, function = function_for(template_json, spec)
    config = DeploymentConfig()
    assert function["Properties"]["Environment"]["Variables"] == {
        "TABLE_NAME": {"Ref": table_id(template_json)},
        "POWERTOOLS_SERVICE_NAME": spec.name,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "CORS_ORIGINS": ",".join(config.cors_origins),
        "REDIRECT_ORIGINS": ",".join(config.redirect_origins),
        "CONSENT_REQUIRED_FORMS": "newsletter,download,trial",
        "CONSENT_VERSION": config.consent_version,
        "MAX_BODY_BYTES": "32768",
        "DEFAULT_TIMEZONE": "Asia/Tokyo",
        **spec.environment,
    }


def test_layer_targets_the_function_runtime(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.13"], "CompatibleArchitectures": ["arm64"]},
    )


# --- permissions ------------------------------------------------------------------------


def test_no_role_uses_a_managed_policy(template_json: dict[str, Any]) -> None:
    roles = of_type(template_json, "AWS::IAM::Role")
    assert roles
    assert {
        role_id: role["Properties"].get("ManagedPolicyArns") for role_id, role in roles.items()
    } == dict.fromkeys(roles)
    assert of_type(template_json, "AWS::IAM::ManagedPolicy") == {}


def test_nothing_may_scan_the_table(template_json: dict[str, Any]) -> None:
    actions = {
        action
        for role_id in of_type(template_json, "AWS::IAM::Role")
        for statement in statements_of_role(template_json, role_id)
        for action in as_list(statement["Action"])
    }
    assert "dynamodb:GetItem" in actions  # the walk found the table grants at all
    assert not {action for action in actions if action in ("dynamodb:Scan", "dynamodb:*")}


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_function_reaches_only_the_table_its_spec_names(
    template_json: dict[str, Any], spec: FunctionSpec
) -> None:
    _, function = function_for(template_json, spec)
    table = table_id(template_json)
    table_arn = {"Fn::GetAtt": [table, "Arn"]}
    index_arns = [
        {"Fn::Join": ["", [table_arn, f"/index/{index.name}"]]} for index in TABLE.indexes
    ]
    key_arn = template_json["Resources"][table]["Properties"]["SSESpecification"]["KMSMasterKeyId"]
    statements = statements_of_role(template_json, function["Properties"]["Role"]["Fn::GetAtt"][0])

    dynamodb = [s for s in statements if as_list(s["Action"])[0].startswith("dynamodb:")]
    granted = {action for s in dynamodb for action in as_list(s["Action"])}
    for statement in dynamodb:
        assert statement["Effect"] == "Allow"
        assert all(r == table_arn or r in index_arns for r in as_list(statement["Resource"]))
    kms = [s for s in statements if as_list(s["Action"])[0].startswith("kms:")]
    assert all(s["Resource"] == key_arn for s in kms)
    kms_actions = {action for s in kms for action in as_list(s["Action"])}

    if spec.table_access == "none":
        assert granted == set()
        assert kms_actions == set()
    elif spec.table_access == "read":
        assert granted >= ITEM_READS
        assert not granted & ITEM_WRITES
        assert kms_actions == {"kms:Decrypt", "kms:DescribeKey"}
    else:
        assert granted >= ITEM_READS | ITEM_WRITES
        assert {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"} <= kms_actions


# --- API --------------------------------------------------------------------------------


def test_routes_follow_the_wiring(template_json: dict[str, Any]) -> None:
    routes = method_routes(template_json)
    expected: set[tuple[str, str]] = set()
    for spec in FUNCTIONS:
        function_id, _ = function_for(template_json, spec)
        for route in spec.routes:
            keys: list[tuple[str, str]] = [(route.method, route.path)]
            if route.auth == "NONE":
                keys.append(("OPTIONS", route.path))  # preflight, answered by the function
            for key in keys:
                method = routes[key]
                assert method["Integration"]["Type"] == "AWS_PROXY"
                assert {"Fn::GetAtt": [function_id, "Arn"]} in method["Integration"]["Uri"][
                    "Fn::Join"
                ][1]
                authorization = "AWS_IAM" if route.auth == "IAM" else "NONE"
                assert method["AuthorizationType"] == authorization
            expected.update(keys)
    assert set(routes) == expected


def test_capture_is_a_public_post_on_leads(template_json: dict[str, Any]) -> None:
    routes = method_routes(template_json)
    assert routes["POST", "/leads"]["AuthorizationType"] == "NONE"
    assert routes["POST", "/leads"]["Integration"]["Type"] == "AWS_PROXY"
    assert routes["OPTIONS", "/leads"]["Integration"]["Type"] == "AWS_PROXY"


def test_no_api_gateway_cors_mock(template_json: dict[str, Any]) -> None:
    integrations = {
        method["Integration"]["Type"] for method in method_routes(template_json).values()
    }
    assert integrations == {"AWS_PROXY"}


def test_api_accepts_multipart_forms(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"BinaryMediaTypes": ["multipart/form-data"]}
    )


def test_stage_throttles_traces_and_logs_without_bodies(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "MethodSettings": [
                Match.object_like(
                    {
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "ThrottlingRateLimit": 20,
                        "ThrottlingBurstLimit": 40,
                        "LoggingLevel": "ERROR",
                        "DataTraceEnabled": False,
                    }
                )
            ],
        },
    )


def test_access_log_is_json_into_a_retained_log_group(template_json: dict[str, Any]) -> None:
    _, stage = only(of_type(template_json, "AWS::ApiGateway::Stage"))
    setting = stage["Properties"]["AccessLogSetting"]
    fields = json.loads(setting["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert fields["status"] == "$context.status"
    references = [
        part["Ref"]
        for part in setting["DestinationArn"]["Fn::Join"][1]
        if isinstance(part, dict) and not part.get("Ref", "AWS::").startswith("AWS::")
    ]
    assert len(references) == 1
    log_group = template_json["Resources"][references[0]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == DeploymentConfig().log_retention_days


def test_execution_logging_has_an_account_role_before_the_stage(
    template_json: dict[str, Any],
) -> None:
    account_id, account = only(of_type(template_json, "AWS::ApiGateway::Account"))
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert template_json["Resources"][role_id]["DeletionPolicy"] == "Retain"
    _, stage = only(of_type(template_json, "AWS::ApiGateway::Stage"))
    assert account_id in stage["DependsOn"]


def test_waf_guards_the_stage(template_json: dict[str, Any]) -> None:
    stage_id, _ = only(of_type(template_json, "AWS::ApiGateway::Stage"))
    acl_id, acl = only(of_type(template_json, "AWS::WAFv2::WebACL"))
    _, association = only(of_type(template_json, "AWS::WAFv2::WebACLAssociation"))
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert {"Ref": stage_id} in association["Properties"]["ResourceArn"]["Fn::Join"][1]
    rate = next(
        rule for rule in acl["Properties"]["Rules"] if "RateBasedStatement" in rule["Statement"]
    )
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == DeploymentConfig().waf_ip_rate_limit
    assert rate["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429


def test_outputs_the_api_url(template: Template) -> None:
    template.has_output("ApiUrl", {"Value": {"Fn::Join": ["", Match.array_with(["https://"])]}})


# --- deployment config ------------------------------------------------------------------


@pytest.fixture(scope="module")
def customised(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = cdk_context()
    context[CONTEXT_KEY] = {
        "cors_origins": ["https://www.example.co.jp", "https://lp.example.co.jp"],
        "throttle_rate_limit": 5,
        "throttle_burst_limit": 10,
        "log_retention_days": 90,
        "waf_enabled": False,
    }
    return synthesize(context, Path(tmp_path_factory.mktemp("cdk.out.customised")))


def test_context_drives_function_environment(customised: Synthesized) -> None:
    _, function = function_for(customised.template_json, FUNCTIONS[0])
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["CORS_ORIGINS"] == "https://www.example.co.jp,https://lp.example.co.jp"
    assert variables["REDIRECT_ORIGINS"] == "http://localhost:3000"  # default kept


def test_context_drives_throttling_and_retention(customised: Synthesized) -> None:
    customised.template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": [
                Match.object_like({"ThrottlingRateLimit": 5, "ThrottlingBurstLimit": 10})
            ]
        },
    )
    retention = {
        group["Properties"]["RetentionInDays"]
        for group in of_type(customised.template_json, "AWS::Logs::LogGroup").values()
    }
    assert retention == {90}


def test_waf_can_be_left_out(customised: Synthesized) -> None:
    # Synth passed cdk-nag, so APIG3 was acknowledged for this case.
    customised.template.resource_count_is("AWS::WAFv2::WebACL", 0)
    customised.template.resource_count_is("AWS::WAFv2::WebACLAssociation", 0)

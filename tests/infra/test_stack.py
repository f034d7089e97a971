"""The synthesized template follows the wiring and the deployment config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.config import CONTEXT_KEY, DeploymentConfig, function_environment
from infra.config import Resources as FunctionResources
from infra.wiring import (
    ADMIN,
    CONFIGURATION_SET,
    EMAIL_EVENTS_TOPIC,
    ENGAGEMENT,
    ENGAGEMENT_QUEUE,
    FUNCTIONS,
    HANDOFF,
    QUEUES,
    SALES_TOPIC,
    SCHEDULER,
    SEND_QUEUE,
    SENDER,
    TABLE,
    TOPICS,
    UNSUBSCRIBE,
    VISITS,
    FunctionSpec,
    QueueSpec,
)
from tests.infra.conftest import ROOT, Synthesized, cdk_context, synthesize

pytestmark = pytest.mark.infra

Resources = dict[str, dict[str, Any]]


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


def role_of(template_json: dict[str, Any], spec: FunctionSpec) -> str:
    _, function = function_for(template_json, spec)
    role_id: str = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return role_id


def actions_of_role(template_json: dict[str, Any], role_id: str) -> set[str]:
    return {
        action
        for statement in statements_of_role(template_json, role_id)
        for action in as_list(statement["Action"])
    }


def ref_of(template_json: dict[str, Any], resource_type: str) -> dict[str, str]:
    return {"Ref": only(of_type(template_json, resource_type))[0]}


def consumer_of(queue: QueueSpec) -> FunctionSpec:
    (consumer,) = (spec for spec in FUNCTIONS if spec.consumes == queue)
    return consumer


def event_source_for(template_json: dict[str, Any], spec: FunctionSpec) -> dict[str, Any]:
    function_id, _ = function_for(template_json, spec)
    _, mapping = only(
        {
            logical_id: resource
            for logical_id, resource in of_type(
                template_json, "AWS::Lambda::EventSourceMapping"
            ).items()
            if resource["Properties"]["FunctionName"] == {"Ref": function_id}
        }
    )
    properties: dict[str, Any] = mapping["Properties"]
    return properties


def queue_for(template_json: dict[str, Any], queue: QueueSpec) -> tuple[str, dict[str, Any]]:
    """The queue of a spec, found through its consumer's event source mapping."""
    queue_id = event_source_for(template_json, consumer_of(queue))["EventSourceArn"]["Fn::GetAtt"][
        0
    ]
    resource: dict[str, Any] = template_json["Resources"][queue_id]
    return queue_id, resource


def dead_letter_queue_of(template_json: dict[str, Any], queue: QueueSpec) -> str:
    """The dead-letter queue of a spec's queue, by its redrive policy."""
    redrive = queue_for(template_json, queue)[1]["Properties"]["RedrivePolicy"]
    return str(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0])


def topic_id(template_json: dict[str, Any], name: str) -> str:
    """The topic a wiring name stands for (named ``<stack>-<name>``)."""
    topic_id, _ = only(
        {
            logical_id: resource
            for logical_id, resource in of_type(template_json, "AWS::SNS::Topic").items()
            if resource["Properties"]["TopicName"] == f"LeadNurture-{name}"
        }
    )
    return topic_id


def topic_policy_of(template_json: dict[str, Any], name: str) -> list[dict[str, Any]]:
    topic = {"Ref": topic_id(template_json, name)}
    _, policy = only(
        {
            logical_id: resource
            for logical_id, resource in of_type(template_json, "AWS::SNS::TopicPolicy").items()
            if resource["Properties"]["Topics"] == [topic]
        }
    )
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def topic_key_arn(template_json: dict[str, Any], name: str) -> dict[str, Any]:
    topic = template_json["Resources"][topic_id(template_json, name)]
    key_arn: dict[str, Any] = topic["Properties"]["KmsMasterKeyId"]
    return key_arn


def stream_consumers() -> list[FunctionSpec]:
    return [spec for spec in FUNCTIONS if spec.consumes_stream]


def failure_queue_of(
    template_json: dict[str, Any], spec: FunctionSpec
) -> tuple[str, dict[str, Any]]:
    """The on-failure destination of a stream consumer's event source."""
    destination = event_source_for(template_json, spec)["DestinationConfig"]["OnFailure"]
    queue_id = destination["Destination"]["Fn::GetAtt"][0]
    resource: dict[str, Any] = template_json["Resources"][queue_id]
    return queue_id, resource


def assert_alarms_on_first_message(template_json: dict[str, Any], queue_id: str) -> None:
    (alarm,) = (
        alarm["Properties"]
        for alarm in of_type(template_json, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    )
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"


def api_url_parts(template_json: dict[str, Any]) -> list[Any]:
    """The pieces of the stage URL (without its trailing slash), as an Fn::Join lists them."""
    rest_api_id, _ = only(of_type(template_json, "AWS::ApiGateway::RestApi"))
    stage_id, _ = only(of_type(template_json, "AWS::ApiGateway::Stage"))
    return [
        "https://",
        {"Ref": rest_api_id},
        ".execute-api.",
        {"Ref": "AWS::Region"},
        ".",
        {"Ref": "AWS::URLSuffix"},
        "/",
        {"Ref": stage_id},
    ]


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
    # One more Lambda would mean a CDK custom resource crept in (e.g. log retention).
    template.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS))
    # capture, unsubscribe, scheduler, sender, engagement, handoff, visits, admin
    template.resource_count_is("AWS::Lambda::Function", 8)


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
    assert "TracingConfig" not in props  # no X-Ray (functions/observability.py)
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
    """What ``function_environment`` gives, with each resource as its CloudFormation reference."""
    placeholders = {
        "@table": {"Ref": table_id(template_json)},
        "@configuration-set": ref_of(template_json, "AWS::SES::ConfigurationSet"),
        "@secret": ref_of(template_json, "AWS::SecretsManager::Secret"),
        **{f"@queue:{q.name}": {"Ref": queue_for(template_json, q)[0]} for q in QUEUES},
        **{f"@dlq:{q.name}": {"Ref": dead_letter_queue_of(template_json, q)} for q in QUEUES},
        **{
            f"@failures:{s.name}": {"Ref": failure_queue_of(template_json, s)[0]}
            for s in FUNCTIONS
            if s.consumes_stream
        },
        **{f"@topic:{t}": {"Ref": topic_id(template_json, t)} for t in TOPICS},
        "@api/unsubscribe": {"Fn::Join": ["", [*api_url_parts(template_json), "/unsubscribe"]]},
    }
    expected = function_environment(
        spec,
        DeploymentConfig(),
        FunctionResources(
            table_name="@table",
            api_url="@api/",
            configuration_set="@configuration-set",
            queue_urls={q.name: f"@queue:{q.name}" for q in QUEUES},
            dead_letter_queue_urls={q.name: f"@dlq:{q.name}" for q in QUEUES},
            stream_failure_queue_urls={
                s.name: f"@failures:{s.name}" for s in FUNCTIONS if s.consumes_stream
            },
            topic_arns={t: f"@topic:{t}" for t in TOPICS},
            signing_secret_arn="@secret",
        ),
    )
    _, function = function_for(template_json, spec)
    assert function["Properties"]["Environment"]["Variables"] == {
        name: placeholders.get(value, value) for name, value in expected.items()
    }


def test_function_environments_hold_what_their_specs_use(template_json: dict[str, Any]) -> None:
    def variables(spec: FunctionSpec) -> dict[str, Any]:
        _, function = function_for(template_json, spec)
        result: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
        return result

    queue_id, _ = queue_for(template_json, SEND_QUEUE)
    assert variables(SCHEDULER)["SEND_QUEUE_URL"] == {"Ref": queue_id}
    assert variables(SENDER)["CONFIGURATION_SET"] == ref_of(
        template_json, "AWS::SES::ConfigurationSet"
    )
    assert variables(SENDER)["UNSUBSCRIBE_URL"]["Fn::Join"][1][-1] == "/unsubscribe"
    assert variables(HANDOFF)["SALES_LEADS_TOPIC_ARN"] == {
        "Ref": topic_id(template_json, SALES_TOPIC)
    }
    # Consumers put what they can never process on their dead-letter queue themselves.
    for queue in QUEUES:
        assert variables(consumer_of(queue))[queue.dead_letter_url_variable] == {
            "Ref": dead_letter_queue_of(template_json, queue)
        }
    assert variables(HANDOFF)["HANDOFF_STREAM_FAILURE_QUEUE_URL"] == {
        "Ref": failure_queue_of(template_json, HANDOFF)[0]
    }
    for spec in FUNCTIONS:
        # Only publishers learn a topic's ARN.
        topic_variables = {name for name in variables(spec) if name.endswith("_TOPIC_ARN")}
        assert topic_variables == {
            f"{topic.upper().replace('-', '_')}_TOPIC_ARN" for topic in spec.publishes
        }
        # Signing keys only by reference: the value is read from Secrets Manager.
        assert "SIGNING_SECRET" not in variables(spec)
        assert ("SIGNING_SECRET_ARN" in variables(spec)) == spec.signs_links
        if spec.routes:
            # A routed function that held the API URL would depend on the stage that
            # depends on it: a cycle.
            assert "UNSUBSCRIBE_URL" not in variables(spec)


def test_layer_targets_the_function_runtime(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.13"], "CompatibleArchitectures": ["arm64"]},
    )


# --- triggers ---------------------------------------------------------------------------


def test_scheduled_functions_run_on_their_rate(template_json: dict[str, Any]) -> None:
    rules = of_type(template_json, "AWS::Events::Rule")
    scheduled = [spec for spec in FUNCTIONS if spec.schedule_minutes is not None]
    assert SCHEDULER in scheduled
    assert len(rules) == len(scheduled)
    for spec in scheduled:
        function_id, _ = function_for(template_json, spec)
        minutes = spec.schedule_minutes
        expression = f"rate({minutes} minute{'s' if minutes != 1 else ''})"
        (rule_id,) = (
            rule_id
            for rule_id, rule in rules.items()
            if [target["Arn"] for target in rule["Properties"]["Targets"]]
            == [{"Fn::GetAtt": [function_id, "Arn"]}]
        )
        assert rules[rule_id]["Properties"]["ScheduleExpression"] == expression
        assert rules[rule_id]["Properties"]["State"] == "ENABLED"
        permissions = [
            permission["Properties"]
            for permission in of_type(template_json, "AWS::Lambda::Permission").values()
            if permission["Properties"]["Principal"] == "events.amazonaws.com"
        ]
        assert {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        } in permissions


def test_a_failed_scheduled_run_is_not_retried_into_the_next(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 0, "Qualifier": "$LATEST"}
    )


def test_scheduler_is_the_only_scheduled_function() -> None:
    assert [spec.name for spec in FUNCTIONS if spec.schedule_minutes] == [SCHEDULER.name]
    assert SCHEDULER.schedule_minutes == 1


@pytest.mark.parametrize("queue", QUEUES, ids=lambda queue: queue.name)
def test_consumer_reads_its_queue_in_batches_reporting_failures_per_message(
    template_json: dict[str, Any], queue: QueueSpec
) -> None:
    mapping = event_source_for(template_json, consumer_of(queue))
    assert mapping["BatchSize"] == queue.batch_size
    assert mapping.get("MaximumBatchingWindowInSeconds", 0) == queue.max_batching_window_s
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    if queue.max_concurrency is None:
        assert "ScalingConfig" not in mapping
    else:
        assert queue.max_concurrency >= 2  # the lowest maximum Lambda accepts
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": queue.max_concurrency}


def test_sender_consumes_the_send_queue_with_at_most_two_pollers(
    template_json: dict[str, Any],
) -> None:
    mapping = event_source_for(template_json, SENDER)
    assert mapping["BatchSize"] == 10
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}


def test_engagement_consumes_its_queue_reporting_failures_without_a_concurrency_cap(
    template_json: dict[str, Any],
) -> None:
    mapping = event_source_for(template_json, ENGAGEMENT)
    queue_id, _ = queue_for(template_json, ENGAGEMENT_QUEUE)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == ENGAGEMENT_QUEUE.batch_size
    assert ENGAGEMENT_QUEUE.max_concurrency is None
    assert "ScalingConfig" not in mapping


def test_one_event_source_per_consumed_queue_and_stream(template_json: dict[str, Any]) -> None:
    mappings = of_type(template_json, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(QUEUES) + len(stream_consumers())
    assert [spec.name for spec in stream_consumers()] == [HANDOFF.name]


# The handoff function hears only of lead profiles written with stage mql.
STREAM_FILTER_PATTERN = {
    "eventName": ["INSERT", "MODIFY"],
    "dynamodb": {"NewImage": {"sk": {"S": ["PROFILE"]}, "stage": {"S": ["mql"]}}},
}


def test_handoff_reads_the_table_stream_filtered_to_new_mqls(
    template_json: dict[str, Any],
) -> None:
    mapping = event_source_for(template_json, HANDOFF)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [table_id(template_json), "StreamArn"]}
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["BatchSize"] == 10
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 5
    assert mapping["MaximumRecordAgeInSeconds"] == 24 * 3600
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (pattern,) = (json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"])
    assert pattern == STREAM_FILTER_PATTERN


def test_stream_records_given_up_on_go_to_an_encrypted_alarmed_queue(
    template_json: dict[str, Any],
) -> None:
    queue_id, queue = failure_queue_of(template_json, HANDOFF)
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert_alarms_on_first_message(template_json, queue_id)
    # Lambda sends the failure record in the function's name.
    sends = [
        statement
        for statement in statements_of_role(template_json, role_of(template_json, HANDOFF))
        if "sqs:SendMessage" in as_list(statement["Action"])
    ]
    assert [statement["Resource"] for statement in sends] == [{"Fn::GetAtt": [queue_id, "Arn"]}]


@pytest.mark.parametrize("queue", QUEUES, ids=lambda queue: queue.name)
def test_consumer_finishes_before_its_message_becomes_visible_again(
    template_json: dict[str, Any], queue: QueueSpec
) -> None:
    consumer = consumer_of(queue)
    _, function = function_for(template_json, consumer)
    _, built = queue_for(template_json, queue)
    assert consumer.timeout_s < queue.visibility_timeout_s
    assert function["Properties"]["Timeout"] < built["Properties"]["VisibilityTimeout"]


def test_a_consumer_slower_than_its_queue_is_refused(tmp_path: Path) -> None:
    from aws_cdk import App, Stack

    from infra.constructs.data import LeadData
    from infra.constructs.functions import NurtureFunctions
    from infra.constructs.messaging import JobQueues
    from infra.constructs.nurture import NurtureEmail
    from infra.constructs.observability import Observability

    queue = QueueSpec(name="slow", visibility_timeout_s=30)
    consumer = FunctionSpec(name="c", handler="h.h", description="d", consumes=queue, timeout_s=30)
    stack = Stack(App(), "Refused")
    queues = JobQueues(stack, "Messaging", specs=[queue])
    (tmp_path / "code").mkdir()
    (tmp_path / "layer").mkdir()
    with pytest.raises(ValueError, match="visibility timeout"):
        NurtureFunctions(
            stack,
            "Functions",
            specs=[consumer],
            config=DeploymentConfig(),
            resources=FunctionResources(table_name="t", api_url="u/", configuration_set="s"),
            data=LeadData(stack, "Data", spec=TABLE),
            queues=queues,
            email=NurtureEmail(
                stack,
                "Email",
                configuration_set_name="s",
                events_topic_name="e",
                from_domain="example.com",
            ),
            topics={},
            observability=Observability(stack, "Observability", log_retention_days=1),
            code_dir=tmp_path / "code",
            layer_dir=tmp_path / "layer",
        )


# --- queues -----------------------------------------------------------------------------


def test_one_queue_and_one_dead_letter_queue_per_wiring_entry(template: Template) -> None:
    # Plus a failure queue (and its alarm) per stream consumer.
    template.resource_count_is("AWS::SQS::Queue", 2 * len(QUEUES) + len(stream_consumers()))
    # (and alarms on uncertain sends, a paused guard, the bounce and the complaint rate)
    template.resource_count_is("AWS::CloudWatch::Alarm", len(QUEUES) + len(stream_consumers()) + 4)


def test_a_pause_of_the_sending_guard_alarms_on_the_first(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "LeadNurture",
            "MetricName": "SendingPaused",
            "Dimensions": [{"Name": "service", "Value": "scheduler"}],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "TreatMissingData": "notBreaching",
        },
    )


def test_the_scheduler_gets_the_guards_limits_from_the_reputation_block(
    template_json: dict[str, Any],
) -> None:
    (scheduler,) = [
        r
        for r in template_json["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler") == "functions.scheduler.handler.lambda_handler"
    ]
    variables = scheduler["Properties"]["Environment"]["Variables"]
    assert (variables["BOUNCE_RATE_PERCENT"], variables["COMPLAINT_RATE_PERCENT"]) == (
        "4.0",
        "0.08",
    )
    assert variables["GUARD_MIN_SENDS"] == "500"


def test_an_uncertain_send_alarms_on_the_first(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "LeadNurture",
            "MetricName": "SendsUncertain",
            "Dimensions": [{"Name": "service", "Value": "sender"}],
            "Statistic": "Sum",
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
        },
    )


@pytest.mark.parametrize("queue", QUEUES, ids=lambda queue: queue.name)
def test_queue_redrives_to_a_dead_letter_queue_that_keeps_messages_14_days(
    template_json: dict[str, Any], queue: QueueSpec
) -> None:
    _, built = queue_for(template_json, queue)
    properties = built["Properties"]
    assert properties["VisibilityTimeout"] == queue.visibility_timeout_s
    redrive = properties["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == queue.max_receive_count
    dlq = template_json["Resources"][redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]
    assert dlq["Type"] == "AWS::SQS::Queue"
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in dlq["Properties"]


def key_described(template_json: dict[str, Any], prefix: str) -> str:
    (key_id,) = (
        key_id
        for key_id, key in of_type(template_json, "AWS::KMS::Key").items()
        if key["Properties"]["Description"].startswith(prefix)
    )
    return key_id


def test_sns_may_use_the_queues_key_for_the_email_events_topic_only(
    template_json: dict[str, Any],
) -> None:
    key = template_json["Resources"][key_described(template_json, "Encrypts the job queues")]
    (statement,) = (
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal", {}).get("Service") == "sns.amazonaws.com"
    )
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    (topic_id,) = (
        topic_id
        for topic_id, topic in of_type(template_json, "AWS::SNS::Topic").items()
        if "SES events" in topic["Properties"].get("DisplayName", "")
    )
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}}


def test_the_signing_secret_is_encrypted_with_its_own_key(template_json: dict[str, Any]) -> None:
    _, secret = only(of_type(template_json, "AWS::SecretsManager::Secret"))
    key_id = key_described(template_json, "Encrypts the link-signing secret")
    assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = template_json["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    # only the functions that sign or verify links may decrypt it, through Secrets Manager
    (readers,) = (s for s in key["KeyPolicy"]["Statement"] if s["Action"] == "kms:Decrypt")
    assert sorted(as_list(readers["Principal"]["AWS"]), key=json.dumps) == sorted(
        (
            {"Fn::GetAtt": [role_of(template_json, spec), "Arn"]}
            for spec in FUNCTIONS
            if spec.signs_links
        ),
        key=json.dumps,
    )
    assert "kms:ViaService" in readers["Condition"]["StringEquals"]


def test_every_queue_is_encrypted_and_refuses_plain_http(template_json: dict[str, Any]) -> None:
    queues = of_type(template_json, "AWS::SQS::Queue")
    policies = of_type(template_json, "AWS::SQS::QueuePolicy").values()
    key = {"Fn::GetAtt": [key_described(template_json, "Encrypts the job queues"), "Arn"]}
    failure_queues = {
        on_failure["Destination"]["Fn::GetAtt"][0]
        for mapping in of_type(template_json, "AWS::Lambda::EventSourceMapping").values()
        if (on_failure := mapping["Properties"].get("DestinationConfig", {}).get("OnFailure"))
    }
    assert failure_queues
    for queue_id, queue in queues.items():
        if queue_id in failure_queues:
            # the stream's failure queues hold shard and sequence numbers, no personal data
            assert queue["Properties"]["SqsManagedSseEnabled"] is True
        else:  # job queues and their dead-letter queues: the queues' own key
            assert queue["Properties"]["KmsMasterKeyId"] == key
            assert queue["Properties"]["KmsDataKeyReusePeriodSeconds"] == 3600
        (policy,) = (p for p in policies if {"Ref": queue_id} in p["Properties"]["Queues"])
        assert {
            "Action": "sqs:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        } in policy["Properties"]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize("queue", QUEUES, ids=lambda queue: queue.name)
def test_a_message_in_the_dead_letter_queue_raises_an_alarm(
    template_json: dict[str, Any], queue: QueueSpec
) -> None:
    _, built = queue_for(template_json, queue)
    dlq_id = built["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert_alarms_on_first_message(template_json, dlq_id)


def test_engagement_queue_receives_the_email_events_raw(template_json: dict[str, Any]) -> None:
    queue_id, _ = queue_for(template_json, ENGAGEMENT_QUEUE)
    events_topic = {"Ref": topic_id(template_json, EMAIL_EVENTS_TOPIC)}
    _, subscription = only(of_type(template_json, "AWS::SNS::Subscription"))
    assert subscription["Properties"] == {
        "Protocol": "sqs",
        "TopicArn": events_topic,
        "Endpoint": {"Fn::GetAtt": [queue_id, "Arn"]},
        "RawMessageDelivery": True,
    }
    # The queue policy lets SNS send, for this topic only; SSE-SQS needs no key policy.
    (policy,) = (
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(template_json, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue_id}]
    )
    (allow,) = (statement for statement in policy if statement["Effect"] == "Allow")
    assert allow == {
        "Action": "sqs:SendMessage",
        "Condition": {"ArnEquals": {"aws:SourceArn": events_topic}},
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    }


# --- email ------------------------------------------------------------------------------

EMAIL_EVENT_TYPES = {
    "send",
    "delivery",
    "open",
    "click",
    "bounce",
    "complaint",
    "reject",
    "renderingFailure",
    "deliveryDelay",
    "subscription",
}


def test_configuration_set_sends_over_tls_with_reputation_metrics(template: Template) -> None:
    template.resource_count_is("AWS::SES::ConfigurationSet", 1)
    template.has_resource_properties(
        "AWS::SES::ConfigurationSet",
        {
            "Name": CONFIGURATION_SET,
            "ReputationOptions": {"ReputationMetricsEnabled": True},
            "SendingOptions": {"SendingEnabled": True},
            "DeliveryOptions": {"TlsPolicy": "REQUIRE"},
            "SuppressionOptions": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        },
    )


def test_no_sending_identity_is_created(template_json: dict[str, Any]) -> None:
    # The customer verifies their own domain (DKIM in their DNS) outside the stack.
    assert of_type(template_json, "AWS::SES::EmailIdentity") == {}


def test_every_email_event_is_published_to_the_events_topic(
    template_json: dict[str, Any],
) -> None:
    _, destination = only(of_type(template_json, "AWS::SES::ConfigurationSetEventDestination"))
    properties = destination["Properties"]
    assert properties["ConfigurationSetName"] == ref_of(template_json, "AWS::SES::ConfigurationSet")
    event_destination = properties["EventDestination"]
    assert event_destination["Enabled"] is True
    assert set(event_destination["MatchingEventTypes"]) == EMAIL_EVENT_TYPES
    assert event_destination["SnsDestination"] == {
        "TopicARN": {"Ref": topic_id(template_json, EMAIL_EVENTS_TOPIC)}
    }


def test_events_topic_is_encrypted_with_a_key_ses_may_use(template_json: dict[str, Any]) -> None:
    key_id = topic_key_arn(template_json, EMAIL_EVENTS_TOPIC)["Fn::GetAtt"][0]
    key = template_json["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    (ses_statement,) = (
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement["Principal"] == {"Service": "ses.amazonaws.com"}
    )
    assert set(ses_statement["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    conditions = ses_statement["Condition"]["StringEquals"]
    assert conditions["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert f":configuration-set/{CONFIGURATION_SET}" in conditions["aws:SourceArn"]["Fn::Join"][1]


def test_events_topic_takes_only_tls_and_only_our_configuration_set(
    template_json: dict[str, Any],
) -> None:
    topic = {"Ref": topic_id(template_json, EMAIL_EVENTS_TOPIC)}
    statements = topic_policy_of(template_json, EMAIL_EVENTS_TOPIC)
    assert {
        "Action": "sns:Publish",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": "*",
        "Resource": topic,
        "Sid": "AllowPublishThroughSSLOnly",
    } in statements
    (ses_statement,) = (s for s in statements if s["Effect"] == "Allow")
    assert ses_statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert ses_statement["Action"] == "sns:Publish"
    source = ses_statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Join"][1]
    assert source[-1] == ref_of(template_json, "AWS::SES::ConfigurationSet")


# --- hand-off ---------------------------------------------------------------------------


def test_one_topic_per_wiring_entry(template_json: dict[str, Any]) -> None:
    assert len(of_type(template_json, "AWS::SNS::Topic")) == len(TOPICS)
    assert {topic_id(template_json, name) for name in TOPICS}


def test_sales_topic_is_encrypted_with_its_own_rotating_key(template_json: dict[str, Any]) -> None:
    key_arn = topic_key_arn(template_json, SALES_TOPIC)
    assert key_arn != topic_key_arn(template_json, EMAIL_EVENTS_TOPIC)
    key = template_json["Resources"][key_arn["Fn::GetAtt"][0]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    # No service principal may use it: only IAM principals of the account (the handoff role).
    principals = [s["Principal"] for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert all("Service" not in principal for principal in principals)


def test_sales_topic_takes_only_tls(template_json: dict[str, Any]) -> None:
    topic = {"Ref": topic_id(template_json, SALES_TOPIC)}
    assert topic_policy_of(template_json, SALES_TOPIC) == [
        {
            "Action": "sns:Publish",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": "*",
            "Resource": topic,
            "Sid": "AllowPublishThroughSSLOnly",
        }
    ]


def test_outputs_the_sales_topic_arn(template: Template, template_json: dict[str, Any]) -> None:
    template.has_output("SalesTopicArn", {"Value": {"Ref": topic_id(template_json, SALES_TOPIC)}})


def test_only_the_handoff_function_publishes_and_only_to_the_sales_topic(
    template_json: dict[str, Any],
) -> None:
    topic_arns = {name: {"Ref": topic_id(template_json, name)} for name in TOPICS}
    key_arns = {name: topic_key_arn(template_json, name) for name in TOPICS}
    publishers = set()
    for role_id in of_type(template_json, "AWS::IAM::Role"):
        statements = statements_of_role(template_json, role_id)
        publishes = [s for s in statements if "sns:Publish" in as_list(s["Action"])]
        if not publishes:
            continue
        publishers.add(role_id)
        assert [(s["Action"], s["Resource"]) for s in publishes] == [
            ("sns:Publish", topic_arns[SALES_TOPIC])
        ]
        # SNS encrypts each message under the topic's key in the publisher's name.
        (key_statement,) = (s for s in statements if s["Resource"] == key_arns[SALES_TOPIC])
        assert set(as_list(key_statement["Action"])) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert publishers == {role_of(template_json, s) for s in FUNCTIONS if s.publishes}
    assert publishers == {role_of(template_json, HANDOFF), role_of(template_json, VISITS)}
    # Nobody holds the events topic's key: SES alone encrypts with it (key policy).
    for role_id in of_type(template_json, "AWS::IAM::Role"):
        assert all(
            s["Resource"] != key_arns[EMAIL_EVENTS_TOPIC]
            for s in statements_of_role(template_json, role_id)
        )


def test_signing_secret_is_generated_and_kept(template_json: dict[str, Any]) -> None:
    _, secret = only(of_type(template_json, "AWS::SecretsManager::Secret"))
    assert secret["Properties"]["GenerateSecretString"] == {
        "PasswordLength": 64,
        "ExcludePunctuation": True,
    }
    assert secret["DeletionPolicy"] == "Retain"  # sent links must keep working


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


def grants_of_role(template_json: dict[str, Any], role_id: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the role is allowed, each resource as its JSON text."""
    statements = statements_of_role(template_json, role_id)
    assert all(statement["Effect"] == "Allow" for statement in statements)
    return {
        (action, json.dumps(resource, sort_keys=True))
        for statement in statements
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


STREAM_READS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_function_reaches_only_the_table_its_spec_names(
    template_json: dict[str, Any], spec: FunctionSpec
) -> None:
    def text(resource: Any) -> str:
        return json.dumps(resource, sort_keys=True)

    table = table_id(template_json)
    table_arn = {"Fn::GetAtt": [table, "Arn"]}
    index_arns = [
        {"Fn::Join": ["", [table_arn, f"/index/{index.name}"]]} for index in TABLE.indexes
    ]
    key_arn = template_json["Resources"][table]["Properties"]["SSESpecification"]["KMSMasterKeyId"]
    grants = grants_of_role(template_json, role_of(template_json, spec))

    dynamodb = {(action, r) for action, r in grants if action.startswith("dynamodb:")}
    items = {(a, r) for a, r in dynamodb if a not in {*STREAM_READS, "dynamodb:ListStreams"}}
    assert all(r in {text(table_arn), *map(text, index_arns)} for _, r in items)
    granted = {action for action, _ in items}
    # The stream event source grants its reads; ListStreams has no resource-level form.
    stream_arn = text({"Fn::GetAtt": [table, "StreamArn"]})
    expected_stream = (
        {(action, stream_arn) for action in STREAM_READS} | {("dynamodb:ListStreams", '"*"')}
        if spec.consumes_stream
        else set()
    )
    assert dynamodb - items == expected_stream

    kms_actions = {action for action, r in grants if r == text(key_arn)}
    topic_keys = {text(topic_key_arn(template_json, topic)) for topic in spec.publishes}
    queues_key = {"Fn::GetAtt": [key_described(template_json, "Encrypts the job queues"), "Arn"]}
    other_keys = {r for a, r in grants if a.startswith("kms:") and r != text(key_arn)}
    # (the signing secret's key grants its readers in its key policy)
    assert other_keys == topic_keys | (
        {text(queues_key)} if spec.consumes or spec.produces else set()
    )

    access = spec.table
    if access is None:
        assert granted == set()
        assert kms_actions == set()
    else:
        assert granted == {f"dynamodb:{a}" for a in (*access.reads, *access.writes)} | (
            {"dynamodb:Query"} if access.due_index else set()
        )
        writes = {"kms:Encrypt", "kms:GenerateDataKey"} if access.writes else set()
        assert kms_actions == {"kms:Decrypt", "kms:DescribeKey"} | writes


def test_handoff_reads_the_table_and_its_stream(template_json: dict[str, Any]) -> None:
    # What else it may do follows its TableAccess (checked above for every spec).
    actions = actions_of_role(template_json, role_of(template_json, HANDOFF))
    assert actions >= {"dynamodb:GetItem", "dynamodb:Query"} | STREAM_READS
    assert "dynamodb:ListStreams" in actions


SERVICE_WILDCARDS = {"*", "sqs:*", "ses:*", "sns:*", "secretsmanager:*", "kms:*", "dynamodb:*"}


def test_no_role_holds_a_service_wildcard_or_scan(template_json: dict[str, Any]) -> None:
    for role_id in of_type(template_json, "AWS::IAM::Role"):
        actions = actions_of_role(template_json, role_id)
        assert not actions & (SERVICE_WILDCARDS | {"dynamodb:Scan"}), role_id


def test_only_link_signing_functions_read_the_signing_secret(
    template_json: dict[str, Any],
) -> None:
    secret = ref_of(template_json, "AWS::SecretsManager::Secret")
    readers = {
        role_id
        for role_id in of_type(template_json, "AWS::IAM::Role")
        for statement in statements_of_role(template_json, role_id)
        if any(action.startswith("secretsmanager:") for action in as_list(statement["Action"]))
    }
    assert readers == {role_of(template_json, s) for s in FUNCTIONS if s.signs_links}
    assert readers == {
        role_of(template_json, UNSUBSCRIBE),
        role_of(template_json, SENDER),
        role_of(template_json, VISITS),  # verifies the site links' lead references
    }
    for role_id in readers:
        (statement,) = (
            s
            for s in statements_of_role(template_json, role_id)
            if as_list(s["Action"])[0].startswith("secretsmanager:")
        )
        assert set(as_list(statement["Action"])) == {
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
        }
        assert statement["Resource"] == secret


def ses_arn(kind: str, name: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":ses:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":{kind}/{name}",
            ],
        ]
    }


def ses_statements(template_json: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for statement in statements_of_role(template_json, role_id)
        if any(action.startswith("ses:") for action in as_list(statement["Action"]))
    ]


def assert_sends_only_as(
    template_json: dict[str, Any], spec: FunctionSpec, from_domain: str
) -> None:
    (statement,) = ses_statements(template_json, role_of(template_json, spec))
    assert statement["Effect"] == "Allow"
    assert set(as_list(statement["Action"])) == {"ses:SendEmail", "ses:SendRawEmail"}
    resources = as_list(statement["Resource"])
    assert len(resources) == 2
    assert ses_arn("identity", from_domain) in resources
    assert ses_arn("configuration-set", CONFIGURATION_SET) in resources


def test_only_the_sender_sends_email_as_the_domain_through_the_set(
    template_json: dict[str, Any],
) -> None:
    senders = {
        role_id
        for role_id in of_type(template_json, "AWS::IAM::Role")
        if ses_statements(template_json, role_id)
    }
    assert senders == {role_of(template_json, s) for s in FUNCTIONS if s.sends_email}
    assert senders == {role_of(template_json, SENDER)}
    assert_sends_only_as(template_json, SENDER, DeploymentConfig().sender.from_domain)


def test_queue_access_follows_produces_and_consumes(template_json: dict[str, Any]) -> None:
    send = {"sqs:SendMessage"}
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    queue_arns = {
        queue.name: {"Fn::GetAtt": [queue_for(template_json, queue)[0], "Arn"]} for queue in QUEUES
    }
    for spec in FUNCTIONS:
        statements = [
            s
            for s in statements_of_role(template_json, role_of(template_json, spec))
            if as_list(s["Action"])[0].startswith("sqs:")
        ]
        by_queue: dict[str, set[str]] = {}
        for statement in statements:
            for resource in as_list(statement["Resource"]):
                by_queue.setdefault(json.dumps(resource), set()).update(
                    as_list(statement["Action"])
                )
        expected_send = [queue_arns[q.name] for q in spec.produces]
        if spec.consumes_stream:
            # Lambda writes the stream's failure records to the queue in the function's name
            # (and the function describes a record it can never process there).
            failures_id, _ = failure_queue_of(template_json, spec)
            expected_send.append({"Fn::GetAtt": [failures_id, "Arn"]})
        if spec.consumes is not None:
            # A message it can never process, the function moves to the dead-letter queue.
            dlq_id = dead_letter_queue_of(template_json, spec.consumes)
            expected_send.append({"Fn::GetAtt": [dlq_id, "Arn"]})
        expected_consume = [queue_arns[spec.consumes.name]] if spec.consumes else []
        assert set(by_queue) == {json.dumps(arn) for arn in expected_send + expected_consume}
        for arn in expected_send:
            assert send <= by_queue[json.dumps(arn)]
            assert not by_queue[json.dumps(arn)] & consume
        for arn in expected_consume:
            assert consume <= by_queue[json.dumps(arn)]
            assert "sqs:SendMessage" not in by_queue[json.dumps(arn)]


# --- API --------------------------------------------------------------------------------


def test_routes_follow_the_wiring(template_json: dict[str, Any]) -> None:
    routes = method_routes(template_json)
    expected: set[tuple[str, str]] = set()
    for spec in FUNCTIONS:
        function_id, _ = function_for(template_json, spec)
        for route in spec.routes:
            keys: list[tuple[str, str]] = [(route.method, route.path)]
            if route.cross_origin:
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


def test_the_snippet_and_its_beacons_are_public_routes_of_the_visits_function(
    template_json: dict[str, Any],
) -> None:
    routes = method_routes(template_json)
    function_id, _ = function_for(template_json, VISITS)
    for key in (("POST", "/visits"), ("OPTIONS", "/visits"), ("GET", "/tracker.js")):
        route = routes[key]
        assert route["AuthorizationType"] == "NONE"
        assert {"Fn::GetAtt": [function_id, "Arn"]} in route["Integration"]["Uri"]["Fn::Join"][1]
    # The script is fetched by a script tag, never preflighted.
    assert ("OPTIONS", "/tracker.js") not in routes


def test_unsubscribe_is_a_public_page_and_one_click_post_without_preflight(
    template_json: dict[str, Any],
) -> None:
    routes = method_routes(template_json)
    function_id, _ = function_for(template_json, UNSUBSCRIBE)
    for method in ("GET", "POST"):
        route = routes[method, "/unsubscribe"]
        assert route["AuthorizationType"] == "NONE"
        assert {"Fn::GetAtt": [function_id, "Arn"]} in route["Integration"]["Uri"]["Fn::Join"][1]
    # Opened from emails, posted by its own page or by mail providers: never cross-origin.
    assert ("OPTIONS", "/unsubscribe") not in routes


def test_admin_routes_take_only_iam_signed_requests_without_preflight(
    template_json: dict[str, Any],
) -> None:
    routes = method_routes(template_json)
    function_id, _ = function_for(template_json, ADMIN)
    expected = {
        ("GET", "/leads/{lead_id}"),
        ("GET", "/leads/{lead_id}/export"),
        ("DELETE", "/leads/{lead_id}"),
        ("POST", "/leads/{lead_id}/disposition"),
        ("POST", "/leads/{lead_id}/purchases"),
    }
    assert {(route.method, route.path) for route in ADMIN.routes} == expected
    for key in expected:
        assert routes[key]["AuthorizationType"] == "AWS_IAM"
        assert routes[key]["Integration"]["Type"] == "AWS_PROXY"
        assert {"Fn::GetAtt": [function_id, "Arn"]} in routes[key]["Integration"]["Uri"][
            "Fn::Join"
        ][1]
    # Called by sales and admin tooling, never by browsers: no CORS preflight.
    assert not {
        path for method, path in routes if method == "OPTIONS" and path.startswith("/leads/")
    }
    resources = of_type(template_json, "AWS::ApiGateway::Resource").values()
    assert {r["Properties"]["PathPart"] for r in resources} >= {
        "{lead_id}",
        "disposition",
        "export",
    }


def test_no_api_gateway_cors_mock(template_json: dict[str, Any]) -> None:
    integrations = {
        method["Integration"]["Type"] for method in method_routes(template_json).values()
    }
    assert integrations == {"AWS_PROXY"}


def test_api_passes_form_and_json_bodies_to_the_functions_byte_for_byte(
    template: Template,
) -> None:
    # Other bodies API Gateway decodes as UTF-8 itself, replacing what is not by U+FFFD,
    # which would lose the text of a form from a Shift_JIS or EUC-JP page.
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "BinaryMediaTypes": [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "application/json",
            ]
        },
    )


def test_stage_traces_and_logs_without_bodies(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": Match.absent(),
            "MethodSettings": Match.array_with(
                [
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
                ]
            ),
        },
    )


def method_throttles(template_json: dict[str, Any]) -> dict[tuple[str, str], tuple[float, int]]:
    _, stage = only(of_type(template_json, "AWS::ApiGateway::Stage"))
    return {
        (setting["HttpMethod"], setting["ResourcePath"][1:].replace("~1", "/")): (
            setting["ThrottlingRateLimit"],
            setting["ThrottlingBurstLimit"],
        )
        for setting in stage["Properties"]["MethodSettings"]
        if setting["HttpMethod"] != "*"
    }


def test_every_route_is_throttled_on_its_own_by_its_class(template_json: dict[str, Any]) -> None:
    limits = DeploymentConfig.from_cdk_json(ROOT / "cdk.json").throttling
    throttles = method_throttles(template_json)
    routes = [route for spec in FUNCTIONS for route in spec.routes]
    assert set(throttles) == {(route.method, route.path) for route in routes}
    for route in routes:
        expected = getattr(limits, route.throttle)
        assert throttles[route.method, route.path] == (expected.rate_limit, expected.burst_limit)
    # opt-outs have a bucket of their own, never the forms' or the beacons'
    classes = {route.path: route.throttle for route in routes}
    assert classes["/unsubscribe"] == "opt_out"
    assert (classes["/leads"], classes["/visits"]) == ("forms", "beacon")
    assert {classes[path] for path in classes if path.startswith("/leads/")} == {"admin"}


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
    rules = {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}
    config = DeploymentConfig()
    for name, limit in (
        ("ip-rate-limit", config.waf_ip_rate_limit),
        ("opt-out-ip-rate-limit", config.waf_opt_out_ip_rate_limit),
    ):
        rule = rules[name]
        assert rule["Statement"]["RateBasedStatement"]["Limit"] == limit
        assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    # opt-outs are counted apart from everything else, with a limit of their own
    everything_else = rules["ip-rate-limit"]["Statement"]["RateBasedStatement"]
    match = everything_else["ScopeDownStatement"]["NotStatement"]["Statement"]["ByteMatchStatement"]
    assert (match["FieldToMatch"], match["PositionalConstraint"]) == ({"UriPath": {}}, "ENDS_WITH")
    assert match["SearchString"] == "/unsubscribe"
    opt_outs = rules["opt-out-ip-rate-limit"]["Statement"]["RateBasedStatement"]
    assert opt_outs["ScopeDownStatement"]["ByteMatchStatement"] == match
    assert config.waf_opt_out_ip_rate_limit >= 10 * config.waf_ip_rate_limit


def test_outputs_the_api_url(template: Template) -> None:
    template.has_output("ApiUrl", {"Value": {"Fn::Join": ["", Match.array_with(["https://"])]}})


# --- dashboard and reputation alarms ----------------------------------------------------


def rate_alarms(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metric math alarms, by the metric over emails sent that each watches."""
    found = {}
    for alarm in of_type(template_json, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if "Metrics" not in properties:
            continue
        stats = {
            query["Id"]: query["MetricStat"]
            for query in properties["Metrics"]
            if "MetricStat" in query
        }
        watched = {stat["Metric"]["MetricName"] for stat in stats.values()} - {"EmailsSent"}
        (name,) = watched
        found[name] = properties
    return found


def assert_rate_alarm(
    properties: dict[str, Any],
    metric: str,
    *,
    threshold: float,
    min_sends: int,
    window_s: int,
) -> None:
    (expression,) = (q for q in properties["Metrics"] if "Expression" in q)
    events = f"engagement_{metric.lower()}"
    # Percent of emails sent, 0 until the window holds enough sends to mean something
    assert expression["Expression"] == (
        f"IF(sender_emailssent >= {min_sends}, 100 * FILL({events}, 0) / sender_emailssent, 0)"
    )
    assert expression["ReturnData"] is True
    stats = {q["Id"]: q["MetricStat"] for q in properties["Metrics"] if "MetricStat" in q}
    assert stats == {
        "sender_emailssent": {
            "Metric": {
                "Namespace": "LeadNurture",
                "MetricName": "EmailsSent",
                "Dimensions": [{"Name": "service", "Value": "sender"}],
            },
            "Period": window_s,
            "Stat": "Sum",
        },
        events: {
            "Metric": {
                "Namespace": "LeadNurture",
                "MetricName": metric,
                "Dimensions": [{"Name": "service", "Value": "engagement"}],
            },
            "Period": window_s,
            "Stat": "Sum",
        },
    }
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert properties["Threshold"] == threshold
    assert properties["EvaluationPeriods"] == 1
    # No sends in the window is no news.
    assert properties["TreatMissingData"] == "notBreaching"


def test_bounce_and_complaint_rates_alarm_below_the_rates_ses_reviews_at(
    template_json: dict[str, Any],
) -> None:
    alarms = rate_alarms(template_json)
    assert set(alarms) == {"HardBounces", "Complaints"}
    day = 24 * 3600
    # SES reviews an account at 5% bounces and 0.1% complaints.
    assert_rate_alarm(
        alarms["HardBounces"], "HardBounces", threshold=4, min_sends=500, window_s=day
    )
    assert_rate_alarm(
        alarms["Complaints"], "Complaints", threshold=0.08, min_sends=500, window_s=day
    )


def resolved(value: Any) -> str:
    """A dashboard body (an Fn::Join of text and references) as text, each reference
    written as ``Ref:<id>`` or ``GetAtt:<id>.<attribute>``."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(resolved(part) for part in parts)
    if "Ref" in value:
        return f"Ref:{value['Ref']}"
    (logical_id, attribute) = value["Fn::GetAtt"]
    return f"GetAtt:{logical_id}.{attribute}"


@pytest.fixture(scope="module")
def dashboard(template_json: dict[str, Any]) -> dict[str, Any]:
    _, resource = only(of_type(template_json, "AWS::CloudWatch::Dashboard"))
    assert resource["Properties"]["DashboardName"] == "LeadNurture"
    body: dict[str, Any] = json.loads(resolved(resource["Properties"]["DashboardBody"]))
    return body


def widget(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = (
        w["properties"] for w in dashboard["widgets"] if w["properties"].get("title") == title
    )
    return found


def lines(properties: dict[str, Any]) -> list[tuple[str, ...]]:
    """Each metric of a widget as (namespace, name, dimension, value, ...), and each
    expression as ("expression", label, expression)."""
    found: list[tuple[str, ...]] = []
    for line in properties["metrics"]:
        *metric, options = line
        if metric:
            found.append(tuple(metric))
        else:
            found.append(("expression", options["label"], options["expression"]))
    return found


def test_dashboard_shows_every_metric_of_every_function_that_emits_it(
    dashboard: dict[str, Any],
) -> None:
    import shared.domain.metrics
    from infra.constructs.observability import EMITTERS

    # every metric of shared/domain/metrics.py has its emitters
    names = {value for key, value in vars(shared.domain.metrics).items() if key.isupper()}
    assert set(EMITTERS) == names - {shared.domain.metrics.NAMESPACE}
    shown = {
        line
        for w in dashboard["widgets"]
        if w["type"] == "metric"
        for line in lines(w["properties"])
        if line[0] == "LeadNurture"
    }
    expected = {
        ("LeadNurture", name, "service", service)
        for name, services in EMITTERS.items()
        for service in services
    }
    assert shown == expected
    # What CloudWatch bills: one metric per name and function, 18 names, MQLs counted by
    # three functions and opt-outs by two.
    assert len(shown) == 21


def test_dashboard_funnel_adds_up_the_mqls_of_every_function_where_leads_qualify(
    dashboard: dict[str, Any],
) -> None:
    totals = widget(dashboard, "Funnel over the time range")
    assert totals["view"] == "singleValue"
    assert totals["setPeriodToTimeRange"] is True
    assert (
        "expression",
        "MQLs",
        (
            "FILL(capture_leadsqualified, 0) + FILL(engagement_leadsqualified, 0) "
            "+ FILL(visits_leadsqualified, 0)"
        ),
    ) in lines(totals)
    assert ("LeadNurture", "LeadsCreated", "service", "capture") in lines(totals)
    assert ("LeadNurture", "HandoffsPublished", "service", "handoff") in lines(totals)
    emails = widget(dashboard, "Emails per hour")
    assert (
        "expression",
        "Opt-outs",
        "FILL(unsubscribe_optouts, 0) + FILL(engagement_optouts, 0)",
    ) in lines(emails)


def test_dashboard_draws_the_alarmed_rates_with_their_thresholds(dashboard: dict[str, Any]) -> None:
    rates = widget(dashboard, "Bounce and complaint rates over 24 h (at least 500 sent)")
    expressions = {line[1]: line[2] for line in lines(rates) if line[0] == "expression"}
    rate = "IF(sender_emailssent >= 500, 100 * FILL({}, 0) / sender_emailssent, 0)"
    assert expressions == {
        "Hard bounce rate (%)": rate.format("engagement_hardbounces"),
        "Complaint rate (%)": rate.format("engagement_complaints"),
    }
    assert rates["annotations"]["horizontal"] == [
        {"value": 4, "label": "Bounce alarm", "yAxis": "left"},
        {"value": 0.08, "label": "Complaint alarm", "yAxis": "right"},
    ]


def test_dashboard_shows_every_dead_letter_queue(
    template_json: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    dead_letters = [
        queue_for(template_json, queue)[1]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"][
            "Fn::GetAtt"
        ][0]
        for queue in QUEUES
    ] + [failure_queue_of(template_json, spec)[0] for spec in stream_consumers()]
    shown = lines(widget(dashboard, "Dead-letter queues: messages waiting"))
    assert shown == [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"GetAtt:{q}.QueueName")
        for q in dead_letters
    ]


@pytest.mark.parametrize(
    ("title", "metric"), [("Function errors", "Errors"), ("Function throttles", "Throttles")]
)
def test_dashboard_shows_errors_and_throttles_per_function(
    template_json: dict[str, Any], dashboard: dict[str, Any], title: str, metric: str
) -> None:
    shown = lines(widget(dashboard, title))
    assert shown == [
        ("AWS/Lambda", metric, "FunctionName", f"Ref:{function_for(template_json, spec)[0]}")
        for spec in FUNCTIONS
    ]


def test_dashboard_lists_every_alarm(
    template_json: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    status = widget(dashboard, "Alarms")
    alarms = of_type(template_json, "AWS::CloudWatch::Alarm")
    assert sorted(status["alarms"]) == sorted(f"GetAtt:{alarm}.Arn" for alarm in alarms)


# --- deployment config ------------------------------------------------------------------


@pytest.fixture(scope="module")
def customised(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = cdk_context()
    context[CONTEXT_KEY] = {
        "cors_origins": ["https://www.example.co.jp", "https://lp.example.co.jp"],
        "throttling": {"opt_out": {"rate_limit": 5, "burst_limit": 10}},
        "log_retention_days": 90,
        "waf_enabled": False,
        "sender": {"from_address": "Example Mail <info@mail.example.com>"},
        "public_api_url": "https://api.example.co.jp/",
        "reputation": {
            "bounce_rate_percent": 2.5,
            "complaint_rate_percent": 0.05,
            "window_hours": 1,
            "min_sends": 100,
        },
    }
    return synthesize(context, Path(tmp_path_factory.mktemp("cdk.out.customised")))


def test_context_drives_function_environment(customised: Synthesized) -> None:
    _, function = function_for(customised.template_json, FUNCTIONS[0])
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["CORS_ORIGINS"] == "https://www.example.co.jp,https://lp.example.co.jp"
    assert variables["REDIRECT_ORIGINS"] == "http://localhost:3000"  # default kept


def test_context_drives_throttling_and_retention(customised: Synthesized) -> None:
    throttles = method_throttles(customised.template_json)
    assert throttles["POST", "/unsubscribe"] == (5, 10)
    assert throttles["POST", "/leads"] == (20, 40)  # the other classes keep their defaults
    retention = {
        group["Properties"]["RetentionInDays"]
        for group in of_type(customised.template_json, "AWS::Logs::LogGroup").values()
    }
    assert retention == {90}


def test_waf_can_be_left_out(customised: Synthesized) -> None:
    # Synth passed cdk-nag, so APIG3 was acknowledged for this case.
    customised.template.resource_count_is("AWS::WAFv2::WebACL", 0)
    customised.template.resource_count_is("AWS::WAFv2::WebACLAssociation", 0)


def test_context_drives_the_sending_identity(customised: Synthesized) -> None:
    assert_sends_only_as(customised.template_json, SENDER, "mail.example.com")


def test_public_api_url_replaces_the_stage_url_in_emails(customised: Synthesized) -> None:
    _, function = function_for(customised.template_json, SENDER)
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["UNSUBSCRIBE_URL"] == "https://api.example.co.jp/unsubscribe"
    assert variables["FROM_ADDRESS"] == "Example Mail <info@mail.example.com>"


def test_context_drives_the_reputation_alarms(customised: Synthesized) -> None:
    alarms = rate_alarms(customised.template_json)
    hour = 3600
    assert_rate_alarm(
        alarms["HardBounces"], "HardBounces", threshold=2.5, min_sends=100, window_s=hour
    )
    assert_rate_alarm(
        alarms["Complaints"], "Complaints", threshold=0.05, min_sends=100, window_s=hour
    )


def test_a_synth_with_local_origins_warns_that_production_refuses_them(
    synthesized: Synthesized,
) -> None:
    from aws_cdk.assertions import Annotations

    Annotations.from_stack(synthesized.stack).has_warning(
        "*", Match.string_like_regexp("refused with -c stage=production.*cors_origins")
    )

"""One Lambda function per entry of ``wiring.FUNCTIONS``, its permissions and triggers.

Routes are the API's concern (``infra/constructs/api.py``); schedules, queues, the
table's stream and what each function may touch follow from its spec here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DeploymentConfig, Resources, function_environment
from infra.constructs.data import LeadData
from infra.constructs.keys import PRODUCER_KEY_ACTIONS
from infra.constructs.messaging import (
    JobQueues,
    dead_letter_alarm,
    dead_letter_queue,
    grant_send,
)
from infra.constructs.nag import acknowledge
from infra.constructs.nurture import NurtureEmail
from infra.constructs.observability import Observability
from infra.wiring import FunctionSpec, StreamSource

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


def grant_publish(grantee: iam.IGrantable, topic: sns.ITopic) -> None:
    """sns:Publish on the topic, and on its key (if any) what SNS needs to encrypt."""
    iam.Grant.add_to_principal(
        grantee=grantee, actions=["sns:Publish"], resource_arns=[topic.topic_arn]
    )
    if topic.master_key is not None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(PRODUCER_KEY_ACTIONS),
            resource_arns=[topic.master_key.key_arn],
        )


class NurtureFunctions(Construct):
    """The functions, their roles and log groups, and the shared dependency layer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: Sequence[FunctionSpec],
        config: DeploymentConfig,
        resources: Resources,
        data: LeadData,
        queues: JobQueues,
        email: NurtureEmail,
        topics: Mapping[str, sns.ITopic],
        observability: Observability,
        code_dir: Path,
        layer_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._data = data
        self._queues = queues
        self._email = email
        self._topics = topics
        self._observability = observability
        scopes = {spec.name: Construct(self, spec.name) for spec in specs}
        # The on-failure queue of each stream consumer, by function, and the alarms on them.
        # Made first: the function's environment names its queue.
        self.stream_failures: dict[str, sqs.Queue] = {}
        self.alarms: list[cloudwatch.Alarm] = []
        for spec in specs:
            if spec.stream is not None:
                self._stream_failure_queue(scopes[spec.name], spec, spec.stream)
        self._resources = replace(
            resources,
            stream_failure_queue_urls={
                name: queue.queue_url for name, queue in self.stream_failures.items()
            },
        )
        self._code = lambda_.Code.from_asset(str(code_dir))
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Third-party packages of the functions (pyproject dependencies)",
        )
        self.by_name: dict[str, lambda_.Function] = {
            spec.name: self._function(scopes[spec.name], spec) for spec in specs
        }

    def _function(self, scope: Construct, spec: FunctionSpec) -> lambda_.Function:
        log_group = self._observability.log_group(scope, "Logs")
        # Our own role, so no AWS managed policy (AWSLambdaBasicExecutionRole) is attached:
        # each permission below is granted on the narrowest resource that works.
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {spec.name} function",
        )
        log_group.grant_write(role)
        if spec.table is not None:
            self._data.grant_items(role, spec.table)
        if spec.consumes is not None:
            self._queues.queue(spec.consumes).grant_consume_messages(role)
            # It moves a message it can never process to the dead-letter queue itself.
            grant_send(role, self._queues.by_name[spec.consumes.name].dead_letter_queue)
        if spec.stream is not None:
            # As the event source does for a batch given up on; the function describes a
            # record it can never process there itself.
            grant_send(role, self.stream_failures[spec.name])
        for produced in spec.produces:
            grant_send(role, self._queues.queue(produced))
        for topic in spec.publishes:
            grant_publish(role, self._topics[topic])
        if spec.sends_email:
            self._email.grant_send(role)
        if spec.signs_links:
            self._email.signing_secret.grant_read(role)

        function = lambda_.Function(
            scope,
            "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=self._code,
            layers=[self.layer],
            role=role,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            # No X-Ray: functions/observability.py says why.
            tracing=lambda_.Tracing.DISABLED,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=log_group,
            environment=function_environment(spec, self._config, self._resources),
        )
        self._add_triggers(scope, spec, function)
        if spec.consumes_stream:
            acknowledge(
                role.node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5[Resource::*]",
                "dynamodb:ListStreams, which the table stream's event source needs, supports "
                "no resource-level permissions (the stream reads themselves name the stream "
                "ARN).",
            )
        acknowledge(
            function.node.find_child("Resource"),
            "AwsSolutions-L1",
            "python3.13 is pinned on purpose: the dependency layer is built for cp313 "
            "(infra/packaging.py); the runtime moves together with the layer.",
        )
        return function

    def _add_triggers(
        self, scope: Construct, spec: FunctionSpec, function: lambda_.Function
    ) -> None:
        if spec.schedule_minutes is not None:
            events.Rule(
                scope,
                "Schedule",
                description=f"Runs the {spec.name} function every {spec.schedule_minutes} min",
                schedule=events.Schedule.rate(Duration.minutes(spec.schedule_minutes)),
                targets=[targets.LambdaFunction(function)],
            )
            # No retry of a failed run: it would overlap the next one, which picks up
            # whatever the failed run left.
            function.configure_async_invoke(retry_attempts=0)
        if spec.consumes is not None:
            queue = spec.consumes
            if spec.timeout_s >= queue.visibility_timeout_s:
                raise ValueError(
                    f"{spec.name}: timeout {spec.timeout_s}s must be shorter than the "
                    f"{queue.name} queue's visibility timeout ({queue.visibility_timeout_s}s), "
                    "or a message is delivered again while its batch still runs"
                )
            # Its own consume grant duplicates the one above (CDK merges the two).
            function.add_event_source(
                event_sources.SqsEventSource(
                    self._queues.queue(queue),
                    batch_size=queue.batch_size,
                    max_batching_window=(
                        Duration.seconds(queue.max_batching_window_s)
                        if queue.max_batching_window_s
                        else None
                    ),
                    # Only the failed messages of a batch are retried (and dead-lettered).
                    report_batch_item_failures=True,
                    max_concurrency=queue.max_concurrency,
                )
            )
        if spec.stream is not None:
            self._add_stream_source(scope, spec, spec.stream, function)

    def _stream_failure_queue(
        self, scope: Construct, spec: FunctionSpec, source: StreamSource
    ) -> None:
        """The stream consumer's failure queue for records given up on, and its alarm.

        Lambda sends it a description of the failed batch (shard and sequence numbers),
        not the records: the lead itself stays in the table. The function sends it the
        same of a record it can never process (event id, sequence number, keys). So the
        queue holds no personal data and SQS's own key encrypts it.
        """
        failures = dead_letter_queue(scope, "StreamFailures")
        alarm = dead_letter_alarm(
            scope,
            "StreamFailuresAlarm",
            queue=failures,
            description=(
                f"Table stream records failed {source.retry_attempts} retries in the "
                f"{spec.name} function (or aged past a day) and were given up on"
            ),
        )
        self.stream_failures[spec.name] = failures
        self.alarms.append(alarm)
        acknowledge(
            failures.node.find_child("Resource"),
            "AwsSolutions-SQS3",
            f"This queue is the on-failure destination of the {spec.name} function's "
            "stream event source, a dead-letter queue itself; cdk-nag only recognises "
            "dead-letter queues named in another queue's redrive policy.",
        )

    def _add_stream_source(
        self,
        scope: Construct,
        spec: FunctionSpec,
        source: StreamSource,
        function: lambda_.Function,
    ) -> None:
        """The table's stream, filtered, with its failure queue as on-failure destination."""
        failures = self.stream_failures[spec.name]
        # Grants the role the stream reads (and the table key's decrypt) and the queue send.
        function.add_event_source(
            event_sources.DynamoEventSource(
                self._data.table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=source.batch_size,
                bisect_batch_on_error=source.bisect_batch_on_error,
                report_batch_item_failures=True,
                retry_attempts=source.retry_attempts,
                max_record_age=Duration.seconds(source.max_record_age_s),
                on_failure=event_sources.SqsDlq(failures),
                # The records the function is for (the wiring's filter, also used locally).
                filters=(
                    [lambda_.FilterCriteria.filter(source.filter.pattern())]
                    if source.filter
                    else None
                ),
            )
        )

"""One Lambda function per entry of ``wiring.FUNCTIONS``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import DeploymentConfig, function_environment
from infra.constructs.data import LeadData
from infra.constructs.nag import acknowledge
from infra.constructs.observability import Observability
from infra.wiring import FunctionSpec

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


class NurtureFunctions(Construct):
    """The functions, their roles and log groups, and the shared dependency layer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: Sequence[FunctionSpec],
        config: DeploymentConfig,
        data: LeadData,
        observability: Observability,
        code_dir: Path,
        layer_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._data = data
        self._observability = observability
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
            spec.name: self._function(spec) for spec in specs
        }

    def _function(self, spec: FunctionSpec) -> lambda_.Function:
        scope = Construct(self, spec.name)
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
        if spec.table_access != "none":
            self._data.grant_items(role, write=spec.table_access == "read_write")

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
            # Adds xray:PutTraceSegments/PutTelemetryRecords on "*" to the role.
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=log_group,
            environment=function_environment(
                spec, self._config, table_name=self._data.table.table_name
            ),
        )
        acknowledge(
            role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
            "permissions; '*' is the only valid resource for active tracing.",
        )
        acknowledge(
            function.node.find_child("Resource"),
            "AwsSolutions-L1",
            "python3.13 is pinned on purpose: the dependency layer is built for cp313 "
            "(infra/packaging.py); the runtime moves together with the layer.",
        )
        return function

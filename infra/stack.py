"""The lead-nurture stack: composes the constructs from the wiring declaration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import wiring
from infra.config import DeploymentConfig
from infra.constructs.api import LeadApi
from infra.constructs.data import LeadData
from infra.constructs.firewall import ApiFirewall
from infra.constructs.functions import NurtureFunctions
from infra.constructs.nag import acknowledge
from infra.constructs.observability import Observability


class LeadNurtureStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code_dir: Path,
        layer_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        observability = Observability(
            self, "Observability", log_retention_days=config.log_retention_days
        )
        data = LeadData(self, "Data", spec=wiring.TABLE)
        functions = NurtureFunctions(
            self,
            "Functions",
            specs=wiring.FUNCTIONS,
            config=config,
            data=data,
            observability=observability,
            code_dir=code_dir,
            layer_dir=layer_dir,
        )
        api = LeadApi(
            self,
            "Api",
            specs=wiring.FUNCTIONS,
            functions=functions.by_name,
            config=config,
            observability=observability,
        )
        stage = api.rest_api.deployment_stage
        if config.waf_enabled:
            ApiFirewall(self, "Firewall", stage=stage, ip_rate_limit=config.waf_ip_rate_limit)
        else:
            acknowledge(
                stage.node.find_child("Resource"),
                "AwsSolutions-APIG3",
                "WAF turned off by the deployment config (waf_enabled=false): another "
                "layer in front of the API filters the traffic.",
            )
        CfnOutput(self, "ApiUrl", value=api.rest_api.url, description="Base URL of the v1 stage")
        CfnOutput(self, "TableName", value=data.table.table_name)

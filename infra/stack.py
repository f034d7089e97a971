"""The lead-nurture stack: composes the constructs from the wiring declaration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import wiring
from infra.config import DeploymentConfig, Resources
from infra.constructs.api import LeadApi
from infra.constructs.data import LeadData
from infra.constructs.firewall import ApiFirewall
from infra.constructs.functions import NurtureFunctions
from infra.constructs.handoff import SalesHandoff
from infra.constructs.messaging import JobQueues
from infra.constructs.nag import acknowledge
from infra.constructs.nurture import NurtureEmail
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
        uncertain_sends = observability.alarm_on_uncertain_sends()
        sending_paused = observability.alarm_on_sending_paused()
        reputation = observability.alarm_on_reputation(config.reputation)
        data = LeadData(self, "Data", spec=wiring.TABLE)
        queues = JobQueues(self, "Messaging", specs=wiring.QUEUES)
        email = NurtureEmail(
            self,
            "Email",
            configuration_set_name=wiring.CONFIGURATION_SET,
            events_topic_name=wiring.EMAIL_EVENTS_TOPIC,
            from_domain=config.sender.from_domain,
        )
        handoff = SalesHandoff(self, "Handoff", topic_name=wiring.SALES_TOPIC)
        topics = {wiring.EMAIL_EVENTS_TOPIC: email.events_topic, wiring.SALES_TOPIC: handoff.topic}
        if set(topics) != set(wiring.TOPICS):
            raise ValueError(f"topics built {sorted(topics)} differ from the wiring's")
        # SES engagement events reach the engagement function through its queue.
        queues.subscribe(wiring.ENGAGEMENT_QUEUE, email.events_topic)
        # Before the functions: the sender links to the API (unsubscribe URL). No cycle,
        # as the sender has no route; the routed functions' environments hold no API URL.
        api = LeadApi(self, "Api", config=config, observability=observability)
        functions = NurtureFunctions(
            self,
            "Functions",
            specs=wiring.FUNCTIONS,
            config=config,
            resources=Resources(
                table_name=data.table.table_name,
                api_url=api.rest_api.url,
                configuration_set=email.configuration_set.configuration_set_name,
                queue_urls={name: queue.queue.queue_url for name, queue in queues.by_name.items()},
                dead_letter_queue_urls={
                    name: queue.dead_letter_queue.queue_url
                    for name, queue in queues.by_name.items()
                },
                topic_arns={name: topic.topic_arn for name, topic in topics.items()},
                signing_secret_arn=email.signing_secret.secret_arn,
            ),
            data=data,
            queues=queues,
            email=email,
            topics=topics,
            observability=observability,
            code_dir=code_dir,
            layer_dir=layer_dir,
        )
        api.add_routes(wiring.FUNCTIONS, functions.by_name)
        observability.dashboard(
            functions=functions.by_name,
            dead_letter_queues={
                **{f"{name} queue": q.dead_letter_queue for name, q in queues.by_name.items()},
                **{f"{name} stream": q for name, q in functions.stream_failures.items()},
            },
            alarms=[
                uncertain_sends,
                sending_paused,
                *reputation,
                *(q.dead_letter_alarm for q in queues.by_name.values()),
                *functions.alarms,
            ],
            reputation=config.reputation,
        )
        stage = api.rest_api.deployment_stage
        if config.waf_enabled:
            ApiFirewall(
                self,
                "Firewall",
                stage=stage,
                ip_rate_limit=config.waf_ip_rate_limit,
                opt_out_ip_rate_limit=config.waf_opt_out_ip_rate_limit,
            )
        else:
            acknowledge(
                stage.node.find_child("Resource"),
                "AwsSolutions-APIG3",
                "WAF turned off by the deployment config (waf_enabled=false): another "
                "layer in front of the API filters the traffic.",
            )
        CfnOutput(self, "ApiUrl", value=api.rest_api.url, description="Base URL of the v1 stage")
        CfnOutput(self, "TableName", value=data.table.table_name)
        CfnOutput(
            self,
            "EmailEventsTopicArn",
            value=email.events_topic.topic_arn,
            description="SES events of the configuration set (send, delivery, open, click, ...)",
        )
        CfnOutput(
            self,
            "SalesTopicArn",
            value=handoff.topic.topic_arn,
            description="Leads that just became MQL: subscribe sales systems and people here",
        )

"""The hand-off to sales: the topic that announces leads that just became MQL.

Sales systems (CRM connectors, chat bots) and people (email) subscribe to it outside
this stack; the handoff function, fed by the table's stream, is its only publisher.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.keys import data_key


class SalesHandoff(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, topic_name: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # A qualified lead's name, company and contact details travel in each message.
        self.key = data_key(
            self, "TopicKey", "Encrypts the sales topic (qualified leads' contact details)"
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Leads qualified for sales (MQL)",
            # Named after the wiring, prefixed so that two stacks never share a topic.
            topic_name=f"{stack.stack_name}-{topic_name}",
            master_key=self.key,
            enforce_ssl=True,
        )

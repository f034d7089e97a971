"""Nurture email: the SES configuration set, its engagement events, the link-signing key.

The sending identity (the from-address domain) is not created here: the customer
verifies their own domain (DKIM records in their DNS) in SES, outside this stack.
The functions are granted sending on exactly that identity and this configuration set.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.keys import data_key
from infra.constructs.nag import acknowledge

# Everything SES can report about a message, so engagement (opens, clicks) scores
# leads and bounces, complaints and unsubscribes stop the mail.
EMAIL_EVENTS = (
    ses.EmailSendingEvent.SEND,
    ses.EmailSendingEvent.DELIVERY,
    ses.EmailSendingEvent.OPEN,
    ses.EmailSendingEvent.CLICK,
    ses.EmailSendingEvent.BOUNCE,
    ses.EmailSendingEvent.COMPLAINT,
    ses.EmailSendingEvent.REJECT,
    ses.EmailSendingEvent.RENDERING_FAILURE,
    ses.EmailSendingEvent.DELIVERY_DELAY,
    ses.EmailSendingEvent.SUBSCRIPTION,
)

# SES v2 SendEmail authorises against both the identity and the configuration set.
SEND_ACTIONS = ("ses:SendEmail", "ses:SendRawEmail")

SIGNING_SECRET_LENGTH = 64


class NurtureEmail(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        configuration_set_name: str,
        events_topic_name: str,
        from_domain: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.identity_arn = stack.format_arn(
            service="ses",
            resource="identity",
            resource_name=from_domain,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.configuration_set_arn = stack.format_arn(
            service="ses",
            resource="configuration-set",
            resource_name=configuration_set_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )

        # Engagement events carry recipient addresses: encrypt them under our own key.
        self.events_key = data_key(
            self, "EventsKey", "Encrypts the SES engagement events topic (recipient addresses)"
        )
        # SES publishes to an encrypted topic only if the key policy lets it use the key,
        # and only for this account's configuration set.
        self.events_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": Aws.ACCOUNT_ID,
                        "aws:SourceArn": self.configuration_set_arn,
                    }
                },
            )
        )
        self.events_topic = sns.Topic(
            self,
            "EventsTopic",
            display_name=f"SES events of the {configuration_set_name} configuration set",
            # Named after the wiring, prefixed so that two stacks never share a topic.
            topic_name=f"{stack.stack_name}-{events_topic_name}",
            master_key=self.events_key,
            enforce_ssl=True,
        )

        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            configuration_set_name=configuration_set_name,
            reputation_metrics=True,
            sending_enabled=True,
            tls_policy=ses.ConfigurationSetTlsPolicy.REQUIRE,
            # Never mail an address again after it bounced or complained.
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        # Also adds the topic policy that lets SES (for this configuration set) publish.
        self.configuration_set.add_event_destination(
            "EventsTopicDestination",
            destination=ses.EventDestination.sns_topic(self.events_topic),
            events=list(EMAIL_EVENTS),
            enabled=True,
        )

        # Whoever reads the secret can forge any recipient's opt-out link and lead
        # reference: its own key puts each read under the key policy and in CloudTrail.
        self.secret_key = data_key(self, "SecretKey", "Encrypts the link-signing secret")
        self.signing_secret = secretsmanager.Secret(
            self,
            "SigningSecret",
            description="HMAC key that signs the unsubscribe links in nurture emails",
            encryption_key=self.secret_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=SIGNING_SECRET_LENGTH, exclude_punctuation=True
            ),
            # Deleting it would break every unsubscribe link already sent.
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.signing_secret.node.find_child("Resource"),
            "AwsSolutions-SMG4",
            "Unsubscribe links already in recipients' inboxes are signed with this key, "
            "and the law (特定電子メール法) requires those links to keep working; rotating "
            "the key would silently invalidate them. It never leaves Secrets Manager and "
            "only the functions that sign or verify links can read it.",
        )

    def grant_send(self, grantee: iam.IGrantable) -> None:
        """SES sends from the customer's domain identity, through this configuration set."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(SEND_ACTIONS),
            resource_arns=[self.identity_arn, self.configuration_set_arn],
        )

"""SES event publishing records, as they arrive through SNS and SQS (pure parsing).

The SQS message body is the SES event itself (raw message delivery), the SNS
notification envelope whose ``Message`` holds it, or, where the configuration set
publishes to EventBridge and a rule targets the queue or the topic, the EventBridge event whose
``detail`` holds it. All three are read here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.domain.malformed import MalformedRecord
from shared.domain.tokens import without_site_ref


class EmailEventType(StrEnum):
    SEND = "Send"
    DELIVERY = "Delivery"
    OPEN = "Open"
    CLICK = "Click"
    BOUNCE = "Bounce"
    COMPLAINT = "Complaint"
    REJECT = "Reject"
    RENDERING_FAILURE = "Rendering Failure"
    DELIVERY_DELAY = "DeliveryDelay"
    SUBSCRIPTION = "Subscription"


# The event's own object in the record, where its timestamp and details are.
DETAIL_KEYS = {
    EmailEventType.SEND: "send",
    EmailEventType.DELIVERY: "delivery",
    EmailEventType.OPEN: "open",
    EmailEventType.CLICK: "click",
    EmailEventType.BOUNCE: "bounce",
    EmailEventType.COMPLAINT: "complaint",
    EmailEventType.REJECT: "reject",
    EmailEventType.RENDERING_FAILURE: "failure",
    EmailEventType.DELIVERY_DELAY: "deliveryDelay",
    EmailEventType.SUBSCRIPTION: "subscription",
}


class NotAnEmailEvent(MalformedRecord):
    """The message is not an SES event record (a poison message)."""


class SetupNotice(Exception):
    """A message SNS or SES sends when the event topic is set up, not about any email:
    acknowledged, never retried or dead-lettered. ``kind`` names it."""

    def __init__(self, kind: str, topic: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.topic = topic  # the topic ARN, where the message names it


# SNS's own messages to a subscriber (a queue of another account is asked to confirm).
_SNS_NOTICES = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})
# SES's when a topic starts to receive its notifications: an identity's feedback topic
# says so as a record, a configuration set's event destination as a line of text.
SUBSCRIPTION_SUCCEEDED = "AmazonSnsSubscriptionSucceeded"
_TOPIC_VALIDATED = "Successfully validated SNS topic for Amazon SES event publishing"


@dataclass(frozen=True)
class EmailEvent:
    type: EmailEventType
    message_id: str
    at: datetime
    recipients: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    sent_at: datetime | None = None  # when SES accepted the email (``mail.timestamp``)

    @property
    def lead_id(self) -> str | None:
        return self.tags.get("lead_id")

    @property
    def program_id(self) -> str | None:
        return self.tags.get("program")

    @property
    def step_id(self) -> str | None:
        return self.tags.get("step")

    @property
    def variant(self) -> str | None:
        return self.tags.get("variant")

    @property
    def links(self) -> int | None:
        """Tracked links in the email, as the sender counted them (its ``links`` tag)."""
        text = self.tags.get("links", "")
        return int(text) if text.isdigit() else None

    @property
    def user_agent(self) -> str | None:
        agent = self.detail.get("userAgent")
        return agent if isinstance(agent, str) else None

    @property
    def ip_address(self) -> str | None:
        address = self.detail.get("ipAddress")
        return address if isinstance(address, str) else None

    @property
    def link(self) -> str | None:
        """The clicked URL, without the site reference it carried (see shared.domain.tokens)."""
        link = self.detail.get("link")
        return without_site_ref(str(link)) if link else None

    @property
    def link_tags(self) -> tuple[str, ...]:
        """Values of the ``link`` tag on the clicked anchor (``ses:tags="link:pricing;"``)."""
        tags = self.detail.get("linkTags") or {}
        return tuple(str(v) for v in tags.get("link", []))

    @property
    def permanent_bounce(self) -> bool:
        return self.type is EmailEventType.BOUNCE and self.detail.get("bounceType") == "Permanent"

    @property
    def unsubscribed_all(self) -> bool:
        prefs = self.detail.get("newTopicPreferences") or {}
        return self.type is EmailEventType.SUBSCRIPTION and bool(prefs.get("unsubscribeAll"))

    @property
    def dedupe_key(self) -> str:
        """The same event delivered twice has the same key; two opens do not."""
        parts = [
            self.type.value,
            self.message_id,
            self.at.isoformat(),
            self.link or "",
            ",".join(sorted(self.recipients)),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _unwrap(body: str) -> dict[str, Any]:
    if body.strip().startswith(_TOPIC_VALIDATED):
        raise SetupNotice("TopicValidated")  # raw message delivery: the text alone
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise NotAnEmailEvent("body is not JSON") from exc
    if isinstance(document, dict) and document.get("Type") in _SNS_NOTICES:
        raise SetupNotice(str(document["Type"]), topic=str(document.get("TopicArn", "")))
    if isinstance(document, dict) and document.get("Type") == "Notification":
        message = document.get("Message", "")
        if not isinstance(message, str):
            raise NotAnEmailEvent("SNS Message is not text")
        if message.strip().startswith(_TOPIC_VALIDATED):
            raise SetupNotice("TopicValidated")
        try:
            document = json.loads(message)
        except (ValueError, RecursionError) as exc:
            raise NotAnEmailEvent("SNS Message is not JSON") from exc
    if isinstance(document, dict) and document.get("source") == "aws.ses":
        # A configuration set that publishes to EventBridge: a rule hands on the event
        # (to the queue, or to the topic), whose detail is the record SES would have
        # published to SNS.
        document = document.get("detail")
    if not isinstance(document, dict):
        raise NotAnEmailEvent("not a JSON object")
    return document


def _timestamp(text: object) -> datetime:
    if not isinstance(text, str):
        raise NotAnEmailEvent("missing timestamp")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise NotAnEmailEvent("bad timestamp") from exc  # the text may be anything
    if moment.tzinfo is None:
        # SES's are UTC ("Z"); one without a zone could not be compared with any other.
        raise NotAnEmailEvent("timestamp without a time zone")
    return moment


def parse_event(body: str) -> EmailEvent:
    """The SES event a message holds. Raises NotAnEmailEvent for a record that is not
    one, SetupNotice for SNS's and SES's own set-up messages."""
    try:
        return _parse(body)
    except (TypeError, AttributeError, KeyError) as exc:
        # A shape SES never publishes (a null list, text for an object): this record
        # alone is unreadable, never the batch it came in.
        raise NotAnEmailEvent(f"malformed record ({type(exc).__name__})") from exc


def _parse(body: str) -> EmailEvent:
    record = _unwrap(body)
    kind = record.get("eventType") or record.get("notificationType")
    if kind == SUBSCRIPTION_SUCCEEDED:
        raise SetupNotice(SUBSCRIPTION_SUCCEEDED)
    try:
        event_type = EmailEventType(str(kind))
    except ValueError as exc:
        raise NotAnEmailEvent("unknown event type") from exc
    mail = record.get("mail")
    if not isinstance(mail, dict) or not mail.get("messageId"):
        raise NotAnEmailEvent("no mail object")
    detail = record.get(DETAIL_KEYS[event_type]) or {}
    if not isinstance(detail, dict):
        raise NotAnEmailEvent("event detail is not an object")
    tags = {
        str(name): str(values[0])
        for name, values in (mail.get("tags") or {}).items()
        if isinstance(values, list) and values
    }
    return EmailEvent(
        type=event_type,
        message_id=str(mail["messageId"]),
        at=_timestamp(detail.get("timestamp") or mail.get("timestamp")),
        recipients=_recipients(event_type, mail, detail),
        tags=tags,
        detail=detail,
        sent_at=_sent_at(mail.get("timestamp")),
    )


def _sent_at(text: object) -> datetime | None:
    try:
        return _timestamp(text)
    except NotAnEmailEvent:
        return None  # only a hint for telling machines apart: never a reason to refuse


def _recipients(
    kind: EmailEventType, mail: dict[str, Any], detail: dict[str, Any]
) -> tuple[str, ...]:
    """Who the event is about: the bounced or complaining recipients when SES says."""
    if kind is EmailEventType.BOUNCE:
        found = [r.get("emailAddress") for r in detail.get("bouncedRecipients", [])]
    elif kind is EmailEventType.COMPLAINT:
        found = [r.get("emailAddress") for r in detail.get("complainedRecipients", [])]
    elif kind is EmailEventType.DELIVERY_DELAY:
        found = [r.get("emailAddress") for r in detail.get("delayedRecipients", [])]
    else:
        found = []
    addresses = [a for a in found if isinstance(a, str)] or [
        a for a in mail.get("destination", []) if isinstance(a, str)
    ]
    return tuple(addresses)

"""SES event publishing records from the documented samples, as SNS and SQS deliver them.

``ses_record`` loads one of ``fixtures/ses_events`` (the AWS documentation's examples,
with our message tags) and points it at a lead, an address and an instant;
``sns_envelope`` wraps a record as SNS delivers it to a queue without raw message
delivery; ``sqs_event`` is the event Lambda gets from the engagement queue.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "ses_events"
SAMPLES = (
    "send",
    "delivery",
    "open",
    "click",
    "bounce_permanent",
    "bounce_transient",
    "complaint",
    "reject",
    "rendering_failure",
    "delivery_delay",
    "subscription",
)
REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
EMAIL_EVENTS_TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:lead-nurture-email-events"
ENGAGEMENT_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:lead-nurture-engagement"

# The fixtures' own values (see fixtures/ses_events/README.md).
SAMPLE_LEAD_ID = "4f9a1c2e8b7d4e6fa0c1d2e3f4a5b6c7"
SAMPLE_RECIPIENT = "recipient@example.com"

# The event's own object, where its timestamp and recipients are.
_DETAIL = {
    "Send": "send",
    "Delivery": "delivery",
    "Open": "open",
    "Click": "click",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Rendering Failure": "failure",
    "DeliveryDelay": "deliveryDelay",
    "Subscription": "subscription",
}
_RECIPIENT_LISTS = ("bouncedRecipients", "complainedRecipients", "delayedRecipients")
_KEEP: Any = object()


@cache
def _text(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text(encoding="utf-8")


def sample(name: str) -> dict[str, Any]:
    """The documented record, unchanged (a fresh copy each time)."""
    document: dict[str, Any] = json.loads(_text(name))
    return document


def iso(moment: datetime) -> str:
    """SES's timestamp format: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ses_record(
    name: str,
    *,
    lead_id: str | None = _KEEP,
    program: str | None = _KEEP,
    step: str | None = _KEEP,
    variant: str | None = _KEEP,
    email: str | None = None,
    at: datetime | None = None,
    message_id: str | None = None,
    link: str | None = None,
    link_tags: Sequence[str] | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """A documented record about ``email`` at ``at``; a tag given as None is left out.

    ``detail`` overrides fields of the event's own object (e.g. ``bounceType``).
    """
    record = sample(name)
    mail = record["mail"]
    tags = mail["tags"]
    for tag, value in (
        ("lead_id", lead_id),
        ("program", program),
        ("step", step),
        ("variant", variant),
    ):
        if value is None:
            tags.pop(tag, None)
        elif value is not _KEEP:
            tags[tag] = [value]
    own = record.setdefault(_DETAIL[record["eventType"]], {})
    if email is not None:
        mail["destination"] = [email]
        if "commonHeaders" in mail:
            mail["commonHeaders"]["to"] = [email]
        for listed in _RECIPIENT_LISTS:
            for recipient in own.get(listed, []):
                recipient["emailAddress"] = email
        if "recipients" in own:
            own["recipients"] = [email]
    if at is not None:
        if "timestamp" in own:
            own["timestamp"] = iso(at)
            mail["timestamp"] = iso(at - timedelta(minutes=1))  # sent before
        else:  # Send, Reject, Rendering Failure: the send is the event
            mail["timestamp"] = iso(at)
        if "arrivalDate" in own:
            own["arrivalDate"] = iso(at)
    if message_id is not None:
        mail["messageId"] = message_id
        if "commonHeaders" in mail:
            mail["commonHeaders"]["messageId"] = message_id
    if link is not None:
        own["link"] = link
    if link_tags is not None:
        own["linkTags"] = {"link": list(link_tags)} if link_tags else {}
    own.update(detail)
    return record


def sns_envelope(
    record: dict[str, Any] | str,
    *,
    topic_arn: str = EMAIL_EVENTS_TOPIC_ARN,
    message_id: str | None = None,
    at: datetime | None = None,
) -> str:
    """The SNS notification a queue receives when raw message delivery is off."""
    message = record if isinstance(record, str) else json.dumps(record)
    subscription = f"{topic_arn}:c7fe3a54-ab0e-4ec2-88e0-db410a0f2bee"
    envelope = {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": iso(at or datetime.now(UTC)),
        "SignatureVersion": "1",
        "Signature": "EXAMPLEnTrFPa3w6JRN...",
        "SigningCertURL": (
            f"https://sns.{REGION}.amazonaws.com/"
            "SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
        ),
        "UnsubscribeURL": (
            f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription}"
        ),
    }
    return json.dumps(envelope, indent=2)


def raw(record: dict[str, Any]) -> str:
    """The body with raw message delivery on: the record as SES published it."""
    return json.dumps(record)


# EventBridge's detail-type for each SES event type (the EventBridge events reference).
DETAIL_TYPES = {
    "Send": "Email Sent",
    "Delivery": "Email Delivered",
    "Open": "Email Opened",
    "Click": "Email Clicked",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "Reject": "Email Rejected",
    "Rendering Failure": "Email Rendering Failed",
    "DeliveryDelay": "Email Delivery Delayed",
    "Subscription": "Email Subscribed",
}


def eventbridge_envelope(record: dict[str, Any]) -> str:
    """The body a queue receives from an EventBridge rule on the default bus, where a
    configuration set publishes to EventBridge: the record is the event's ``detail``."""
    mail = record.get("mail", {})
    configuration_set = (mail.get("tags", {}).get("ses:configuration-set") or ["set"])[0]
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": DETAIL_TYPES[record["eventType"]],
            "source": "aws.ses",
            "account": "123456789012",
            "time": mail.get("timestamp", "2026-11-24T01:00:00Z"),
            "region": "ap-northeast-1",
            "resources": [
                f"arn:aws:ses:ap-northeast-1:123456789012:configuration-set/{configuration_set}"
            ],
            "detail": record,
        }
    )


def sqs_record(body: str, *, receive_count: int = 1) -> dict[str, Any]:
    sent = 1795341600000
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(sent + 12),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": ENGAGEMENT_QUEUE_ARN,
        "awsRegion": REGION,
    }


def sqs_event(bodies: Sequence[str]) -> dict[str, Any]:
    """One batch from the engagement queue, as the Lambda event source mapping sends it."""
    return {"Records": [sqs_record(body) for body in bodies]}


def redelivered(event: dict[str, Any]) -> dict[str, Any]:
    """The same messages delivered again (a retry after a failure or a timeout)."""
    again = copy.deepcopy(event)
    for record in again["Records"]:
        count = int(record["attributes"]["ApproximateReceiveCount"]) + 1
        record["attributes"]["ApproximateReceiveCount"] = str(count)
    return again

"""``--state DIR``: what of a local run survives to the next one.

moto server keeps everything in memory and 5.2.5 has no persistence (its
``/moto-api/data.json`` is a view, not something it can load back). So the local stack
saves what matters itself when it stops, after its pollers have stopped, and puts it
back when it starts, before they start:

- the table's items (leads, timelines, due index, ledgers) and the clock's offset;
- the emails SES sent (the console's outbox), with their SES message ids, which the
  leads' ``email_sent`` activities refer to (older ones without their bodies, as the
  stack keeps them: ``moto_fixes.BODIES_KEPT``);
- every message in the provisioned queues (send, engagement, their dead-letter queues
  and the sales inbox), including those received but not yet deleted: no consumer is
  left to delete them, so they would have been delivered again anyway. They are sent
  again in their order, so they get new message ids, a receive count of zero and no
  delay.

Stream records do not survive (a restored item does not go through the stream again);
leased leads become due again when their lease runs out.

The file is JSON, written atomically; ``version`` 1 files (items and clock only, before
the key existed) still load.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.ses.models import RawMessage, ses_backends
from moto.sqs.models import sqs_backends

from infra.local.moto_fixes import DYNAMODB_LOCK, body_kept, keep_newest_bodies

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageRequestTypeDef

    from infra.provision import Provisioned

FILE = "local-state.json"
VERSION = 2
BATCH = 25  # BatchWriteItem's maximum

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Saved:
    """How much ``save`` wrote, for the line printed on stop."""

    items: int
    emails: int
    messages: int

    def __str__(self) -> str:
        return f"{self.items} items, {self.emails} sent emails, {self.messages} queued messages"


def queue_urls(provisioned: Provisioned) -> dict[str, str]:
    """Every queue the local stack provisions, by queue name (the last part of its URL)."""
    urls = [
        *provisioned.queue_urls.values(),
        *provisioned.dead_letter_queue_urls.values(),
        *provisioned.stream_failure_queue_urls.values(),
        provisioned.sales_inbox_url,
    ]
    return {url.rstrip("/").rpartition("/")[2]: url for url in urls}


def save(
    directory: Path, session: boto3.session.Session, provisioned: Provisioned, offset: timedelta
) -> Saved:
    """Write the table's items, sent emails, queued messages and the clock's offset.

    Items as JSON in DynamoDB's typed form (the table holds no binary attributes).
    """
    client: DynamoDBClient = session.client("dynamodb")
    items: list[dict[str, Any]] = []
    pages = client.get_paginator("scan").paginate(
        TableName=provisioned.table_name, ConsistentRead=True
    )
    for page in pages:
        items.extend(page["Items"])
    region = _region(session)
    sent_mail = moto_sent_mail(region)
    queues = {name: moto_queued_messages(region, name) for name in queue_urls(provisioned)}
    state = {
        "version": VERSION,
        "clock_offset_s": offset.total_seconds(),
        "items": items,
        "sent_mail": sent_mail,
        "queues": queues,
    }
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f"{FILE}.tmp"
    temporary.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    temporary.replace(directory / FILE)  # a crash mid-write keeps the previous state
    return Saved(len(items), len(sent_mail), sum(len(m) for m in queues.values()))


def load(
    directory: Path, session: boto3.session.Session, provisioned: Provisioned
) -> timedelta | None:
    """Put back what ``save`` wrote; the saved clock offset, or None if nothing was saved.

    Call it on freshly provisioned resources: queue messages and sent emails are added
    to what is there, not put in its place.
    """
    path = directory / FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    version = int(state.get("version", 1))
    if version > VERSION:
        raise ValueError(f"{path} has format version {version}; this code reads up to {VERSION}")
    _put_items(session.client("dynamodb"), provisioned.table_name, state["items"])
    moto_restore_sent_mail(_region(session), state.get("sent_mail", []))
    urls = queue_urls(provisioned)
    sqs: SQSClient = session.client("sqs")
    for name, messages in state.get("queues", {}).items():
        url = urls.get(name)
        if url is None:
            # The wiring no longer declares it: nothing would ever read these.
            log.warning("no queue %s any more: %d saved messages dropped", name, len(messages))
            continue
        for message in messages:
            sqs.send_message(**_send_request(url, message))
    return timedelta(seconds=float(state["clock_offset_s"]))


def _put_items(client: DynamoDBClient, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), BATCH):
        requests: list[Any] = [{"PutRequest": {"Item": i}} for i in items[start : start + BATCH]]
        pending: Any = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")


def _region(session: boto3.session.Session) -> str:
    region = session.region_name
    if region is None:
        raise ValueError("the session has no region: moto keeps each region apart")
    return region


def _send_request(url: str, message: Mapping[str, Any]) -> SendMessageRequestTypeDef:
    """SendMessage's parameters for a saved message (binary values are saved as base64)."""
    request: SendMessageRequestTypeDef = {"QueueUrl": url, "MessageBody": message["body"]}
    attributes = message.get("attributes") or {}
    if attributes:
        request["MessageAttributes"] = {
            name: (
                {"DataType": value["DataType"], "BinaryValue": base64.b64decode(binary)}
                if (binary := value.get("BinaryBase64")) is not None
                else {"DataType": value["DataType"], "StringValue": value["StringValue"]}
            )
            for name, value in attributes.items()
        }
    if message.get("group_id"):
        request["MessageGroupId"] = message["group_id"]
    if message.get("deduplication_id"):
        request["MessageDeduplicationId"] = message["deduplication_id"]
    return request


# -- moto's internals -------------------------------------------------------------------
# No AWS API lists the messages a queue holds (ReceiveMessage skips those in flight and
# delayed, and changes what it returns), lists the emails SES sent, or puts a sent email
# back under its message id. moto keeps them in its backends, in this process (the
# local stack runs moto in-process), so these three functions read and write them
# there. They rely on moto 5.2's internals; tests/integration/test_local_state.py pins
# them so a moto upgrade that changes them fails there, not in someone's `make dev`.


def moto_queued_messages(region: str, queue_name: str) -> list[dict[str, Any]]:
    """Every message in the queue, oldest first, whether visible, in flight or delayed.

    Relies on ``Queue._messages`` (the queue's messages, in the order added; deleted ones
    are removed from it) and each ``Message``'s ``body``, ``message_attributes`` (as
    SendMessage takes them, binary values as bytes), ``group_id`` and
    ``deduplication_id``.
    """
    queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].queues[queue_name]
    saved: list[dict[str, Any]] = []
    for message in list(queue._messages):
        record: dict[str, Any] = {"body": message.body}
        if message.message_attributes:
            record["attributes"] = {
                name: _attribute(value) for name, value in message.message_attributes.items()
            }
        # Only FIFO queues take these back (a standard queue refuses a group id).
        if queue.fifo_queue and message.group_id:
            record["group_id"] = message.group_id
        if queue.fifo_queue and message.deduplication_id:
            record["deduplication_id"] = message.deduplication_id
        saved.append(record)
    return saved


def _attribute(value: Mapping[str, Any]) -> dict[str, str]:
    if value.get("BinaryValue") is not None:
        binary = value["BinaryValue"]
        data = binary if isinstance(binary, bytes) else str(binary).encode()
        return {"DataType": value["DataType"], "BinaryBase64": base64.b64encode(data).decode()}
    return {"DataType": value["DataType"], "StringValue": str(value["StringValue"])}


def moto_lead_profiles(table_name: str, region: str) -> list[dict[str, Any]]:
    """Every lead profile of the table (``LEAD#<id>`` / ``PROFILE``) as DynamoDB JSON, read
    from moto's table in this process: the console's list, without a Scan of every item.

    Relies on ``Table.items`` (hash key -> range key -> ``Item``) and ``Item.to_json``.
    """
    profile = DynamoType({"S": "PROFILE"})
    with DYNAMODB_LOCK:
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables[table_name]
        return [
            rows[profile].to_json()["Attributes"]
            for hash_key, rows in table.items.items()
            if str(hash_key.value).startswith("LEAD#") and profile in rows
        ]


def expire_items(table_name: str, region: str, now: datetime, attribute: str) -> int:
    """Delete the items whose TTL ``attribute`` (epoch seconds) is past ``now``, as
    DynamoDB's TTL does (moto never does): request markers, page views and email records
    would otherwise pile up over a long run. Each deletion is on the stream, as on AWS.

    Relies on ``Table.items`` and ``Table.delete_item(hash, range)``.
    """
    cutoff = now.timestamp()
    with DYNAMODB_LOCK:
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables[table_name]
        expired = [
            (hash_key, range_key)
            for hash_key, rows in table.items.items()
            for range_key, item in rows.items()
            if attribute in item.attrs and float(item.attrs[attribute].value) < cutoff
        ]
        for hash_key, range_key in expired:
            table.delete_item(hash_key, range_key)
    return len(expired)


def moto_sent_mail(region: str) -> list[dict[str, Any]]:
    """The raw emails SES sent (v1 and v2 share them), oldest first, as ``data.json``
    lists them under ``ses.RawMessage``: id, source, destinations, raw_data, and
    body_kept (false where only the header block is left, ``moto_fixes``).

    Relies on ``SESBackend.sent_messages`` and ``RawMessage``'s attributes. Other kinds
    of sent message (simple and templated) are not kept: nothing here sends them.
    """
    sent = ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages
    return [
        {
            "id": m.id,
            "source": m.source,
            "destinations": list(m.destinations),
            "raw_data": m.raw_data,
            "body_kept": body_kept(m),
        }
        for m in sent
        if isinstance(m, RawMessage)
    ]


def moto_restore_sent_mail(region: str, mails: Iterable[Mapping[str, Any]]) -> None:
    """Append saved raw emails to SES's sent messages, under their original ids; only
    the newest ``BODIES_KEPT`` of them all keep their bodies, as while running.

    Relies on ``RawMessage(message_id, source, destinations, raw_data)`` and on
    ``sent_messages`` being the list ``data.json`` and the console read.
    """
    backend = ses_backends[DEFAULT_ACCOUNT_ID][region]
    for m in mails:
        message = RawMessage(m["id"], m["source"], list(m["destinations"]), m["raw_data"])
        if not m.get("body_kept", True):
            message.body_kept = False  # type: ignore[attr-defined]
        backend.sent_messages.append(message)
    keep_newest_bodies(backend.sent_messages)

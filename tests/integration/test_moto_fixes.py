"""The local stack's fixes to moto (``infra/local/moto_fixes.py``): transactions that
neither copy tables nor keep what they cancel, memory that is freed, bounded shard
iterators and streams, and conditional writes that hold under concurrent requests.

Each test would fail on moto as it is; they are also where a moto upgrade that moves
what the fixes rely on shows.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodbstreams.models import dynamodbstreams_backends

from infra.local import moto_fixes
from infra.local.moto_server import LocalMotoServer

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
TABLE = "fixes"


def key_schema(hash_key: str, range_key: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": hash_key, "KeyType": "HASH"},
        {"AttributeName": range_key, "KeyType": "RANGE"},
    ]


def create_table(dynamodb: Any, index: tuple[str, str] | None = None) -> str:
    """The table (``pk``, ``sk``, a stream), and a GSI named ``due`` on ``index``."""
    indexed: dict[str, Any] = {}
    if index is not None:
        indexed["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "due",
                "KeySchema": key_schema(*index),
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=key_schema("pk", "sk"),
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", *(index or ()))
        ],
        **indexed,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn: str = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    return arn


@pytest.fixture
def fixed() -> Iterator[None]:
    undo = moto_fixes.install()
    try:
        with mock_aws():
            yield
    finally:
        undo()


@pytest.fixture
def dynamodb(fixed: None) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def streams(fixed: None) -> Any:
    # account-based endpoints are DynamoDB's, which moto does not route streams to
    return boto3.client(
        "dynamodbstreams",
        region_name=REGION,
        config=Config(account_id_endpoint_mode="disabled"),
    )


def put(pk: str, sk: str, **attributes: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}}
    item.update({name: {"S": value} for name, value in attributes.items()})
    return item


def stream_records(streams: Any, arn: str, kind: str = "TRIM_HORIZON") -> list[dict[str, Any]]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType=kind
    )["ShardIterator"]
    records: list[dict[str, Any]] = streams.get_records(ShardIterator=iterator)["Records"]
    return records


def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(
    dynamodb: Any, streams: Any
) -> None:
    arn = create_table(dynamodb)
    dynamodb.put_item(TableName=TABLE, Item=put("LEAD#1", "PROFILE", name="伊藤", stage="lead"))
    table = dynamodb_backends[ACCOUNT][REGION].tables[TABLE]
    before = len(stream_records(streams, arn))

    # When a transaction updates the profile, adds an activity, then fails its last check
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "LEAD#1"}, "sk": {"S": "PROFILE"}},
                        "UpdateExpression": "SET stage = :mql",
                        "ExpressionAttributeValues": {":mql": {"S": "mql"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": put("LEAD#1", "ACT#1", type="click")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "LEAD#1"}, "sk": {"S": "EVENT#1"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )

    # Then it is cancelled, as DynamoDB cancels it, and nothing of it remains
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "LEAD#1"}},
    )["Items"]
    assert items == [put("LEAD#1", "PROFILE", name="伊藤", stage="lead")]
    assert len(stream_records(streams, arn)) == before
    # and the table was never swapped for a copy (an open stream iterator stays valid)
    assert dynamodb_backends[ACCOUNT][REGION].tables[TABLE] is table


def test_a_committed_transaction_writes_every_item_and_stream_record(
    dynamodb: Any, streams: Any
) -> None:
    arn = create_table(dynamodb)
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": put("LEAD#1", "PROFILE", stage="lead")}},
            {"Put": {"TableName": TABLE, "Item": put("LEAD#1", "ACT#1", type="form")}},
        ]
    )
    assert dynamodb.scan(TableName=TABLE)["Count"] == 2
    assert [r["eventName"] for r in stream_records(streams, arn)] == ["INSERT", "INSERT"]


def live_items() -> int:
    gc.collect()
    return sum(isinstance(o, Item) for o in gc.get_objects())


def test_transactions_copy_no_table_and_what_they_replace_is_freed(dynamodb: Any) -> None:
    # Given a table of 500 items
    create_table(dynamodb)
    for n in range(500):
        dynamodb.put_item(TableName=TABLE, Item=put(f"LEAD#{n}", "PROFILE", stage="lead"))
    gc.collect()
    alive_before = live_items()

    # When 100 transactions commit and 100 are cancelled
    for n in range(200):
        condition = "attribute_exists(pk)" if n % 2 else "attribute_not_exists(pk)"
        with contextlib.suppress(ClientError):
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": TABLE,
                            "Item": put(f"LEAD#{n}", "PROFILE", stage=f"s{n}"),
                            "ConditionExpression": condition,
                        }
                    }
                ]
            )
    gc.collect()

    # Then the items alive are about the table's own, not 200 copies of 500
    assert live_items() < alive_before + 50
    assert dynamodb.scan(TableName=TABLE)["Count"] == 500


def test_shard_iterators_are_bounded_and_a_reader_still_sees_every_record(
    dynamodb: Any, streams: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moto_fixes, "ITERATORS_KEPT", 50)
    arn = create_table(dynamodb)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
    )["ShardIterator"]
    seen: list[str] = []
    # A reader polling 300 times, a write every third poll, always on the newest iterator
    for n in range(300):
        if n % 3 == 0:
            dynamodb.put_item(TableName=TABLE, Item=put(f"LEAD#{n}", "PROFILE"))
        answer = streams.get_records(ShardIterator=iterator)
        iterator = answer["NextShardIterator"]
        seen += [r["dynamodb"]["Keys"]["pk"]["S"] for r in answer["Records"]]
    assert seen == [f"LEAD#{n}" for n in range(0, 300, 3)]
    assert len(dynamodbstreams_backends[ACCOUNT][REGION].shard_iterators) <= 50


def test_a_stream_keeps_its_newest_records_and_numbers_go_on(
    dynamodb: Any, streams: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moto_fixes, "STREAM_RECORDS_KEPT", 10)
    arn = create_table(dynamodb)
    for n in range(25):
        dynamodb.put_item(TableName=TABLE, Item=put(f"LEAD#{n}", "PROFILE"))
    kept = stream_records(streams, arn)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in kept] == [f"LEAD#{n}" for n in range(15, 25)]
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in kept]
    assert numbers == list(range(numbers[0], numbers[0] + 10))
    # and a reader from the latest record sees the next write, numbered after the rest
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
    )["ShardIterator"]
    dynamodb.put_item(TableName=TABLE, Item=put("LEAD#25", "PROFILE"))
    (latest,) = streams.get_records(ShardIterator=iterator)["Records"]
    assert int(latest["dynamodb"]["SequenceNumber"]) == numbers[-1] + 1


def test_undo_gives_moto_back_as_it_was() -> None:
    from moto.core.common_models import BaseModel
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = (BaseModel.__new__, DynamoDBBackend.transact_write_items, Table.query)
    moto_fixes.install()()
    assert (BaseModel.__new__, DynamoDBBackend.transact_write_items, Table.query) == original


def indexed_table(dynamodb: Any) -> None:
    """Profiles and activities, with a sparse GSI keyed like the due index."""
    create_table(dynamodb, index=("shard", "due_at"))
    for lead in range(12):
        due = {"shard": f"S{lead % 3}", "due_at": f"2026-12-{10 + lead % 7:02d}"}
        dynamodb.put_item(TableName=TABLE, Item=put(f"LEAD#{lead:02d}", "PROFILE", **due))
        for n in range(lead % 4):
            dynamodb.put_item(TableName=TABLE, Item=put(f"LEAD#{lead:02d}", f"ACT#{n}", kind="x"))


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "LEAD#07"}}},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :a)",
        "ExpressionAttributeValues": {":p": {"S": "LEAD#11"}, ":a": {"S": "ACT#"}},
        "ScanIndexForward": False,
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "LEAD#99"}}},
    {
        "IndexName": "due",
        "KeyConditionExpression": "shard = :s AND due_at <= :t",
        "ExpressionAttributeValues": {":s": {"S": "S1"}, ":t": {"S": "2026-12-14"}},
    },
    {
        "IndexName": "due",
        "KeyConditionExpression": "shard = :s",
        "ExpressionAttributeValues": {":s": {"S": "S2"}},
        "ScanIndexForward": False,
    },
]


def every_page(dynamodb: Any, query: dict[str, Any]) -> list[list[dict[str, Any]]]:
    pages = dynamodb.get_paginator("query").paginate(TableName=TABLE, Limit=2, **query)
    return [page["Items"] for page in pages]


def test_a_query_reads_only_what_its_key_can_match_and_answers_as_moto_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models.table import Table

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        indexed_table(dynamodb)
        as_moto_answers = [every_page(dynamodb, query) for query in QUERIES]
    whole_table_reads: list[str] = []
    all_items = Table.all_items

    def counted(self: Table) -> Any:
        whole_table_reads.append(self.name)
        return all_items(self)

    monkeypatch.setattr(Table, "all_items", counted)  # what the fix falls back on
    undo = moto_fixes.install()
    try:
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            indexed_table(dynamodb)
            answers = [every_page(dynamodb, query) for query in QUERIES]
            assert whole_table_reads == []
            dynamodb.scan(TableName=TABLE)
            assert whole_table_reads == [TABLE]  # a Scan still reads the whole table
    finally:
        undo()
    assert answers == as_moto_answers
    assert [len(pages) for pages in answers] == [2, 2, 1, 2, 2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def post_at_once(client: Any, email: str, leads: list[str]) -> list[str]:
    """Each lead stored at the same moment, as a capture stores a new lead (the address
    claimed, the profile put); what each post was answered."""
    start = threading.Barrier(len(leads))
    answers: list[str] = []

    def post(lead: str) -> None:
        start.wait()
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": TABLE,
                            "Item": put(email, "LEAD", lead=lead),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": TABLE, "Item": put(f"LEAD#{lead}", "PROFILE")}},
                ]
            )
            answers.append("stored")
        except ClientError as error:
            answers.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=post, args=(lead,)) for lead in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_posts_for_one_new_address_on_the_local_moto_server_store_one_lead() -> None:
    port = free_port()
    server = LocalMotoServer("127.0.0.1", port, {f"127.0.0.1:{port}"})
    server.start()
    try:
        client = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 1}, max_pool_connections=32),
        )
        create_table(client)
        for n in range(300):  # a table with some history, as a capture meets it
            client.put_item(TableName=TABLE, Item=put(f"LEAD#{n}", "PROFILE"))
        for round_ in range(5):
            answers = post_at_once(client, f"EMAIL#{round_}", [f"{round_}-{n}" for n in range(20)])
            assert sorted(answers) == ["TransactionCanceledException"] * 19 + ["stored"]
            profiles = client.query(
                TableName=TABLE,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"EMAIL#{round_}"}},
            )["Items"]
            (claim,) = profiles
            assert client.get_item(
                TableName=TABLE,
                Key={"pk": {"S": f"LEAD#{claim['lead']['S']}"}, "sk": {"S": "PROFILE"}},
            ).get("Item")
    finally:
        server.stop()


def test_an_email_keeps_the_tags_it_was_sent_with_and_the_stack_time(fixed: None) -> None:
    at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    monkeypatch_clock = moto_fixes.SENT_EMAILS.clock
    moto_fixes.SENT_EMAILS.clock = lambda: at
    try:
        ses = boto3.client("sesv2", region_name=REGION)
        ses.create_email_identity(EmailIdentity="example.co.jp")
        raw = b"From: news@example.co.jp\r\nTo: a@example.co.jp\r\nSubject: x\r\n\r\nbody"
        sent = ses.send_email(
            FromEmailAddress="news@example.co.jp",
            Destination={"ToAddresses": ["a@example.co.jp"]},
            Content={"Raw": {"Data": raw}},
            EmailTags=[{"Name": "lead_id", "Value": "abc"}, {"Name": "step", "Value": "welcome"}],
        )
    finally:
        moto_fixes.SENT_EMAILS.clock = monkeypatch_clock
    kept = moto_fixes.SENT_EMAILS.get(sent["MessageId"])
    assert kept == moto_fixes.SentEmail({"lead_id": "abc", "step": "welcome"}, at)


def test_a_topic_keeps_its_newest_messages_and_still_delivers_every_one(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sns.models import sns_backends

    monkeypatch.setattr(moto_fixes, "NOTIFICATIONS_KEPT", 5)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="events")["TopicArn"]
    queue = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    for n in range(12):
        sns.publish(TopicArn=topic, Message=f"event {n}")
    kept = sns_backends[ACCOUNT][REGION].topics[topic].sent_notifications
    assert [message for _, message, *_ in kept] == [f"event {n}" for n in range(7, 12)]
    received = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        received += [m["Body"] for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(received) == sorted(f"event {n}" for n in range(12))


def test_a_reader_far_behind_the_trim_point_moves_on_to_what_is_held(
    dynamodb: Any, streams: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moto_fixes, "STREAM_RECORDS_KEPT", 10)
    arn = create_table(dynamodb)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    behind = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    for n in range(40):  # 30 trimmed before the reader reads: more than its limit of 5
        dynamodb.put_item(TableName=TABLE, Item=put(f"LEAD#{n}", "PROFILE"))
    seen: list[str] = []
    for _ in range(4):
        answer = streams.get_records(ShardIterator=behind, Limit=5)
        behind = answer["NextShardIterator"]
        seen += [r["dynamodb"]["Keys"]["pk"]["S"] for r in answer["Records"]]
    assert seen == [f"LEAD#{n}" for n in range(30, 40)]


def test_expired_items_are_deleted_as_dynamodbs_ttl_does(dynamodb: Any, streams: Any) -> None:
    from infra.local.state import expire_items

    arn = create_table(dynamodb)
    now = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    for n, expires in enumerate([now.timestamp() - 1, now.timestamp() + 60, None]):
        item = put(f"LEAD#{n}", "EVENT#x")
        if expires is not None:
            item["expires_at"] = {"N": str(int(expires))}
        dynamodb.put_item(TableName=TABLE, Item=item)

    assert expire_items(TABLE, REGION, now, "expires_at") == 1

    left = {i["pk"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]}
    assert left == {"LEAD#1", "LEAD#2"}
    (removed,) = [r for r in stream_records(streams, arn) if r["eventName"] == "REMOVE"]
    assert removed["dynamodb"]["Keys"]["pk"]["S"] == "LEAD#0"


def send_html(ses: Any, n: int) -> str:
    raw = (
        f"From: news@example.co.jp\r\nTo: a{n}@example.co.jp\r\nSubject: mail {n}\r\n"
        f"Content-Type: text/html; charset=utf-8\r\n\r\n<p>body {n}</p>"
    )
    sent = ses.send_email(
        FromEmailAddress="news@example.co.jp",
        Destination={"ToAddresses": [f"a{n}@example.co.jp"]},
        Content={"Raw": {"Data": raw.encode()}},
    )
    message_id: str = sent["MessageId"]
    return message_id


def test_only_the_newest_emails_keep_their_bodies_and_the_outbox_lists_every_one(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from email.message import Message

    from moto.ses.models import ses_backends

    from infra.local.console.mail import InProcessOutbox

    monkeypatch.setattr(moto_fixes, "BODIES_KEPT", 3)
    ses = boto3.client("sesv2", region_name=REGION)
    ses.create_email_identity(EmailIdentity="example.co.jp")
    outbox = InProcessOutbox(REGION)
    ids = [send_html(ses, n) for n in range(3)]
    assert [mail.subject for mail in outbox()] == ["mail 0", "mail 1", "mail 2"]

    ids += [send_html(ses, n) for n in range(3, 5)]

    sent = ses_backends[ACCOUNT][REGION].sent_messages
    assert [moto_fixes.body_kept(m) for m in sent] == [False, False, True, True, True]
    assert sent[0].raw_data == (
        "From: news@example.co.jp\r\nTo: a0@example.co.jp\r\nSubject: mail 0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
    )
    mails = outbox()
    assert [mail.id for mail in mails] == ids
    assert [mail.subject for mail in mails] == [f"mail {n}" for n in range(5)]
    assert [mail.to for mail in mails] == [f"a{n}@example.co.jp" for n in range(5)]
    assert [mail.body_kept for mail in mails] == [False, False, True, True, True]
    assert [bool(mail.html) for mail in mails] == [False, False, True, True, True]
    # What the outbox keeps holds neither a dropped body nor a parsed message.
    held = [value for mail in mails for value in vars(mail).values()]
    assert not any(isinstance(value, Message) for value in held)
    texts = [value for value in held if isinstance(value, str)]
    assert not any("body 0" in text or "body 1" in text for text in texts)


def test_restored_emails_keep_what_was_dropped_and_only_the_newest_bodies(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.local import state

    monkeypatch.setattr(moto_fixes, "BODIES_KEPT", 2)
    header = "From: news@example.co.jp\r\nSubject: saved\r\n\r\n"
    saved = [
        {
            "id": f"saved-{n}",
            "source": "news@example.co.jp",
            "destinations": ["a@example.co.jp"],
            "raw_data": header if n == 0 else f"{header}body {n}",
            **({"body_kept": False} if n == 0 else {}),  # files from before the key: whole
        }
        for n in range(4)
    ]

    state.moto_restore_sent_mail(REGION, saved)

    restored = state.moto_sent_mail(REGION)
    assert [m["body_kept"] for m in restored] == [False, False, True, True]
    bodies = [f"{header}body {n}" for n in (2, 3)]
    assert [m["raw_data"] for m in restored] == [header, header, *bodies]


def test_a_queue_keeps_its_newest_deleted_receipt_handles_and_a_second_delete_succeeds(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.models import sqs_backends

    monkeypatch.setattr(moto_fixes, "DELETED_HANDLES_KEPT", 3)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="sends")["QueueUrl"]
    handles = []
    for n in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=f"job {n}")
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        handles.append(message["ReceiptHandle"])

    sqs.delete_message(QueueUrl=url, ReceiptHandle=handles[-1])  # again: accepted

    deleted = sqs_backends[ACCOUNT][REGION].queues["sends"].deleted_messages
    assert len(deleted) == 3
    assert handles[-1] in deleted
    assert not any(handle in deleted for handle in handles[:3])

"""Qualified leads reach sales: table stream → hand-off function → sales SNS topic, on moto.

The stream records are read from the table's own stream (moto's DynamoDB Streams) and
given to the hand-off handler in the shape Lambda's event source mapping sends them.
What sales receive is read from an SQS queue subscribed to the sales topic without raw
message delivery, so each message comes in the SNS envelope (Subject, MessageAttributes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.capture.handler import Dependencies as CaptureDependencies
from functions.capture.handler import build_app as build_capture
from functions.capture.handler import lambda_handler as capture_handler
from functions.capture.settings import CaptureSettings
from functions.handoff.handler import HandoffApp
from functions.handoff.handler import lambda_handler as handoff_handler
from functions.observability import build_logger
from infra.provision import create_topic, subscribe_queue
from shared.adapters.items import lead_pk
from shared.adapters.leads import DynamoLeadRepository
from shared.adapters.ledgers import DynamoHandoffLedger
from shared.adapters.sns import SnsSalesPublisher
from shared.domain.clock import FixedClock, to_iso
from shared.domain.leads import ActivityType, Stage
from shared.domain.programs import load_programs
from shared.domain.scoring import load_scoring
from shared.services.handoff import SalesHandoff
from shared.services.lifecycle import DispositionRequest, LifecycleSettings, SalesFeedback
from shared.web.pages import Pages
from tests.email_events import raw, ses_record
from tests.emf import metric_counts
from tests.events import json_post
from tests.integration.conftest import TABLE
from tests.integration.scoring_world import (
    activities,
    aws_client,
    capture_with_scores,
    engagement,
    fail_calls,
    lead_table,
    lose_answer,
    recorder,
    stored,
)

REGION = "ap-northeast-1"
SUBJECT = re.compile(r"^\[MQL\] .+ / .+ / score -?\d+(\.\d)? / grade [ABCD]$")
ACCEPT_JSON = {"Accept": "application/json"}
PROFILE = {
    "email": "taro.yamada@sample-seisakusho.co.jp",
    "company": "株式会社サンプル製作所",
    "last_name": "山田",
    "first_name": "太郎",
    "department": "情報システム部",
    "job_title": "情報システム部 部長",
    "industry": "製造業",
    "company_size": "300-999",
    "pref": "大阪府",
    "tel": "06-1234-5678",
    "interests": "AI,IoT",
    "consent": "on",
    "source": "website",
}


@pytest.fixture
def dynamodb(aws: None) -> Any:
    """The conftest's table, through a client from the run's one session (much faster)."""
    return lead_table()


# -- the sales side and the stream ------------------------------------------------------------


@dataclass
class Sales:
    """The sales topic with a queue (envelope) and an email address subscribed to it."""

    sns: Any
    sqs: Any
    topic_arn: str
    inbox_url: str
    published: list[dict[str, Any]] = field(default_factory=list)  # accepted Publish calls
    _pending: dict[str, Any] = field(default_factory=dict)

    def record(self) -> None:
        self.sns.meta.events.register("provide-client-params.sns.Publish", self._params)
        self.sns.meta.events.register("after-call.sns.Publish", self._after)

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        self._pending = dict(params)

    def _after(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            self.published.append(self._pending)

    def inbox(self) -> list[dict[str, Any]]:
        """Every message in the sales queue (the SNS envelopes), taken off the queue."""
        envelopes: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return envelopes
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def fail_next_publish(self, code: str = "InternalError") -> None:
        """SNS refuses the next Publish (as a 500 or a throttle would)."""
        remaining = [code]

        def refuse(**_: Any) -> None:
            if remaining:
                error: Any = {"Error": {"Code": remaining.pop(), "Message": "injected"}}
                raise ClientError(error, "Publish")

        self.sns.meta.events.register("before-parameter-build.sns.Publish", refuse)


class TableStream:
    """The table's stream, read as the Lambda event source mapping reads it."""

    def __init__(self, dynamodb: Any) -> None:
        self.arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        # moto answers only on the regional endpoint, not the account-based one
        self._client = aws_client(
            "dynamodbstreams", config=Config(account_id_endpoint_mode="disabled")
        )
        shard = self._client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]
        self._iterator = self._client.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def next_batch(self) -> dict[str, Any]:
        """The records written since the last batch, as a DynamoDB stream Lambda event."""
        response = self._client.get_records(ShardIterator=self._iterator)
        self._iterator = response["NextShardIterator"]
        records = []
        for record in response["Records"]:
            change = dict(record["dynamodb"])
            created = change["ApproximateCreationDateTime"]
            if isinstance(created, datetime):
                change["ApproximateCreationDateTime"] = int(created.timestamp())
            records.append(
                {
                    "eventID": record["eventID"],
                    "eventName": record["eventName"],
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": REGION,
                    "dynamodb": change,
                    "eventSourceARN": self.arn,
                }
            )
        return {"Records": records}


def mql_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The records in which a profile became an MQL."""
    return [
        r
        for r in event["Records"]
        if r["dynamodb"].get("NewImage", {}).get("stage", {}).get("S") == "mql"
        and r["dynamodb"].get("OldImage", {}).get("stage", {}).get("S") != "mql"
    ]


@dataclass
class World:
    dynamodb: Any
    clock: FixedClock
    context: Any
    sales: Sales
    stream: TableStream
    app: HandoffApp
    post: Callable[[dict[str, Any]], dict[str, Any]]
    engage: Callable[..., Any]

    @property
    def repository(self) -> DynamoLeadRepository:
        return DynamoLeadRepository(self.dynamodb, TABLE)

    def hand_off(self, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """One invocation of the hand-off handler with a stream batch (the next, by default)."""
        event = event if event is not None else self.stream.next_batch()
        try:
            response: dict[str, Any] = handoff_handler(event, self.context, self.app)
        except BatchProcessingError:
            ids = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
            response = {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        response["event"] = event
        return response

    def capture(self, fields: dict[str, str]) -> str:
        response = self.post(json_post(fields, headers=ACCEPT_JSON))
        assert response["statusCode"] in (200, 201), response["body"]
        return str(json.loads(response["body"])["lead_id"])

    def event(self, name: str, lead_id: str, at: datetime, **kwargs: Any) -> None:
        lead = stored(self.repository, lead_id)
        record = ses_record(name, lead_id=lead_id, email=lead.email, at=at, **kwargs)
        assert self.engage([raw(record)]).failed == []


@pytest.fixture
def world(
    dynamodb: Any, clock: FixedClock, lambda_context: Any, capture_settings: CaptureSettings
) -> World:
    sns = aws_client("sns")
    sqs = aws_client("sqs")
    topic_arn = create_topic(sns, "lead-nurture-test-sales-leads")
    inbox_url = sqs.create_queue(QueueName="lead-nurture-test-sales-inbox")["QueueUrl"]
    subscribe_queue(sns, sqs, topic_arn=topic_arn, queue_url=inbox_url, raw_message_delivery=False)
    sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint="sales@example.co.jp")
    sales = Sales(sns, sqs, topic_arn, inbox_url)
    sales.record()
    stream = TableStream(dynamodb)
    app = HandoffApp(
        SalesHandoff(
            DynamoLeadRepository(dynamodb, TABLE),
            DynamoHandoffLedger(dynamodb, TABLE),
            SnsSalesPublisher(sns, topic_arn),
            load_scoring(),
            clock,
        ),
        build_logger("handoff"),
    )
    capture = build_capture(
        CaptureDependencies(
            capture_settings, capture_with_scores(dynamodb, clock), Pages(), build_logger("capture")
        )
    )

    def post(event: dict[str, Any]) -> dict[str, Any]:
        return capture_handler(event, lambda_context, capture)

    engage = engagement(recorder(dynamodb, clock), lambda_context)
    return World(dynamodb, clock, lambda_context, sales, stream, app, post, engage)


def qualify_by_engagement(world: World) -> str:
    """A grade A download lead that crosses 50 points on a click the next day."""
    lead_id = world.capture({**PROFILE, "form_type": "download", "asset": "dx-guide.pdf"})
    at = world.clock.now()
    second = timedelta(seconds=1)
    # the same day: 13 + 11 + 8 for three tagged clicks, 3 for three opens; 45 with the download
    # (a person's pace: a scanner clicks every link within seconds)
    for i, tag in enumerate(["pricing", "trial", "seminar"]):
        link = f"https://www.example.co.jp/{tag}/"
        world.event("click", lead_id, at + i * 20 * second, link_tags=[tag], link=link)
    for i in range(3):
        world.event("open", lead_id, at + (70 + i) * second)
    assert stored(world.repository, lead_id).stage is Stage.LEAD
    # the next day: 45 has decayed to 44.0, a case-study click adds 7
    world.clock.advance(timedelta(days=1))
    link = "https://www.example.co.jp/case/"
    # SES stamps a click before the function handles it (and qualifies the lead)
    clicked_at = world.clock.now() - second
    world.event("click", lead_id, clicked_at, link_tags=["case_study"], link=link)
    assert stored(world.repository, lead_id).stage is Stage.MQL
    return lead_id


def rules(*met: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"rule": rule, "points": points} for rule, points in met]


def qualify_by_inquiry(world: World, **fields: str) -> str:
    """A grade A lead that becomes an MQL at once by asking for a quote."""
    lead_id = world.capture({**PROFILE, "form_type": "inquiry", **fields})
    assert stored(world.repository, lead_id).stage is Stage.MQL
    return lead_id


# -- one message per qualification -------------------------------------------------------------


def test_a_lead_that_crosses_the_threshold_reaches_sales_once_with_the_expected_message(
    world: World,
) -> None:
    # Given a lead that became an MQL through its engagement
    lead_id = qualify_by_engagement(world)
    lead = stored(world.repository, lead_id)
    assert lead.qualification is not None
    score = lead.qualification["score"]
    assert 50 <= score < 52

    # When the stream's records reach the hand-off function
    response = world.hand_off()

    # Then it succeeded, and sales received exactly one message
    assert response["batchItemFailures"] == []
    (envelope,) = world.sales.inbox()
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"] == world.sales.topic_arn
    # with the subject sales scan their inbox by
    assert (
        envelope["Subject"]
        == f"[MQL] 株式会社サンプル製作所 / 山田 太郎 / score {score:g} / grade A"
    )
    assert SUBJECT.match(envelope["Subject"])
    # with attributes for subscription filter policies
    assert envelope["MessageAttributes"] == {
        "grade": {"Type": "String", "Value": "A"},
        "score": {"Type": "Number", "Value": f"{score:g}"},
        "industry": {"Type": "String", "Value": "製造業"},
        "company_size": {"Type": "String", "Value": "300-999"},
        "prefecture": {"Type": "String", "Value": "大阪府"},
        "region": {"Type": "String", "Value": "近畿"},
        "interests": {"Type": "String.Array", "Value": '["AI", "IoT"]'},
        "handoff_id": {"Type": "String", "Value": json.loads(envelope["Message"])["handoff_id"]},
    }
    # and a structured body (the queue gets the document's sqs member)
    body = json.loads(envelope["Message"])
    assert body["type"] == "lead.qualified"
    assert (body["lead_id"], body["stage"], body["grade"], body["temperature"]) == (
        lead_id,
        "mql",
        "A",
        "hot",
    )
    assert body["score"] == score
    assert body["handoff_id"] == f"{lead_id}:{to_iso(world.clock.now())}"
    assert body["qualification"]["reason"] == "score"
    assert body["fit"] == [
        {"rule": "industry:製造業", "points": 20},
        {"rule": "company_size:300-999", "points": 25},
        {"rule": "job_title:部長", "points": 25},
    ]
    assert body["profile"] == {
        "company": "株式会社サンプル製作所",
        "name": "山田 太郎",
        "department": "情報システム部",
        "job_title": "情報システム部 部長",
        "email": "taro.yamada@sample-seisakusho.co.jp",
        "phone": "06-1234-5678",
        "industry": "製造業",
        "company_size": "300-999",
        "prefecture": "大阪府",
        "interests": ["AI", "IoT"],
        # a form's lead has none of a card's other details: named, empty
        **dict.fromkeys(
            (
                "name_kana",
                "phone_department",
                "phone_direct",
                "mobile",
                "postcode",
                "address",
                "website",
                "sales_owner",
            )
        ),
    }
    # whose reasons are the activities that earned the most points, with their rules
    assert [(r["activity"], r["points"], r["rules"]) for r in body["top_reasons"]] == [
        ("email_clicked", 13, rules(("click", 3), ("link:pricing", 10))),
        ("email_clicked", 11, rules(("click", 3), ("link:trial", 8))),
        ("form_submitted", 10, rules(("download", 10))),
        ("email_clicked", 8, rules(("click", 3), ("link:seminar", 5))),
        ("email_clicked", 7, rules(("click", 3), ("link:case_study", 4))),
    ]
    # and whose timeline summary is the recent history, newest first
    timeline = body["timeline"]
    assert timeline[0]["activity"] == "qualified"
    assert timeline[1] == {
        "at": to_iso(world.clock.now() - timedelta(seconds=1)),
        "activity": "email_clicked",
        "summary": "welcome whitepaper link:case_study",
    }
    assert [t["activity"] for t in timeline].count("email_opened") == 3
    assert timeline[-1]["activity"] in ("form_submitted", "enrolled")
    posted = next(t for t in timeline if t["activity"] == "form_submitted")
    assert posted["summary"] == "download dx-guide.pdf"

    # and one publish served every protocol
    (published,) = world.sales.published
    assert published["MessageStructure"] == "json"
    assert len(published["Subject"]) < 100
    assert "\n" not in published["Subject"]
    document = json.loads(published["Message"])
    assert {"default", "email", "sqs", "lambda", "http", "https"} <= set(document)
    for protocol in ("default", "sqs", "lambda", "http", "https", "email-json"):
        assert json.loads(document[protocol])["lead_id"] == lead_id
    # the email member is plain text: the profile, the score and why, and no link
    text = document["email"]
    for line in (
        "会社名: 株式会社サンプル製作所",
        "氏名: 山田 太郎",
        "役職: 情報システム部 部長",
        "メール: taro.yamada@sample-seisakusho.co.jp",
        "電話: 06-1234-5678",
        "業種: 製造業",
        "従業員規模: 300-999",
        "都道府県: 大阪府",
        "関心: AI, IoT",
        "判定理由: score",
        f"lead_id: {lead_id}",
    ):
        assert line in text.splitlines()
    assert "グレード: A" in text
    assert "click(+3), link:pricing(+10)" in text
    assert not re.search(r"https?:|www\.|<a\b|\]\(", text, re.IGNORECASE)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_sales_are_told_the_score_that_qualified_the_lead_not_a_later_one(
    world: World,
) -> None:
    # Given a lead that became an MQL, then opened and clicked again in the same second,
    # before the hand-off read it (its score has moved on)
    lead_id = qualify_by_engagement(world)
    lead = stored(world.repository, lead_id)
    assert lead.qualification is not None
    qualified = lead.qualification["score"]
    world.event("open", lead_id, world.clock.now())
    link = "https://www.example.co.jp/pricing/"
    world.event("click", lead_id, world.clock.now(), link_tags=["pricing"], link=link)
    now = load_scoring().evaluate(stored(world.repository, lead_id), world.clock.now()).score
    assert now != qualified

    # When the hand-off publishes
    assert world.hand_off()["batchItemFailures"] == []

    # Then the subject, the attribute and the body all carry the qualifying score
    (envelope,) = world.sales.inbox()
    assert f"/ score {qualified:g} /" in envelope["Subject"]
    assert envelope["MessageAttributes"]["score"]["Value"] == f"{qualified:g}"
    body = json.loads(envelope["Message"])
    assert body["score"] == body["qualification"]["score"] == qualified


def test_a_url_typed_into_a_form_is_not_a_link_in_the_sales_email(world: World) -> None:
    # Given an inquiry whose company field is a phishing link
    world.capture(
        {
            **PROFILE,
            "email": "attacker@example.net",
            "company": "https://login.example-bank.co/verify",
            "form_type": "inquiry",
        }
    )

    world.hand_off()

    (published,) = world.sales.published
    text = json.loads(published["Message"])["email"]
    assert not re.search(r"https?://|www\.", text, re.IGNORECASE)


def test_an_inquiry_form_post_hands_the_lead_to_sales_at_once(world: World) -> None:
    # Given a new lead without a qualifying score or grade
    lead_id = world.capture(
        {
            "email": "hanako@example.com",
            "company": "サンプル商事",
            "name": "佐藤 花子",
            "form_type": "inquiry",
            "message": "見積もりをお願いします",
            "consent": "on",
        }
    )
    lead = stored(world.repository, lead_id)
    assert lead.stage is Stage.MQL

    # When the stream reaches the hand-off function
    assert world.hand_off()["batchItemFailures"] == []

    # Then sales get it once, as a high-intent MQL whatever its score
    (envelope,) = world.sales.inbox()
    assert envelope["Subject"] == "[MQL] サンプル商事 / 佐藤 花子 / score 30 / grade D"
    attributes = envelope["MessageAttributes"]
    assert attributes["grade"] == {"Type": "String", "Value": "D"}
    assert attributes["score"] == {"Type": "Number", "Value": "30"}
    assert "industry" not in attributes  # empty values are left out, as SNS requires
    body = json.loads(envelope["Message"])
    assert body["qualification"]["reason"] == "form:inquiry"
    assert [r["rules"] for r in body["top_reasons"]] == [[{"rule": "inquiry", "points": 30}]]
    # and the lead left its program on qualifying
    assert lead.enrolment is not None
    assert lead.enrolment.outcome == "exited:stage:mql"


def test_a_qualification_and_its_hand_off_are_counted_once_each(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a lead captured from a download form that qualified on a click the next day
    qualify_by_engagement(world)
    # Then capture counted the post and the new lead, and the engagement function the
    # opens and clicks of a person and the qualification
    assert metric_counts(capsys.readouterr().out) == {
        ("capture", "FormPosts"): 1,
        ("capture", "LeadsCreated"): 1,
        ("engagement", "HumanClicks"): 4,
        ("engagement", "HumanOpens"): 3,
        ("engagement", "LeadsQualified"): 1,
    }

    # When the stream reaches the hand-off function, and Lambda retries the batch
    first = world.hand_off()
    assert metric_counts(capsys.readouterr().out) == {("handoff", "HandoffsPublished"): 1}
    assert world.hand_off(first["event"])["batchItemFailures"] == []

    # Then the retry publishes nothing and counts nothing
    assert metric_counts(capsys.readouterr().out) == {}


def test_an_inquiry_is_counted_as_a_new_lead_and_an_mql_by_capture_once(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = {**PROFILE, "form_type": "inquiry"}
    lead_id = world.capture(fields)
    assert metric_counts(capsys.readouterr().out) == {
        ("capture", "FormPosts"): 1,
        ("capture", "LeadsCreated"): 1,
        ("capture", "LeadsQualified"): 1,
    }

    # When the browser posts the same form again (a retry after a lost answer)
    assert world.capture(fields) == lead_id
    # Then it gets the first answer and nothing is counted again
    assert metric_counts(capsys.readouterr().out) == {}


def test_a_retried_stream_batch_publishes_once(world: World) -> None:
    lead_id = qualify_by_inquiry(world)
    first = world.hand_off()

    # When Lambda delivers the same records again (a retry, or a duplicate delivery)
    again = world.hand_off(first["event"])

    # Then sales still got one message, and the hand-off is recorded once, with its id
    assert again["batchItemFailures"] == []
    (envelope,) = world.sales.inbox()
    handoffs = world.dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :handoff)",
        ExpressionAttributeValues={":pk": {"S": lead_pk(lead_id)}, ":handoff": {"S": "HANDOFF#"}},
    )["Items"]
    assert len(handoffs) == 1
    assert handoffs[0]["message_id"]["S"] == envelope["MessageId"]


@pytest.mark.parametrize("position", ["before", "after"])
def test_a_marker_write_that_fails_after_the_publish_does_not_reach_sales_twice(
    world: World, position: str
) -> None:
    # Given a lead that just qualified, and the table failing the hand-off's marker write
    # once (before it is made, or made with its answer lost) after SNS took the message
    lead_id = qualify_by_inquiry(world)

    def is_marker(params: dict[str, Any]) -> bool:
        return str(params.get("Item", {}).get("sk", {}).get("S", "")).startswith("HANDOFF#")

    if position == "before":
        failed = fail_calls(world.dynamodb, "PutItem", when=is_marker)
    else:
        failed = lose_answer(world.dynamodb, "PutItem", is_marker)

    # When the stream delivers the change, and Lambda delivers it again
    first = world.hand_off()
    assert len(failed) == 1
    assert first["batchItemFailures"] == []
    assert world.hand_off(first["event"])["batchItemFailures"] == []

    # Then sales got it once, and the hand-off is recorded
    (envelope,) = world.sales.inbox()
    assert json.loads(envelope["Message"])["lead_id"] == lead_id
    assert len(world.sales.published) == 1


def test_later_changes_to_an_mql_do_not_hand_it_off_again(world: World) -> None:
    # Given a lead handed to sales
    lead_id = qualify_by_inquiry(world)
    world.hand_off()
    assert len(world.sales.inbox()) == 1

    # When it keeps engaging (each event changes the profile: score, last engagement)
    world.clock.advance(timedelta(hours=3))
    world.event("click", lead_id, world.clock.now(), link_tags=["pricing"])
    world.event("open", lead_id, world.clock.now())
    batch = world.stream.next_batch()
    assert any(r["eventName"] == "MODIFY" for r in batch["Records"])

    # Then no second message goes to sales
    assert world.hand_off(batch)["batchItemFailures"] == []
    assert world.sales.inbox() == []
    assert len(world.sales.published) == 1


def test_a_failed_publish_is_retried_and_the_lead_reaches_sales_once(world: World) -> None:
    # Given a lead that just qualified, and SNS failing the next publish
    lead_id = qualify_by_inquiry(world)
    world.sales.fail_next_publish()
    batch = world.stream.next_batch()
    (qualified,) = mql_records(batch)

    # When the hand-off function gets the batch
    first = world.hand_off(batch)

    # Then only the qualification's record is reported failed (the others need nothing),
    # nothing reached sales, and nothing says it did
    assert first["batchItemFailures"] == [
        {"itemIdentifier": qualified["dynamodb"]["SequenceNumber"]}
    ]
    assert world.sales.inbox() == []
    keys = world.dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :handoff)",
        ExpressionAttributeValues={":pk": {"S": lead_pk(lead_id)}, ":handoff": {"S": "HANDOFF#"}},
    )["Items"]
    assert keys == []

    # When Lambda retries from the failed record (and once more, for good measure)
    failed_at = batch["Records"].index(qualified)
    retry = {"Records": batch["Records"][failed_at:]}
    assert world.hand_off(retry)["batchItemFailures"] == []
    assert world.hand_off(retry)["batchItemFailures"] == []

    # Then the lead reached sales exactly once
    (envelope,) = world.sales.inbox()
    assert json.loads(envelope["Message"])["lead_id"] == lead_id


def test_a_lead_rejected_by_sales_is_handed_off_again_only_when_it_requalifies_after_cooldown(
    world: World,
) -> None:
    # Given a lead handed to sales, who rejected it (30 days' cool-down)
    lead_id = qualify_by_inquiry(world)
    world.hand_off()
    (first,) = world.sales.inbox()
    feedback = SalesFeedback(world.repository, load_programs(), world.clock, LifecycleSettings())
    feedback.report(lead_id, DispositionRequest(disposition="rejected", reason="予算なし"))

    # When it goes on engaging strongly during the cool-down: 30 + 13 + 11 points, grade A
    world.clock.advance(timedelta(days=1))
    for tag in ("pricing", "trial"):
        link = f"https://www.example.co.jp/{tag}/"
        world.event("click", lead_id, world.clock.now(), link_tags=[tag], link=link)
    lead = stored(world.repository, lead_id)
    assert load_scoring().evaluate(lead, world.clock.now()).score >= 50

    # Then it stays a lead, and sales hear nothing
    assert lead.stage is Stage.LEAD
    assert world.hand_off()["batchItemFailures"] == []
    assert world.sales.inbox() == []

    # When it asks for a quote again after the cool-down
    world.clock.advance(timedelta(days=30))
    world.capture({**PROFILE, "form_type": "inquiry"})
    assert stored(world.repository, lead_id).stage is Stage.MQL
    world.hand_off()

    # Then it is handed off again: a new qualification, a new message
    (second,) = world.sales.inbox()
    ids = [json.loads(m["Message"])["handoff_id"] for m in (first, second)]
    assert ids[0] != ids[1]
    assert ids[1] == f"{lead_id}:{to_iso(world.clock.now())}"
    assert len(activities(world.repository, lead_id, ActivityType.QUALIFIED)) == 2


def test_a_lead_erased_before_its_hand_off_is_not_published(world: World) -> None:
    lead_id = qualify_by_inquiry(world)
    assert world.repository.erase(lead_id)

    response = world.hand_off()

    assert response["batchItemFailures"] == []
    assert world.sales.inbox() == []
    assert any(r["eventName"] == "REMOVE" for r in response["event"]["Records"])

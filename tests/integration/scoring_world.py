"""Leads, the engagement function and the score store on moto, for the scoring tests.

The engagement function runs through its Lambda handler with real-shaped SQS events
(``tests.email_events``); leads are stored as capture or an import would store them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from functions.engagement.handler import EngagementApp
from functions.engagement.handler import lambda_handler as engagement_handler
from functions.observability import build_logger
from infra.provision import create_table
from shared.adapters.counters import DynamoCounterReader
from shared.adapters.items import DUE_INDEX, due_shard, lead_pk
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import Clock
from shared.domain.funnel import business_day
from shared.domain.leads import Activity, ActivityType, ConsentState, FormType, Lead, Touch, new_id
from shared.domain.nurture import start
from shared.domain.programs import ProgramCatalog, load_programs
from shared.domain.scoring import ScoringRules, Signal, load_scoring
from shared.ports import Revision, Snapshot
from shared.services.capture import LeadCapture
from shared.services.engagement import EngagementRecorder
from shared.services.qualification import Award, ScoreKeeper
from tests.builders import store
from tests.email_events import sqs_event
from tests.integration.conftest import TABLE

# A grade A profile: 製造業 20 + 300-999 25 + 部長 25 = 70.
GRADE_A: dict[str, Any] = {
    "company": "株式会社サンプル製作所",
    "name": "山田 太郎",
    "family_name": "山田",
    "given_name": "太郎",
    "department": "情報システム部",
    "job_title": "情報システム部 部長",
    "industry": "製造業",
    "company_size": "300-999",
    "prefecture": "大阪府",
    "phone": "06-1234-5678",
    "interests": ("AI", "IoT"),
}


_SESSION: list[boto3.Session] = []


def aws_client(service: str, **kwargs: Any) -> Any:
    """A client of moto, from one boto3 session for the whole run.

    ``boto3.client`` under a fresh ``mock_aws`` builds a new default session and loads
    the service models again (~0.2 s a client); a client from a kept session costs a
    few milliseconds. moto's stubber is a built-in handler of every session created
    after moto is imported, so these clients are mocked exactly like the others; they
    must only be used inside ``mock_aws`` (the ``aws`` fixture), which is checked.
    """
    from moto.core.models import botocore_stubber

    assert botocore_stubber.enabled, "aws_client outside mock_aws would reach AWS"
    if not _SESSION:
        _SESSION.append(boto3.Session(region_name="ap-northeast-1"))
    return _SESSION[0].client(service, **kwargs)  # type: ignore[call-overload]


def lead_table() -> Any:
    """The test table on moto, as tests/integration/conftest.py's ``dynamodb`` makes it."""
    client = aws_client("dynamodb")
    create_table(client, TABLE)
    return client


class AtomicCalls:
    """A DynamoDB client whose every call is atomic, as DynamoDB's are.

    moto's in-process DynamoDB is not thread-safe (see test_capture_api.py); one lock
    per API call gives it DynamoDB's per-call atomicity and leaves open what the code
    under test must handle: the windows between its calls.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return call(*args, **kwargs)

        return atomic


def store_lead(
    repository: DynamoLeadRepository,
    clock: Clock,
    *,
    email: str | None = None,
    program: str | None = "welcome",
    programs: ProgramCatalog | None = None,
    consent: bool = True,
    **fields: Any,
) -> Lead:
    """A lead as capture stores it, enrolled in ``program`` now (None: no program)."""
    now = clock.now()
    enrolment = None
    if program is not None:
        found = (programs or load_programs()).get(program)
        assert found is not None, program
        enrolment = start(found, now)
    touch = Touch(at=now, form_type=FormType.DOWNLOAD, source="website")
    lead = Lead(
        lead_id=new_id(),
        email=email or f"lead-{uuid.uuid4().hex[:8]}@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(
            opted_in=True, at=now, wording_version="2026-04", form_type=FormType.DOWNLOAD
        )
        if consent
        else ConsentState(),
        enrolment=enrolment,
        created_at=now,
        updated_at=now,
        **fields,
    )
    store(repository, lead)
    return lead


def score_keeper(client: Any, clock: Clock, rules: ScoringRules | None = None) -> ScoreKeeper:
    return ScoreKeeper(rules or load_scoring())


def award(
    client: Any, clock: Clock, lead_id: str, signal: Signal, *, rules: ScoringRules | None = None
) -> Award:
    """Score one signal on a stored lead now (as a form post or an event would)."""
    keeper = score_keeper(client, clock, rules)
    awarded: list[Award] = []

    def change(snapshot: Snapshot) -> Revision | None:
        if snapshot.lead is None:
            return None
        taken = keeper.take(snapshot.lead, signal, clock.now(), clock.now())
        awarded[:] = [taken.award]
        return Revision(taken.lead.model_copy(update={"updated_at": clock.now()}))

    DynamoLeadRepository(client, TABLE).revise(lead_id, change)
    return awarded[0]


def qualify(
    client: Any, clock: Clock, lead_id: str, reason: str, *, high_intent: bool = False
) -> bool:
    """Make a stored lead an MQL now if it qualifies; True if this call did it."""
    keeper = score_keeper(client, clock)

    def change(snapshot: Snapshot) -> Revision | None:
        if snapshot.lead is None:
            return None
        found = keeper.qualify(snapshot.lead, clock.now(), reason, high_intent=high_intent)
        return Revision(found[0], [found[1]]) if found else None

    return DynamoLeadRepository(client, TABLE).revise(lead_id, change).changed


def recorder(
    client: Any,
    clock: Clock,
    *,
    programs: ProgramCatalog | None = None,
    transient_bounce_limit: int = 3,
    rules: ScoringRules | None = None,
) -> EngagementRecorder:
    """Wired as functions/engagement/handler.py's build wires it."""
    repository = DynamoLeadRepository(client, TABLE)
    return EngagementRecorder(
        repository,
        score_keeper(client, clock, rules),
        programs or load_programs(),
        clock,
        transient_bounce_limit=transient_bounce_limit,
    )


def capture_with_scores(client: Any, clock: Clock) -> LeadCapture:
    """Capture as functions/capture/handler.py's dependencies() wires it (with scoring)."""
    return LeadCapture(
        DynamoLeadRepository(client, TABLE),
        load_programs(),
        clock,
        "2026-04",
        scores=score_keeper(client, clock),
    )


@dataclass(frozen=True)
class Delivery:
    """One invocation of the engagement handler: the SQS event, its answer, the failures."""

    event: dict[str, Any]
    response: dict[str, Any]
    failed: list[str]


def engagement(rec: EngagementRecorder, context: Any) -> Callable[..., Delivery]:
    """Send SQS bodies (or a whole SQS event) through the engagement handler.

    Returns the handler's response; when every record failed, Powertools fails the whole
    invocation, which is reported here as every record failed (what SQS then does).
    """
    app = EngagementApp(rec, build_logger("engagement"))

    def deliver(bodies: Sequence[str] = (), *, event: dict[str, Any] | None = None) -> Delivery:
        event = event or sqs_event(bodies)
        try:
            response = engagement_handler(event, context, app)
        except BatchProcessingError:
            ids = [r["messageId"] for r in event["Records"]]
            response = {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        return Delivery(
            event, response, [f["itemIdentifier"] for f in response["batchItemFailures"]]
        )

    return deliver


def fail_calls(
    client: Any,
    operation: str,
    *,
    times: int | None = 1,
    when: Callable[[dict[str, Any]], bool] = lambda params: True,
    code: str = "InternalServerError",
) -> list[dict[str, Any]]:
    """Make the next ``times`` calls of ``operation`` (None: all) that match fail.

    The error is raised before the request is built, so nothing reaches the table, as
    when DynamoDB answers 500. Returns the parameters of the calls that were failed.
    """
    failed: list[dict[str, Any]] = []

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if (times is None or len(failed) < times) and when(params):
            failed.append(params)
            error: Any = {"Error": {"Code": code, "Message": "injected by the test"}}
            raise ClientError(error, operation)

    client.meta.events.register(f"before-parameter-build.dynamodb.{operation}", refuse)
    return failed


def lose_answer(
    client: Any, operation: str, when: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The next matching call of ``operation`` is applied by DynamoDB and its answer lost
    (an error raised after the call). Returns the parameters of the call that was."""
    pending: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        pending[:] = [params]

    def lose(**_: Any) -> None:
        if not failed and pending and when(pending[0]):
            failed.append(pending[0])
            error: Any = {"Error": {"Code": "InternalServerError", "Message": "answer lost"}}
            raise ClientError(error, operation)

    client.meta.events.register(f"provide-client-params.dynamodb.{operation}", remember)
    client.meta.events.register(f"after-call.dynamodb.{operation}", lose)
    return failed


def profile_key(params: dict[str, Any]) -> bool:
    return bool(params.get("Key", {}).get("sk", {}).get("S") == "PROFILE")


def scores_profile(params: dict[str, Any]) -> bool:
    """A transaction that adds to the lead's score (an Update of its profile)."""
    return any(profile_key(item.get("Update", {})) for item in params.get("TransactItems", []))


# -- reading what was stored ----------------------------------------------------------------


def stored(repository: DynamoLeadRepository, lead_id: str) -> Lead:
    lead = repository.get(lead_id)
    assert lead is not None, f"no lead {lead_id}"
    return lead


def activities(
    repository: DynamoLeadRepository, lead_id: str, kind: ActivityType | None = None
) -> list[Activity]:
    """Oldest first."""
    found = [a for a in repository.timeline(lead_id, limit=500) if kind is None or a.type is kind]
    return sorted(found, key=lambda a: a.at)


def counters(client: Any, day: date | datetime) -> dict[str, dict[str, int]]:
    """The report counters of a JST day, by key (e.g. email#program#step#variant), each
    the sum of its shards as the reports read them."""
    day = business_day(day) if isinstance(day, datetime) else day
    return dict(DynamoCounterReader(client, TABLE).day(day))


def indexed_due_at(client: Any, lead_id: str) -> str | None:
    """The lead's due_at in the sparse due index, or None if it is not in the index."""
    response = client.query(
        TableName=TABLE,
        IndexName=DUE_INDEX,
        KeyConditionExpression="due_shard = :shard",
        ExpressionAttributeValues={":shard": {"N": str(due_shard(lead_id))}},
    )
    for item in response["Items"]:
        if item["lead_id"]["S"] == lead_id:
            return str(item["due_at"]["S"])
    return None


def sort_keys(client: Any, lead_id: str) -> list[str]:
    response = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": lead_pk(lead_id)}},
    )
    return sorted(item["sk"]["S"] for item in response["Items"])


def table_items(client: Any) -> list[dict[str, Any]]:
    """Every item (a Scan is fine in a test, never in the product)."""
    items: list[dict[str, Any]] = client.scan(TableName=TABLE)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))

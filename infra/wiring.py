"""The system's wiring, declared once.

Both targets read this module: the CDK app (``infra/stack.py``) turns it into
CloudFormation, and the local stack turns it into moto resources, a local API
Gateway and pollers. Keeping it as plain data (no CDK import) is what lets the two
share it without drifting apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AttributeType = Literal["S", "N"]
Auth = Literal["NONE", "IAM"]


@dataclass(frozen=True)
class Attribute:
    name: str
    type: AttributeType = "S"


@dataclass(frozen=True)
class GlobalIndex:
    name: str
    partition_key: Attribute
    sort_key: Attribute
    # Only the attributes the reader of the index needs; the rest stays in the table.
    projected: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    partition_key: Attribute
    sort_key: Attribute
    indexes: tuple[GlobalIndex, ...]
    ttl_attribute: str
    stream: Literal["NEW_AND_OLD_IMAGES"] = "NEW_AND_OLD_IMAGES"


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    auth: Auth = "NONE"
    # Called by browsers from the website's origins (config.cors_origins), so the path
    # answers the CORS preflight (in the function). Links opened from emails, pages
    # posting to themselves and mail providers' one-click posts need none.
    cross_origin: bool = False
    # Which limits of the deployment's ``throttling`` apply; each route has its own
    # bucket of them (beacons cannot starve forms, nor forms an opt-out).
    throttle: Literal["forms", "beacon", "opt_out", "admin"] = "forms"


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue with its dead-letter queue, consumed by one function."""

    name: str
    # Longer than the consumer's timeout, so a message is not redelivered mid-batch.
    visibility_timeout_s: int
    max_receive_count: int = 5
    batch_size: int = 10
    max_batching_window_s: int = 0
    # Caps concurrent consumers (e.g. to the account's SES send rate); None: no cap.
    max_concurrency: int | None = None

    @property
    def url_variable(self) -> str:
        return f"{self.name.upper()}_QUEUE_URL"

    @property
    def dead_letter_url_variable(self) -> str:
        """Its consumer puts here what it can never process, at once."""
        return f"{self.name.upper()}_DEAD_LETTER_QUEUE_URL"


@dataclass(frozen=True)
class StreamFilter:
    """Which records of the table's stream invoke a consumer (Lambda event filtering).

    Equality on string attributes of the new image is all the functions need; records
    that do not match are dropped before the function, on AWS and in the local stack.
    """

    event_names: tuple[str, ...]
    new_image: tuple[tuple[str, str], ...]  # (attribute, string value) pairs

    def pattern(self) -> dict[str, Any]:
        """The Lambda filter pattern (JSON) of the event source mapping."""
        return {
            "eventName": list(self.event_names),
            "dynamodb": {"NewImage": {name: {"S": [value]} for name, value in self.new_image}},
        }

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether a stream record (as Lambda receives it) passes the filter."""
        if record.get("eventName") not in self.event_names:
            return False
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        return all(image.get(name) == {"S": value} for name, value in self.new_image)


@dataclass(frozen=True)
class StreamSource:
    """How a function reads the table's stream: its event source mapping on AWS, the
    stream poller in the local stack.

    Both report batch item failures: a batch is retried from the first record the
    function reports failed, so the records before it are not handled twice.
    """

    filter: StreamFilter | None = None  # None: every record of the stream
    batch_size: int = 10
    # A batch the function fails is split in two and each half retried on its own,
    # until the failing record is alone; splitting does not use up retry attempts.
    bisect_batch_on_error: bool = True
    retry_attempts: int = 5
    # The stream keeps records for 24 hours, so this is also the longest a retry can
    # wait; older records go to the failure queue instead of the function.
    max_record_age_s: int = 24 * 60 * 60
    # The on-failure destination: an SQS queue told the shard and sequence numbers of
    # the records given up on (not the records). Its name locally, after the prefix and
    # the function's name; CloudFormation names it on AWS.
    failure_queue: str = "stream-failures"


@dataclass(frozen=True)
class TableAccess:
    """What a function does to the table, granted as exactly that.

    ``reads`` and ``writes`` are the item actions it calls, as IAM names them (a
    transaction's items are authorised one by one as PutItem, UpdateItem, DeleteItem and
    ConditionCheckItem). ``kinds`` are the kinds of item it writes, by partition key
    (``LEAD#`` for everything under a lead; ``SENDING`` names one partition): IAM's
    ``dynamodb:LeadingKeys`` condition limits the writes to them. Reads are not limited
    by kind (a function reads what its decision needs). ``tests/infra/test_privilege.py``
    checks these against the calls each function makes in the fault suite's scenarios.
    """

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    due_index: bool = False  # queries the sparse due index

    def __post_init__(self) -> None:
        if bool(self.writes) != bool(self.kinds):
            raise ValueError("writes need the kinds of item they write, and only they")


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function and what triggers it."""

    name: str
    handler: str
    description: str
    routes: tuple[Route, ...] = ()
    schedule_minutes: int | None = None  # EventBridge rate
    consumes: QueueSpec | None = None
    produces: tuple[QueueSpec, ...] = ()  # queues it sends messages to
    memory_mb: int = 512
    timeout_s: int = 10
    table: TableAccess | None = None  # None: it never touches the table
    stream: StreamSource | None = None  # the table's stream (NEW_AND_OLD_IMAGES)
    publishes: tuple[str, ...] = ()  # SNS topics (names below) it publishes to
    sends_email: bool = False  # SES SendEmail through the configuration set
    signs_links: bool = False  # reads the unsubscribe-link signing secret
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def consumes_stream(self) -> bool:
        return self.stream is not None

    @property
    def stream_filter(self) -> StreamFilter | None:
        return self.stream.filter if self.stream else None

    @property
    def stream_failure_url_variable(self) -> str:
        """The stream's on-failure queue, where the function describes a record it can
        never process, at once. Named after the function: the local stack runs every
        function in one environment."""
        return f"{self.name.upper()}_STREAM_FAILURE_QUEUE_URL"


TABLE = TableSpec(
    partition_key=Attribute("pk"),
    sort_key=Attribute("sk"),
    indexes=(
        # Sparse and sharded: only leads with a pending nurture step carry
        # due_shard/due_at, and the scheduler queries every shard for due_at <= now.
        GlobalIndex(
            name="due",
            partition_key=Attribute("due_shard", "N"),
            sort_key=Attribute("due_at"),
            projected=("lead_id", "program_id", "step_id", "version"),
        ),
    ),
    ttl_attribute="expires_at",
)

CAPTURE = FunctionSpec(
    name="capture",
    handler="functions.capture.handler.lambda_handler",
    description="POST /leads: validate, dedupe and merge by email, record consent, enrol",
    routes=(Route("POST", "/leads", cross_origin=True),),
    # Up to POST_REVISIONS jittered rounds when a burst of posts meets on one address;
    # still within API Gateway's 29 seconds.
    timeout_s=20,
    # A post with the site snippet's visitor id links the visitor and reads its views.
    table=TableAccess(
        reads=("BatchGetItem", "ConditionCheckItem", "Query"),
        writes=("PutItem", "UpdateItem"),
        # EVENT#: the seats of an event with a capacity, in a registration's transaction
        kinds=("LEAD#", "EMAIL#", "COUNTER#", "VISITOR#", "EVENT#"),
    ),
)

SEND_QUEUE = QueueSpec(
    name="send",
    visibility_timeout_s=6 * 60,
    max_receive_count=5,
    batch_size=10,
    max_batching_window_s=1,
    max_concurrency=2,
)

UNSUBSCRIBE = FunctionSpec(
    name="unsubscribe",
    handler="functions.unsubscribe.handler.lambda_handler",
    description="Email links: unsubscribe (page and RFC 8058 one-click), event cancellation",
    routes=(
        Route("GET", "/unsubscribe", throttle="opt_out"),
        Route("POST", "/unsubscribe", throttle="opt_out"),
        Route("GET", "/events/cancel", throttle="opt_out"),
        Route("POST", "/events/cancel", throttle="opt_out"),
    ),
    # A cancellation reads and writes the event's seats (EVENT#) with the lead, and gives
    # a freed place to the lead waiting longest.
    table=TableAccess(
        reads=("BatchGetItem", "ConditionCheckItem", "GetItem"),
        writes=("PutItem", "UpdateItem"),
        kinds=("LEAD#", "COUNTER#", "EVENT#"),
    ),
    signs_links=True,
)

SCHEDULER = FunctionSpec(
    name="scheduler",
    handler="functions.scheduler.handler.lambda_handler",
    description="Every minute: lease due leads from the due index and queue send jobs",
    schedule_minutes=1,
    produces=(SEND_QUEUE,),
    timeout_s=50,
    # Leases due leads; the sending guard's switch and warm-up count are SENDING items.
    table=TableAccess(
        reads=("GetItem", "Query"),
        writes=("UpdateItem",),
        kinds=("LEAD#", "SENDING"),
        due_index=True,
    ),
)

SENDER = FunctionSpec(
    name="sender",
    handler="functions.sender.handler.lambda_handler",
    description="Send jobs: re-check eligibility, render, send through SES, advance the step",
    consumes=SEND_QUEUE,
    timeout_s=60,
    # Query: a bandit experiment reads its variants' counters. DeleteItem: a send SES
    # throttled or refused gives its claim back for a later try.
    table=TableAccess(
        reads=("ConditionCheckItem", "GetItem", "Query"),
        writes=("DeleteItem", "PutItem", "UpdateItem"),
        kinds=("LEAD#", "COUNTER#"),
    ),
    sends_email=True,
    signs_links=True,
)

# SES configuration set whose event destination publishes engagement to this topic.
CONFIGURATION_SET = "lead-nurture"
EMAIL_EVENTS_TOPIC = "email-events"
# Qualified leads (MQL) for sales; sales systems and people subscribe to it.
SALES_TOPIC = "sales-leads"

# Subscribed to EMAIL_EVENTS_TOPIC (raw message delivery on AWS; both forms are read).
ENGAGEMENT_QUEUE = QueueSpec(
    name="engagement",
    visibility_timeout_s=6 * 60,
    max_receive_count=5,
    batch_size=10,
    max_batching_window_s=1,
)

ENGAGEMENT = FunctionSpec(
    name="engagement",
    handler="functions.engagement.handler.lambda_handler",
    description="SES events: record delivery/open/click/bounce/complaint, score, suppress",
    consumes=ENGAGEMENT_QUEUE,
    timeout_s=60,
    table=TableAccess(
        reads=("BatchGetItem", "ConditionCheckItem"),
        writes=("PutItem", "UpdateItem"),
        kinds=("LEAD#", "COUNTER#"),
    ),
)

# Lead profiles (``sk = PROFILE``) written with stage ``mql``. Everything else (timeline
# items, counters, other stages, deletions) never invokes the handoff function; whether
# the lead just became MQL, rather than was MQL already, it reads from the old image.
NEW_MQL_FILTER = StreamFilter(
    event_names=("INSERT", "MODIFY"),
    new_image=(("sk", "PROFILE"), ("stage", "mql")),
)

HANDOFF = FunctionSpec(
    name="handoff",
    handler="functions.handoff.handler.lambda_handler",
    description="Table stream: publish leads that just became MQL to the sales topic",
    stream=StreamSource(
        filter=NEW_MQL_FILTER,
        batch_size=10,
        bisect_batch_on_error=True,
        retry_attempts=5,
        max_record_age_s=24 * 60 * 60,
    ),
    publishes=(SALES_TOPIC,),
    timeout_s=60,
    # Reads the lead and its timeline; writes one marker per hand-off (no double publish).
    table=TableAccess(reads=("GetItem", "Query"), writes=("PutItem",), kinds=("LEAD#",)),
)

VISITS = FunctionSpec(
    name="visits",
    handler="functions.visits.handler.lambda_handler",
    description="POST /visits: page views of the first-party snippet; GET /tracker.js",
    routes=(
        Route("POST", "/visits", cross_origin=True, throttle="beacon"),
        Route("GET", "/tracker.js", throttle="beacon"),
    ),
    # DeleteItem: a revisit alert whose publish failed gives its claim back.
    table=TableAccess(
        reads=("BatchGetItem", "ConditionCheckItem", "GetItem", "Query"),
        writes=("DeleteItem", "PutItem", "UpdateItem"),
        kinds=("LEAD#", "VISITOR#", "COUNTER#"),
    ),
    # Verifies the signed lead reference of email links (the unsubscribe links' secret).
    signs_links=True,
    # Revisits of high-intent pages by leads already with sales.
    publishes=(SALES_TOPIC,),
    memory_mb=256,
)

ADMIN = FunctionSpec(
    name="admin",
    handler="functions.admin.handler.lambda_handler",
    description="IAM-authorised: sales feedback, purchases, lookup, disclosure, erasure",
    routes=(
        Route("GET", "/leads/{lead_id}", auth="IAM", throttle="admin"),
        Route("GET", "/leads/{lead_id}/export", auth="IAM", throttle="admin"),
        Route("DELETE", "/leads/{lead_id}", auth="IAM", throttle="admin"),
        Route("POST", "/leads/{lead_id}/disposition", auth="IAM", throttle="admin"),
        Route("POST", "/leads/{lead_id}/purchases", auth="IAM", throttle="admin"),
    ),
    # Erasure deletes the lead's items and keeps a hash of the address (ERASED#), after
    # giving its places at events to those waiting (EVENT#); a disposition records its
    # outcome for the monthly report (OUTCOME#).
    table=TableAccess(
        reads=("BatchGetItem", "ConditionCheckItem", "GetItem", "Query"),
        writes=("BatchWriteItem", "DeleteItem", "PutItem", "UpdateItem"),
        kinds=("LEAD#", "EMAIL#", "ERASED#", "OUTCOME#", "COUNTER#", "EVENT#"),
    ),
)

FUNCTIONS: tuple[FunctionSpec, ...] = (
    CAPTURE,
    UNSUBSCRIBE,
    SCHEDULER,
    SENDER,
    ENGAGEMENT,
    HANDOFF,
    VISITS,
    ADMIN,
)
QUEUES: tuple[QueueSpec, ...] = (SEND_QUEUE, ENGAGEMENT_QUEUE)
TOPICS: tuple[str, ...] = (EMAIL_EVENTS_TOPIC, SALES_TOPIC)

# Request bodies API Gateway passes to the functions in base64, byte for byte. Any other
# body it decodes as UTF-8 and passes as text, with U+FFFD for every byte that is not
# UTF-8: a form from a Shift_JIS or EUC-JP page would lose its text before the function
# could decode it. JSON is UTF-8, but only its bytes tell a client's mistake apart.
BINARY_MEDIA_TYPES: tuple[str, ...] = (
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/json",
)

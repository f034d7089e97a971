"""The system's wiring, declared once.

Both targets read this module: the CDK app (``infra/stack.py``) turns it into
CloudFormation, and the local stack turns it into moto resources, a local API
Gateway and pollers. Keeping it as plain data (no CDK import) is what lets the two
share it without drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function and what triggers it."""

    name: str
    handler: str
    description: str
    routes: tuple[Route, ...] = ()
    memory_mb: int = 512
    timeout_s: int = 10
    # Names of the table operations it needs; the CDK app maps them to grants.
    table_access: Literal["none", "read", "read_write"] = "none"
    environment: dict[str, str] = field(default_factory=dict)


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
    routes=(Route("POST", "/leads"),),
    table_access="read_write",
)

FUNCTIONS: tuple[FunctionSpec, ...] = (CAPTURE,)

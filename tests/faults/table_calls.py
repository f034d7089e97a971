"""What each function does to the table, as the fault suite's scenarios run it.

Every scenario is prepared and triggered (with its retries and settling) without faults,
and every DynamoDB call the functions make is recorded against the function being
invoked: the IAM action DynamoDB authorises it as and the partition key of each item it
reads or writes (a transaction's items one by one, as IAM checks them). Calls made
outside an invocation (the operator's CLI, the harness) are not any function's.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from moto import mock_aws

from infra.local.functions import invoke
from infra.wiring import ADMIN, SEND_QUEUE, SENDER, VISITS, FunctionSpec
from shared.domain.tokens import SiteReferences
from tests.events import rest_event
from tests.faults import system as system_module
from tests.faults.injector import Call, Fault, Kind, Position
from tests.faults.scenarios import DOWNLOAD, SCENARIOS, capture, form
from tests.faults.system import (
    SIGNING_SECRET,
    System,
    provisioned_system,
    repeatable_ids,
)
from tests.integration.test_admin_api import admin_event

# A transaction's items are authorised as these item actions.
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
BATCH_WRITE_REQUESTS = {"PutRequest": "Item", "DeleteRequest": "Key"}


@dataclass(frozen=True, order=True)
class TableCall:
    function: str
    action: str  # the IAM action, e.g. dynamodb:PutItem
    pk: str | None  # the item's partition key (None: a query of an index)
    index: str | None = None

    @property
    def kind(self) -> str:
        """The item kind: the partition key up to its first '#' (all of it if none)."""
        if self.pk is None:
            return ""
        head, sep, _ = self.pk.partition("#")
        return head + sep


def _pk(key: dict[str, Any]) -> str:
    return str(next(iter(key["pk"].values())))


def table_calls(function: str, operation: str, params: dict[str, Any]) -> list[TableCall]:
    """The IAM-checked item actions of one DynamoDB call."""

    def one(action: str, pk: str | None, index: str | None = None) -> TableCall:
        return TableCall(function, f"dynamodb:{action}", pk, index)

    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        return [one(operation, _pk(params["Key"]))]
    if operation == "PutItem":
        return [one(operation, _pk(params["Item"]))]
    if operation == "Query":
        index = params.get("IndexName")
        values = params.get("ExpressionAttributeValues", {})
        pk = None if index else str(next(iter(values[":pk"].values())))
        return [one("Query", pk, index)]
    if operation == "BatchGetItem":
        return [
            one("BatchGetItem", _pk(key))
            for request in params["RequestItems"].values()
            for key in request["Keys"]
        ]
    if operation == "BatchWriteItem":
        return [
            one("BatchWriteItem", _pk(request[kind][field]))
            for requests in params["RequestItems"].values()
            for request in requests
            for kind, field in BATCH_WRITE_REQUESTS.items()
            if kind in request
        ]
    if operation == "TransactWriteItems":
        return [
            one(TRANSACT_ACTIONS[kind], _pk(body["Item"] if kind == "Put" else body["Key"]))
            for item in params["TransactItems"]
            for kind, body in item.items()
        ]
    if operation == "TransactGetItems":
        return [one("GetItem", _pk(item["Get"]["Key"])) for item in params["TransactItems"]]
    return [one(operation, None)]


@contextmanager
def recording(system: System) -> Iterator[set[TableCall]]:
    """Record the functions' table calls inside the block."""
    seen: set[TableCall] = set()
    current: list[str] = []

    def attributed(spec: FunctionSpec, handlers: Any, event: dict[str, Any]) -> Any:
        current.append(spec.name)
        try:
            return invoke(spec, handlers, event)
        finally:
            current.pop()

    def watch(service: str, operation: str, params: dict[str, Any]) -> None:
        if service == "dynamodb" and current:  # sender threads run inside their invocation
            seen.update(table_calls(current[-1], operation, params))

    system.injector.watchers.append(watch)
    try:
        with mock.patch.object(system_module, "invoke", attributed):
            yield seen
    finally:
        system.injector.watchers.remove(watch)


def site_visits(system: System) -> None:
    """A visitor reads pages, arrives from an email link (identified), and reads on: the
    paths of the site snippet (no fault scenario covers them)."""
    lead_id = capture(system, DOWNLOAD)
    origin = system.config.cors_origins[0]
    visitor = "b" * 32

    def beacon(body: dict[str, Any]) -> None:
        headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": origin}
        event = rest_event("POST", "/visits", body=json.dumps(body), headers=headers)
        response = system.invoke(VISITS, event)
        assert response["statusCode"] in (200, 204), response

    def view(path: str) -> None:
        beacon(
            {
                "kind": "view",
                "visitor_id": visitor,
                "view_id": uuid.uuid4().hex,
                "url": f"{origin}{path}",
                "title": path,
                "seconds": 40,
            }
        )

    view("/pricing")
    ref = SiteReferences(SIGNING_SECRET.encode()).sign(lead_id)
    beacon({"kind": "identify", "visitor_id": visitor, "ref": ref})
    view("/pricing")
    view("/about")  # recorded, scores nothing: the lead is unchanged

    # another visitor reads pricing, then posts the form with the snippet's visitor id
    visitor = "c" * 32
    view("/pricing")
    capture(system, form("download", asset="dx-guide.pdf", visitor_id=visitor))


def throttled_send(system: System) -> None:
    """A send SES throttles: its claim is given back for a later try."""
    capture(system, DOWNLOAD)
    system.tick()
    records = system.sqs_records(SEND_QUEUE.name, system.receive(SEND_QUEUE.name))
    throttled = Fault(Call("sesv2", "SendEmail", 1), Position.BEFORE, Kind.THROTTLING)
    with system.injector.armed_with(throttled):
        system.invoke(SENDER, {"Records": records})
    assert system.injector.fired


def disclosure(system: System) -> None:
    """A disclosure request (``GET /leads/{id}/export``), which no fault scenario makes."""
    lead_id = capture(system, DOWNLOAD)
    response = system.invoke(ADMIN, admin_event("GET", lead_id, "export"))
    assert response["statusCode"] == 200, response


@cache
def scenario_table_calls() -> frozenset[TableCall]:
    """Every scenario once, fault-free, to the end, the site's visits, a disclosure request
    and a throttled send: the functions' table calls."""
    seen: set[TableCall] = set()
    folder = Path(tempfile.mkdtemp(prefix="lead-nurture-calls-"))
    try:
        for scenario in SCENARIOS:
            with mock_aws(), repeatable_ids():
                system = provisioned_system()
                work = folder / scenario.name
                work.mkdir()
                with recording(system) as calls:
                    trigger = scenario.prepare(system, work)
                    for _ in range(4):
                        if trigger.attempt(system):
                            break
                    scenario.settle(system)
                seen |= calls
        with mock_aws(), repeatable_ids():
            system = provisioned_system()
            with recording(system) as calls:
                site_visits(system)
                disclosure(system)
                throttled_send(system)
            seen |= calls
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return frozenset(seen)

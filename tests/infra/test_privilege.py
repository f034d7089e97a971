"""Least privilege on the table, proven against what the functions do.

Every fault-suite scenario (and the site's visits) runs fault-free on moto with each
DynamoDB call recorded against the function making it (``tests/faults/table_calls.py``).
The synthesized roles must allow every one of those calls, item by item as IAM checks
them (the item's partition key against ``dynamodb:LeadingKeys``), and grant no table
action that no call needs: a grant too narrow fails here as it would fail on AWS, and
one too wide fails as unused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from infra.wiring import FUNCTIONS, FunctionSpec
from tests.faults.table_calls import TableCall, scenario_table_calls
from tests.infra.test_stack import as_list, role_of, statements_of_role, table_id

pytestmark = pytest.mark.infra

# Granted, and needed, on paths no scenario takes (an action or a kind of item written),
# each with the tests that take them.
UNEXERCISED = {
    # a bandit experiment's allocation reads its variants' counters
    # (tests/integration/test_experiments.py)
    ("sender", "dynamodb:Query"),
    # the sending guard's switch and warm-up count, written once a guard pauses or a
    # warm-up counts (tests/integration/test_sending_guard.py)
    ("scheduler", "SENDING"),
    # a page view that makes the lead an MQL counts lead>mql (tests/integration/test_visits.py)
    ("visits", "COUNTER#"),
    # a revisit alert whose publish failed gives its claim back (test_visits.py)
    ("visits", "dynamodb:DeleteItem"),
    # revise's write when the lead itself is unchanged but something is recorded: a
    # ConditionCheck of its version beside the records (shared/adapters/leads.py)
    ("unsubscribe", "dynamodb:ConditionCheckItem"),
    ("sender", "dynamodb:ConditionCheckItem"),
    ("admin", "dynamodb:ConditionCheckItem"),
}
STREAM_ACTIONS = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}


@pytest.fixture(scope="module")
def calls() -> frozenset[TableCall]:
    return scenario_table_calls()


def table_statements(
    template_json: dict[str, Any], spec: FunctionSpec
) -> Iterator[tuple[set[str], str, list[str] | None]]:
    """(actions, 'table' or 'index', LeadingKeys patterns or None) of the role's
    statements on the table."""
    table = table_id(template_json)
    for statement in statements_of_role(template_json, role_of(template_json, spec)):
        actions = {a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")}
        actions -= STREAM_ACTIONS
        if not actions:
            continue
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            assert table in text, (spec.name, statement)
            condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
            patterns = condition.get("dynamodb:LeadingKeys")
            yield actions, "index" if "/index/" in text else "table", patterns


def allows(template_json: dict[str, Any], spec: FunctionSpec, call: TableCall) -> bool:
    where = "index" if call.index else "table"
    return any(
        call.action in actions
        and place == where
        and (patterns is None or any(fnmatchcase(str(call.pk), p) for p in patterns))
        for actions, place, patterns in table_statements(template_json, spec)
    )


def test_the_scenarios_reach_every_function_that_touches_the_table(
    calls: frozenset[TableCall],
) -> None:
    assert {c.function for c in calls} == {s.name for s in FUNCTIONS if s.table is not None}


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_every_table_call_a_function_makes_is_allowed(
    template_json: dict[str, Any], calls: frozenset[TableCall], spec: FunctionSpec
) -> None:
    refused = [c for c in calls if c.function == spec.name and not allows(template_json, spec, c)]
    assert refused == []


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_a_function_is_granted_no_table_action_it_does_not_call(
    template_json: dict[str, Any], calls: frozenset[TableCall], spec: FunctionSpec
) -> None:
    made = {c.action for c in calls if c.function == spec.name}
    granted = {a for actions, _, _ in table_statements(template_json, spec) for a in actions}
    unused = granted - made - {a for (name, a) in UNEXERCISED if name == spec.name}
    assert unused == set()


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_writes_are_limited_to_the_item_kinds_the_function_writes(
    template_json: dict[str, Any], calls: frozenset[TableCall], spec: FunctionSpec
) -> None:
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    writes |= {"dynamodb:BatchWriteItem"}
    written = {c.kind for c in calls if c.function == spec.name and c.action in writes}
    for actions, _, patterns in table_statements(template_json, spec):
        if actions & writes:
            assert patterns is not None, "a write without dynamodb:LeadingKeys"
            unexercised = {kind for (name, kind) in UNEXERCISED if name == spec.name}
            assert {p.rstrip("*") for p in patterns} - unexercised <= written
    assert spec.table is None or set(spec.table.kinds) >= written


def test_a_write_outside_its_kinds_is_refused(template_json: dict[str, Any]) -> None:
    # The check above would pass a condition that allows everything: this one would not.
    (capture,) = (s for s in FUNCTIONS if s.name == "capture")
    outside = TableCall("capture", "dynamodb:PutItem", "ERASED#abc")
    inside = TableCall("capture", "dynamodb:PutItem", "LEAD#abc")
    assert allows(template_json, capture, inside)
    assert not allows(template_json, capture, outside)

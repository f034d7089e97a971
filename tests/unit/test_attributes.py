"""shared/adapters/attributes.py converts as boto3.dynamodb.types does, errors included.

The port exists so that the functions need not import boto3 (and its S3 transfer
manager) on a cold start; these properties hold it to boto3's own converter.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb import types as boto3_types
from hypothesis import example, given
from hypothesis import strategies as st

from shared.adapters import attributes

OURS = attributes.TypeSerializer(), attributes.TypeDeserializer()
BOTO3 = boto3_types.TypeSerializer(), boto3_types.TypeDeserializer()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),  # past 38 digits: refused by both
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=False),  # refused by both
    st.text(max_size=20),
    st.binary(max_size=20),
)
sets = st.one_of(
    st.frozensets(st.integers(min_value=-(10**12), max_value=10**12), max_size=5),
    st.sets(st.decimals(allow_nan=False, allow_infinity=False, places=4), max_size=5),
    st.sets(st.text(max_size=8), max_size=5),
    st.sets(st.binary(max_size=8), max_size=5),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


def outcome(convert: Any, value: Any) -> tuple[str, Any]:
    """What ``convert`` makes of ``value``: its result, or the error it raises."""
    try:
        return "value", plain(convert(value))
    except Exception as exc:
        return "error", (type(exc), str(exc))


def plain(value: Any) -> Any:
    """Each value with its type (Binary of either module as one), a Decimal by its text
    (so that boto3's odd ``-NaN``, which it lets through, compares equal to itself)."""
    if isinstance(value, attributes.Binary | boto3_types.Binary):
        return ("Binary", bytes(value.value))
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return frozenset(plain(v) for v in value)
    return (type(value).__name__, value)


@given(values)
@example(10**37 + 1)  # 38 digits: DynamoDB's precision
@example(10**38 + 1)  # 39: refused (inexact)
@example(Decimal("9.9999999999999999999999999999999999999E+125"))
@example(Decimal("1E+126"))  # the largest exponent DynamoDB takes
@example(Decimal("1E+127"))  # beyond it: refused
@example(Decimal("1E-130"))  # below the smallest exponent: subnormal, kept
@example(Decimal("1.2345678901234567890123456789012345678E-129"))  # subnormal and inexact: refused
@example(Decimal("-0"))
@example(0.5)  # floats are refused
@example({"NaN": Decimal("NaN"), "set": {Decimal("Infinity")}})
def test_python_values_serialize_as_boto3_serializes_them(value: Any) -> None:
    assert outcome(OURS[0].serialize, value) == outcome(BOTO3[0].serialize, value)


@given(values)
def test_attribute_values_deserialize_as_boto3_deserializes_them(value: Any) -> None:
    if outcome(BOTO3[0].serialize, value)[0] == "error":
        return
    attribute = BOTO3[0].serialize(value)
    assert outcome(OURS[1].deserialize, attribute) == outcome(BOTO3[1].deserialize, attribute)


@pytest.mark.parametrize(
    "attribute",
    [
        {},
        {"X": "1"},
        {"N": "1e200"},
        {"N": "1.000000000000000000000000000000000000001"},
    ],
    ids=["empty", "unknown type", "too large", "too precise"],
)
def test_malformed_attribute_values_are_refused_as_boto3_refuses_them(
    attribute: dict[str, Any],
) -> None:
    ours = outcome(OURS[1].deserialize, attribute)
    assert ours[0] == "error"
    assert ours == outcome(BOTO3[1].deserialize, attribute)


def test_a_binary_read_back_equals_its_bytes_and_serializes_unchanged() -> None:
    read = OURS[1].deserialize({"B": b"\x00\x01"})
    assert read == b"\x00\x01"
    assert OURS[0].serialize(read) == {"B": b"\x00\x01"}

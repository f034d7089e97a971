"""DynamoDB attribute values to and from Python values, as ``boto3.dynamodb.types`` does.

A port of boto3's ``TypeSerializer``, ``TypeDeserializer`` and ``Binary`` (boto3 1.35+,
Copyright Amazon.com, Inc. or its affiliates, Apache License 2.0), with the same
conversions and errors. It lives here because importing ``boto3.dynamodb.types``
imports the boto3 package, and with it boto3's S3 transfer manager (s3transfer,
multiprocessing), on the cold start of every function that reads the table.
``tests/unit/test_attributes.py`` holds it to boto3's behaviour.

    Python                          DynamoDB
    None                            {"NULL": True}
    bool                            {"BOOL": value}
    int / Decimal                   {"N": "..."}  (38 digits; float is refused)
    str                             {"S": value}
    bytes / bytearray / Binary      {"B": value}  (read back as Binary)
    set of numbers / str / bytes    {"NS" / "SS" / "BS": [...]}  (read back as set)
    Mapping                         {"M": {...}}
    list / tuple                    {"L": [...]}  (read back as list)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

STRING = "S"
NUMBER = "N"
BINARY = "B"
STRING_SET = "SS"
NUMBER_SET = "NS"
BINARY_SET = "BS"
NULL = "NULL"
BOOLEAN = "BOOL"
MAP = "M"
LIST = "L"

DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)

BINARY_TYPES = (bytearray, bytes)


class Binary:
    """Binary data read from DynamoDB (equal to the bytes it wraps)."""

    def __init__(self, value: bytes | bytearray) -> None:
        if not isinstance(value, BINARY_TYPES):
            types = ", ".join([str(t) for t in BINARY_TYPES])
            raise TypeError(f"Value must be of the following types: {types}")
        self.value = value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Binary):
            return self.value == other.value
        return self.value == other

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return f"Binary({self.value!r})"

    def __bytes__(self) -> bytes:
        return bytes(self.value)

    def __hash__(self) -> int:
        return hash(self.value)


class TypeSerializer:
    """Python values to DynamoDB attribute values."""

    def serialize(self, value: Any) -> dict[str, Any]:
        dynamodb_type = self._get_dynamodb_type(value)
        serializer: Callable[[Any], Any] = getattr(self, f"_serialize_{dynamodb_type}".lower())
        return {dynamodb_type: serializer(value)}

    def _get_dynamodb_type(self, value: Any) -> str:
        if value is None:
            return NULL
        if isinstance(value, bool):
            return BOOLEAN
        if self._is_number(value):
            return NUMBER
        if isinstance(value, str):
            return STRING
        if self._is_binary(value):
            return BINARY
        if self._is_type_set(value, self._is_number):
            return NUMBER_SET
        if self._is_type_set(value, self._is_string):
            return STRING_SET
        if self._is_type_set(value, self._is_binary):
            return BINARY_SET
        if isinstance(value, Mapping):
            return MAP
        if isinstance(value, list | tuple):
            return LIST
        raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')

    def _is_number(self, value: Any) -> bool:
        if isinstance(value, int | Decimal):
            return True
        if isinstance(value, float):
            raise TypeError("Float types are not supported. Use Decimal types instead.")
        return False

    def _is_string(self, value: Any) -> bool:
        return isinstance(value, str)

    def _is_binary(self, value: Any) -> bool:
        return isinstance(value, Binary | bytearray | bytes)

    def _is_type_set(self, value: Any, type_validator: Callable[[Any], bool]) -> bool:
        return isinstance(value, Set) and False not in map(type_validator, value)

    def _serialize_null(self, value: None) -> bool:
        return True

    def _serialize_bool(self, value: bool) -> bool:
        return value

    def _serialize_n(self, value: int | Decimal) -> str:
        number = str(DYNAMODB_CONTEXT.create_decimal(value))
        if number in ["Infinity", "NaN"]:
            raise TypeError("Infinity and NaN not supported")
        return number

    def _serialize_s(self, value: str) -> str:
        return value

    def _serialize_b(self, value: Binary | bytes | bytearray) -> bytes | bytearray:
        if isinstance(value, Binary):
            return value.value
        return value

    def _serialize_ss(self, value: Set[str]) -> list[str]:
        return [self._serialize_s(s) for s in value]

    def _serialize_ns(self, value: Set[int | Decimal]) -> list[str]:
        return [self._serialize_n(n) for n in value]

    def _serialize_bs(self, value: Set[Binary | bytes]) -> list[bytes | bytearray]:
        return [self._serialize_b(b) for b in value]

    def _serialize_l(self, value: list[Any] | tuple[Any, ...]) -> list[dict[str, Any]]:
        return [self.serialize(v) for v in value]

    def _serialize_m(self, value: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return {k: self.serialize(v) for k, v in value.items()}


class TypeDeserializer:
    """DynamoDB attribute values to Python values."""

    def deserialize(self, value: Mapping[str, Any]) -> Any:
        if not value:
            raise TypeError(
                "Value must be a nonempty dictionary whose key is a valid dynamodb type."
            )
        dynamodb_type = next(iter(value.keys()))
        try:
            deserializer: Callable[[Any], Any] = getattr(
                self, f"_deserialize_{dynamodb_type}".lower()
            )
        except AttributeError:
            raise TypeError(f"Dynamodb type {dynamodb_type} is not supported") from None
        return deserializer(value[dynamodb_type])

    def _deserialize_null(self, value: bool) -> None:
        return None

    def _deserialize_bool(self, value: bool) -> bool:
        return value

    def _deserialize_n(self, value: str) -> Decimal:
        return DYNAMODB_CONTEXT.create_decimal(value)

    def _deserialize_s(self, value: str) -> str:
        return value

    def _deserialize_b(self, value: bytes) -> Binary:
        return Binary(value)

    def _deserialize_ns(self, value: list[str]) -> set[Decimal]:
        return set(map(self._deserialize_n, value))

    def _deserialize_ss(self, value: list[str]) -> set[str]:
        return set(map(self._deserialize_s, value))

    def _deserialize_bs(self, value: list[bytes]) -> set[Binary]:
        return set(map(self._deserialize_b, value))

    def _deserialize_l(self, value: list[Mapping[str, Any]]) -> list[Any]:
        return [self.deserialize(v) for v in value]

    def _deserialize_m(self, value: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return {k: self.deserialize(v) for k, v in value.items()}

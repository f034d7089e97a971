"""Fail one AWS call of a run, before it takes effect or after (its answer lost).

The injector hooks botocore's ``before-call`` and ``after-call`` events on a session, so
every client made from that session afterwards (the handlers' own clients) carries it.
Raising in ``before-call`` means the request never left: nothing happened. Raising in
``after-call`` means the service applied the call and the answer was lost on the way
back (a 5xx after the commit, a read timeout). botocore emits both events around its own
retries, so an injected error is what the caller sees once botocore has given up.

A run is armed with a ``Fault`` (or none, to record): calls are numbered per service
and operation in the order the run makes them (``dynamodb.GetItem#2`` is the run's second
GetItem), and the fault's call is failed once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError


class Position(StrEnum):
    BEFORE = "before"  # the request never reached the service
    AFTER = "after"  # the service applied it; the answer was lost


class Kind(StrEnum):
    THROTTLING = "throttling"  # a 4xx throttle: only ever before the effect
    SERVER = "5xx"
    NETWORK = "network"  # no connection before; a read timeout after


# Reads have no effect to lose: failing one after the call is the same as before it.
READS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "ReceiveMessage",
        "GetRecords",
        "GetShardIterator",
        "DescribeStream",
        "GetSecretValue",
    }
)

# Each service's own throttling code (what its SDK and our adapters recognise).
THROTTLE_CODES = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "sesv2": ("TooManyRequestsException", 429),
    "sns": ("Throttling", 400),
    "sqs": ("RequestThrottled", 400),
}
SERVER_CODES = {"dynamodb": ("InternalServerError", 500)}
DEFAULT_THROTTLE = ("ThrottlingException", 400)
DEFAULT_SERVER = ("ServiceUnavailable", 503)


def kinds_at(position: Position, read: bool = False) -> tuple[Kind, ...]:
    """Throttling never happens after the effect; a connection error after it is a read
    timeout (the request went out, no answer came back). A read's throttle is a
    ClientError like its 5xx (only SES's send treats throttling apart), so reads get the
    5xx and the connection error."""
    if position is Position.AFTER:
        return (Kind.SERVER, Kind.NETWORK)
    if read:
        return (Kind.SERVER, Kind.NETWORK)
    return (Kind.THROTTLING, Kind.SERVER, Kind.NETWORK)


@dataclass(frozen=True, order=True)
class Call:
    service: str
    operation: str
    ordinal: int  # 1 for the run's first call of this service and operation

    def __str__(self) -> str:
        return f"{self.service}.{self.operation}#{self.ordinal}"

    @property
    def is_read(self) -> bool:
        return self.operation in READS


@dataclass(frozen=True)
class Fault:
    call: Call
    position: Position
    kind: Kind

    def __str__(self) -> str:
        return f"{self.call}-{self.position}-{self.kind}"

    def error(self) -> Exception:
        service, operation = self.call.service, self.call.operation
        endpoint = f"https://{service}.ap-northeast-1.amazonaws.com/"
        if self.kind is Kind.NETWORK:
            if self.position is Position.BEFORE:
                return EndpointConnectionError(endpoint_url=endpoint)
            return ReadTimeoutError(endpoint_url=endpoint)
        if self.kind is Kind.THROTTLING:
            code, status = THROTTLE_CODES.get(service, DEFAULT_THROTTLE)
        else:
            code, status = SERVER_CODES.get(service, DEFAULT_SERVER)
        response: Any = {
            "Error": {"Code": code, "Message": f"injected {self}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(response, operation)


def faults_for(calls: list[Call]) -> list[Fault]:
    """Every call × position × kind worth running (reads: before only)."""
    return [
        Fault(call, position, kind)
        for call in calls
        for position in Position
        if position is Position.BEFORE or not call.is_read
        for kind in kinds_at(position, call.is_read)
    ]


@dataclass
class Injector:
    """Records the calls of an armed run and fails the one its fault names."""

    calls: list[Call] = field(default_factory=list)
    fault: Fault | None = None
    fired: bool = False
    armed: bool = False
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _current: Call | None = None
    # Called with (service, operation, parameters) of every call (clients copy a session's
    # hooks when they are made, so later watchers are added here, not to the session).
    watchers: list[Callable[[str, str, dict[str, Any]], None]] = field(default_factory=list)

    def install(self, session: Any) -> None:
        """Hook a botocore session: every client made from it afterwards is watched."""
        session.register("before-call", self._before)
        session.register("after-call", self._after)
        session.register("provide-client-params", self._params)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        for watcher in self.watchers:
            watcher(model.service_model.service_name, model.name, params)

    @contextmanager
    def armed_with(self, fault: Fault | None) -> Iterator[list[Call]]:
        """Watch the calls made inside the block; fail ``fault``'s call once."""
        self.calls, self.fault, self.fired = [], fault, False
        self._counts.clear()
        self.armed = True
        try:
            yield self.calls
        finally:
            self.armed = False
            self._current = None

    def _before(self, event_name: str, **_: Any) -> None:
        if not self.armed:
            return
        service, operation = event_name.split(".")[1:3]
        self._counts[service, operation] += 1
        call = Call(service, operation, self._counts[service, operation])
        self.calls.append(call)
        self._current = call
        self._maybe_fail(call, Position.BEFORE)

    def _after(self, event_name: str, **_: Any) -> None:
        if self.armed and self._current is not None:
            self._maybe_fail(self._current, Position.AFTER)

    def _maybe_fail(self, call: Call, position: Position) -> None:
        fault = self.fault
        if fault is None or self.fired or fault.call != call or fault.position is not position:
            return
        self.fired = True
        raise fault.error()

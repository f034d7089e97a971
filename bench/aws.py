"""What the benchmarks against moto server share: the server, a meter of AWS calls and
of DynamoDB write units, and a concurrent runner.

moto, as the benchmarks run it (documented here and printed with the figures):

- **One request at a time.** moto's in-memory tables are not safe under concurrent
  requests (a Query iterating a partition while a Put adds to it, a failed transaction
  restoring a copy of the table over other writers' items), so the server handles one
  request at a time; connections, request parsing in the client and the clients' own
  work still overlap. The raw floors pay the same.
- **TransactWriteItems backs up what it touches.** moto 5.2.5 deep-copies the whole
  table once per item of a transaction, for its rollback (about 2 s per transaction on
  a table of a few hundred leads); DynamoDB has no such cost. ``fast_transactions``
  keeps moto's rollback but backs up only the items the transaction touches, so a
  transaction costs what its items cost, for the code measured and its floor alike.

Write units are computed, not read from moto (which does not return ConsumedCapacity
reliably): see ``item_size`` and ``write_units``.
"""

from __future__ import annotations

import copy
import gc
import math
import os
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
from botocore import xform_name
from moto.server import ThreadedMotoServer

from shared.adapters.clients import use_session

T = TypeVar("T")
Key = tuple[str, str]  # (pk, sk) of the single table


# -- moto server -------------------------------------------------------------------------


class _OneAtATime:
    """A WSGI app that lets one request in at a time (moto's state is not thread-safe),
    and adds up the processor time moto spends answering (``busy``: the thread's CPU
    time, so not the time it waits for the interpreter lock while clients run)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            started = time.thread_time()
            try:
                return list(self._app(environ, start_response))
            finally:
                SERVER.busy += time.thread_time() - started


@dataclass
class _Server:
    busy: float = 0.0  # CPU seconds moto spent answering requests, all told


SERVER = _Server()


class _SerialMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def fast_transactions() -> None:
    """Make moto's TransactWriteItems back up only the items it touches (see above).

    moto copies each table named in the transaction with ``copy.deepcopy`` and, if an
    item fails, puts the copies back. Here the tables deep-copy to themselves during
    the call, and the touched items, copied before it, are put back instead; the
    outcome of every transaction (applied whole, or not at all) is unchanged.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "bench_fast", False):
        return

    def touched(backend: Any, items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
        found = []
        for entry in items:
            op = next(iter(entry.values()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op["Item"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            item = table.get_item(hash_value, range_value)
            found.append((table, hash_value, range_value, copy.deepcopy(item)))
        return found

    def restore(backup: list[tuple[Any, Any, Any, Any]]) -> None:
        for table, hash_value, range_value, item in reversed(backup):
            if item is None:
                table.delete_item(hash_value, range_value)
            elif range_value is not None:
                table.items[hash_value][range_value] = item
            else:
                table.items[hash_value] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            backup = touched(self, transact_items)
        except (KeyError, TypeError, StopIteration):
            return original(self, transact_items)  # malformed: moto's own answer
        setattr(Table, "__deepcopy__", lambda table, memo: table)  # noqa: B010
        try:
            original(self, transact_items)
        except Exception:
            restore(backup)
            raise
        finally:
            delattr(Table, "__deepcopy__")

    transact_write_items.bench_fast = True  # type: ignore[attr-defined]
    setattr(DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto server on loopback (one request at a time, fast transactions); the default
    boto3 session points at it."""
    fast_transactions()
    port = free_port()
    server = _SerialMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION="ap-northeast-1",
    )
    boto3.setup_default_session()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def reset(endpoint: str) -> None:
    """Empty moto, so one phase's items do not slow the next; SES set up again."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # noqa: S310
    ses = unmetered().client("sesv2")
    ses.create_email_identity(EmailIdentity="example.co.jp")
    ses.create_configuration_set(ConfigurationSetName="bench")


_UNMETERED: list[boto3.session.Session] = []


def unmetered() -> boto3.session.Session:
    """A session of its own: its clients are not seen by the meter (setup, checks)."""
    if not _UNMETERED:
        _UNMETERED.append(boto3.session.Session())
    return _UNMETERED[0]


# -- write units ---------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0]
    significant = digits.strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one AttributeValue (wire form), as DynamoDB sizes it."""
    kind, data = next(iter(value.items()))
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of an item (wire form) by DynamoDB's rules: attribute names and values in
    UTF-8, numbers 1 byte per 2 significant digits + 1, booleans and nulls 1, lists
    and maps 3 + 1 per element, sets the sum of their elements."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _units(size: int) -> int:
    """Write units of writing one item: 1 per started KB, at least 1."""
    return max(1, math.ceil(size / 1024))


def _key(item: Mapping[str, Any]) -> Key:
    return (str(item["pk"]["S"]), str(item["sk"]["S"]))


def write_units(
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    before: Mapping[Key, int],
    after: Mapping[Key, int],
) -> int:
    """The WCU DynamoDB bills for ``calls`` (operation name, parameters), computed:

    - PutItem: 1 per started KB of the larger of the item written and the item it
      replaces (``before``);
    - UpdateItem, DeleteItem, and a ConditionCheck: 1 per started KB of the larger of
      the stored item before and after (``before``/``after``: sizes of the items read
      from the table before and after the measured run, an upper bound for an item
      written several times in it, such as a day's report counter);
    - BatchWriteItem: the sum over its puts and deletes;
    - TransactWriteItems: twice the units of each of its items (prepare and commit).

    Global secondary index writes (a profile entering, leaving or moving in the ``due``
    index) are not included.
    """
    total = 0
    for name, params in calls:
        if name == "PutItem":
            total += _put_units(params["Item"], before)
        elif name in ("UpdateItem", "DeleteItem"):
            total += _stored_units(_key(params["Key"]), before, after)
        elif name == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for request in requests:
                    if "PutRequest" in request:
                        total += _put_units(request["PutRequest"]["Item"], before)
                    else:
                        key = _key(request["DeleteRequest"]["Key"])
                        total += _stored_units(key, before, after)
        elif name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                kind, op = next(iter(entry.items()))
                if kind == "Put":
                    total += 2 * _put_units(op["Item"], before)
                else:
                    total += 2 * _stored_units(_key(op["Key"]), before, after)
    return total


def _put_units(item: Mapping[str, Any], before: Mapping[Key, int]) -> int:
    return _units(max(item_size(item), before.get(_key(item), 0)))


def _stored_units(key: Key, before: Mapping[Key, int], after: Mapping[Key, int]) -> int:
    return _units(max(before.get(key, 0), after.get(key, 0)))


def table_sizes(table: str) -> dict[Key, int]:
    """Every item's size, by key, read from the server's memory outside the measured run
    (a Scan through moto's HTTP answer takes seconds for a few hundred profiles)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][os.environ["AWS_DEFAULT_REGION"]]
    sizes: dict[Key, int] = {}
    for partition in list(backend.get_table(table).items.values()):
        for item in list(partition.values()):
            attributes = item.to_json()["Attributes"]
            sizes[_key(attributes)] = item_size(attributes)
    return sizes


# -- calls -------------------------------------------------------------------------------

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


@dataclass(frozen=True)
class Call:
    """One AWS call as a function made it: its service, operation and parameters, and
    the label of the unit of work that made it (``Meter.label``)."""

    service: str
    name: str
    params: Any
    label: Any = None

    @property
    def lead(self) -> str | None:
        """The lead the call is about (its ``LEAD#`` key, or an SES send's tag)."""
        params = self.params
        if self.service == "sesv2":
            tags = {t["Name"]: t["Value"] for t in params.get("EmailTags", [])}
            return tags.get("lead_id")
        items: list[Any] = []
        for field_name in ("Key", "Item"):
            if field_name in params:
                items.append(params[field_name])
        for entry in params.get("TransactItems", []):
            op = next(iter(entry.values()))
            items.append(op.get("Key") or op.get("Item"))
        for request in params.get("RequestItems", {}).values():
            items.extend(request.get("Keys", []) if isinstance(request, dict) else [])
        for item in items:
            pk = str(item.get("pk", {}).get("S", ""))
            if pk.startswith("LEAD#"):
                return pk.removeprefix("LEAD#")
        return None


@dataclass
class Run:
    """The AWS calls made during one measured run, in the order they were made, the time
    of its timed parts and moto's processor time within them."""

    calls: list[Call] = field(default_factory=list)
    seconds: float = 0.0  # the timed parts of the run (``timed``)
    server_seconds: float = 0.0  # moto's CPU time within them

    @contextmanager
    def timed(self) -> Iterator[None]:
        """A part of the run that counts: its wall time, and moto's time within it."""
        busy, started = SERVER.busy, time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started
            self.server_seconds += SERVER.busy - busy

    def names(self) -> Counter[str]:
        return Counter(call.name for call in self.calls)

    def dynamodb(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The DynamoDB calls as (operation, parameters), for ``write_units``."""
        return [(c.name, c.params) for c in self.calls if c.service == "dynamodb"]

    def units(self, key: Callable[[Call], Any]) -> dict[Any, list[Call]]:
        """The calls grouped by ``key`` (a label, a lead), each group in order; calls
        whose key is None are left out."""
        found: dict[Any, list[Call]] = {}
        for call in self.calls:
            unit = key(call)
            if unit is not None:
                found.setdefault(unit, []).append(call)
        return found


class Meter:
    """Every call made through the default boto3 session's clients (botocore's
    ``provide-client-params`` event), into the run being recorded; the functions built
    after it make their clients from that session too (``use_session``). Register it
    before the clients are made: a client copies the session's event hooks when it is
    made."""

    def __init__(self) -> None:
        self._run: Run | None = None
        self._local = threading.local()
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        session._session.get_component("event_emitter").register(
            "provide-client-params", self._seen
        )
        use_session(session._session)

    def _seen(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        run = self._run
        if run is not None:
            label = getattr(self._local, "label", None)
            run.calls.append(Call(model.service_model.service_name, model.name, params, label))

    @property
    def label(self) -> Any:
        return getattr(self._local, "label", None)

    @label.setter
    def label(self, value: Any) -> None:
        """Names the unit of work this thread is doing (its calls carry the name)."""
        self._local.label = value

    @staticmethod
    def client(service: str) -> Any:
        """A client of the default session, so of the meter."""
        return boto3.client(service)  # type: ignore[call-overload]

    @contextmanager
    def recording(self, run: Run) -> Iterator[Run]:
        """Record the calls made meanwhile into ``run`` (one run at a time)."""
        self._run = run
        try:
            yield run
        finally:
            self._run = None


def settle() -> None:
    """Before a measured phase: collect garbage, then take whatever the process holds so
    far out of the collector's sight (``gc.freeze``), so that a phase measured later
    does not pay for collecting what earlier ones left."""
    gc.collect()
    gc.freeze()


class Replayer:
    """A floor made of calls the functions made: the same parameters, in the same order
    within a unit of work, sent with plain boto3 clients (of the meter, so counted) to
    the floor's own table and queue; ``workers`` units at once."""

    def __init__(self, meter: Meter, table: str, workers: int, queue_url: str = "") -> None:
        self._meter = meter
        self._table = table
        self._queue_url = queue_url
        self._workers = workers
        self._clients = {name: meter.client(name) for name in ("dynamodb", "sesv2", "sqs")}
        self.run = Run()

    def replay(self, units: Sequence[Sequence[Call]], workers: int | None = None) -> None:
        moved = [[self._moved(call) for call in unit] for unit in units]
        with self._meter.recording(self.run), self.run.timed():
            concurrently(self._unit, moved, workers or self._workers)

    def _unit(self, calls: list[Call]) -> None:
        for call in calls:
            getattr(self._clients[call.service], xform_name(call.name))(**call.params)

    def _moved(self, call: Call) -> Call:
        """A copy of the call with the table (and queue) names changed to the floor's."""
        params = copy.deepcopy(call.params)
        if "TableName" in params:
            params["TableName"] = self._table
        if "QueueUrl" in params:
            params["QueueUrl"] = self._queue_url
        if call.name in ("BatchGetItem", "BatchWriteItem"):
            (requests,) = params["RequestItems"].values()  # one table
            params["RequestItems"] = {self._table: requests}
        for entry in params.get("TransactItems", []):
            next(iter(entry.values()))["TableName"] = self._table
        return Call(call.service, call.name, params, call.label)


def pick(calls: Sequence[Call], names: Sequence[str]) -> list[Call]:
    """The first calls, in order, that make up ``names`` (a unit's unavoidable calls)."""
    picked: list[Call] = []
    wanted = iter(names)
    name = next(wanted, None)
    for call in calls:
        if call.name == name:
            picked.append(call)
            name = next(wanted, None)
    if name is not None:
        made = [c.name for c in calls]
        raise AssertionError(f"expected {list(names)}, the function made {made}")
    return picked


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def concurrently(work: Callable[[T], object], items: Sequence[T], workers: int) -> None:
    """Do ``work`` on every item, ``workers`` at a time (1: in this thread)."""
    if workers <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(work, items):
            pass


@dataclass(frozen=True)
class Figures:
    """One operation's figures beside its floor's, from two measured runs of ``ops``
    operations each: rate, calls and write units per operation, moto's time per op."""

    name: str
    ops: int
    run: Run
    wcu: int  # computed (``write_units``), the whole run
    floor_label: str
    floor_run: Run
    floor_wcu: int

    @property
    def rate(self) -> float:
        return self.ops / self.run.seconds

    @property
    def floor_rate(self) -> float:
        return self.ops / self.floor_run.seconds

    @property
    def ratio(self) -> float:
        return self.rate / self.floor_rate

    def dynamodb_calls(self, floor: bool = False) -> float:
        calls = (self.floor_run if floor else self.run).names()
        return sum(n for name, n in calls.items() if name in DYNAMODB) / self.ops

    def row(self) -> str:
        moto = 1000 * self.run.server_seconds / self.ops
        floor_moto = 1000 * self.floor_run.server_seconds / self.ops
        return (
            f"{self.name:<30} {self.rate:6.1f}/s {self.floor_rate:6.1f}/s {self.ratio:5.2f}  "
            f"{self.dynamodb_calls():4.2f} ({self.dynamodb_calls(floor=True):4.2f})  "
            f"{self.wcu / self.ops:5.2f} ({self.floor_wcu / self.ops:5.2f})  "
            f"{moto:5.1f} ({floor_moto:5.1f})"
        )

    def details(self) -> str:
        return (
            f"  {self.name}: {per_op(self.run.names(), self.ops)}\n"
            f"    floor, {self.floor_label}: {per_op(self.floor_run.names(), self.ops)}"
        )


NOTES = """\
notes: rate and floor are operations per second, measured in the same run against the
  same moto server with the same number at once, taking turns. WCU is computed from the
  items written (bench/aws.py write_units: 1 per started KB per item, twice inside
  TransactWriteItems, an update the larger of the item before and after; index writes
  not included), not returned by moto. moto ms/op is moto's own processor time. moto
  answers one request at a time here, and its TransactWriteItems backs up only the
  items it touches (moto 5.2.5 deep-copies the whole table per item; DynamoDB has no
  such cost)."""

HEADER = (
    f"{'operation':<30} {'rate':>8} {'floor':>8} {'ratio':>5}  "
    "DynamoDB calls/op (floor)  WCU/op (floor)  moto ms/op (floor)"
)


# DynamoDB's operations (a call of another service is named beside them in the details).
DYNAMODB = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TransactGetItems",
    }
)


def per_op(counts: Mapping[str, int], ops: int) -> str:
    """Calls per operation, by name: ``GetItem 1, PutItem 1, Query 0.08``."""
    return ", ".join(f"{name} {n / ops:.3g}" for name, n in sorted(counts.items()))

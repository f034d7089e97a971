"""moto made to hold up as the local stack's long-running AWS (local stack only).

moto 5 is built for tests: short runs on one thread. Run for weeks of stack time, by
several threads at once, it fails in the ways below, each fixed here. ``install()``
applies the fixes in the local stack's process and returns the call that undoes them;
tests use moto as it is unless they install them.

- **Transactions copy whole tables.** To roll back, each ``TransactWriteItems``
  deep-copies every table it names, stream included, so a form post costs time and memory
  in proportion to everything ever stored. Here a transaction keeps the prior versions of
  the items it names and the length of each stream, and restores those when cancelled.
- **Nothing is ever freed.** moto keeps every model instance it creates (each version of
  each item, each copy, each stream record and iterator) in a list per class, for its
  ``/moto-api/data.json`` view. Here those lists hold weak references, so the view still
  shows what is alive and the rest is freed.
- **Every ``GetRecords`` adds a shard iterator** that is never dropped. Here a backend
  keeps the newest ``ITERATORS_KEPT``, as AWS lets an unused iterator expire.
- **A stream keeps every record, a topic every message published.** Here a stream keeps
  its newest ``STREAM_RECORDS_KEPT`` records (DynamoDB Streams keep 24 hours; sequence
  numbers go on as before) and a topic its newest ``NOTIFICATIONS_KEPT`` messages (its
  subscribers have them already).
- **SES forgets how an email was sent.** moto keeps the raw message but drops its tags.
  Here each email's tags (lead, program, step, variant) and the time on the local
  stack's clock are kept by message id (``SENT_EMAILS``), as SES would report them.
- **SES keeps every email whole.** Each raw message (about 11 KB of MIME text here) stays
  for the whole run. Here the newest ``BODIES_KEPT`` keep their bodies; older ones keep
  their id, addresses and header block (subject, To, List-Unsubscribe), and say so
  (``body_kept(message)`` is false), so the outbox still lists every email.
- **A queue keeps every deleted message's receipt handles** (so that deleting one again
  succeeds, as on AWS), about 0.2 KB each, one per receive. Here a queue keeps the
  newest ``DELETED_HANDLES_KEPT``: a handle is deleted again soon after, if ever.
- **A Query reads the whole table.** moto answers each Query by sorting every item of
  the table and then keeping those of the partition (or, on an index, those with the
  index's key), so the scheduler's tick and every timeline read slow down with all that
  was ever stored. Here a Query starts from the items its key condition can match: the
  partition's own items, or the items holding the index's partition key value.
- **Conditional writes race.** Requests run on several threads, and two posts for one
  new address could both pass ``attribute_not_exists``. Here DynamoDB and DynamoDB
  Streams requests run one at a time, as one partition would apply them.

Written against moto 5.2 (the versions are pinned); ``tests/integration/test_moto_fixes.py``
fails if an upgrade moves what these rely on.
"""

from __future__ import annotations

import copy
import inspect
import json
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from moto.core.common_models import BaseModel
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.ses.models import RawMessage, SESBackend
from moto.sesv2.responses import SESV2Response
from moto.sns.models import Topic
from moto.sqs.models import Queue

ITERATORS_KEPT = 1_000
# Each record holds a lead's old and new image: 5,000 are minutes of the busiest run,
# and the local readers poll twice a second.
STREAM_RECORDS_KEPT = 5_000
NOTIFICATIONS_KEPT = 1_000
# Emails whose whole raw message is kept: more than a day of the busiest run.
BODIES_KEPT = 1_000
# Receipt handles of deleted messages a queue keeps: hours of the busiest run.
DELETED_HANDLES_KEPT = 10_000

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Undo = Callable[[], None]


class AliveInstances:
    """A model class's instances, weakly held: what moto's ``instances_tracked`` lists."""

    _PRUNE_EVERY = 4_096

    def __init__(self, existing: Iterable[object] = ()) -> None:
        self._refs: list[Callable[[], object | None]] = []
        self._appended = 0
        for instance in existing:
            self.append(instance)

    def append(self, instance: object) -> None:
        try:
            self._refs.append(weakref.ref(instance))
        except TypeError:  # not weakly referable: keep it, as moto does
            self._refs.append(_Kept(instance))
        self._appended += 1
        if self._appended % self._PRUNE_EVERY == 0:
            self._refs = [ref for ref in self._refs if ref() is not None]

    def __iter__(self) -> Iterator[object]:
        return (alive for ref in list(self._refs) if (alive := ref()) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Kept:
    def __init__(self, instance: object) -> None:
        self._instance = instance

    def __call__(self) -> object:
        return self._instance


class StreamRecords(list[Any]):
    """A stream shard's records, only the newest ``kept`` of them held.

    moto numbers records by their position (``len(items)``) and reads them by slicing, so
    the length counts every record ever added and a slice reads from what is still held;
    records trimmed away are skipped, as expired records are on AWS.
    """

    def __init__(self, kept: int | None = None) -> None:
        super().__init__()
        self._kept = STREAM_RECORDS_KEPT if kept is None else kept
        self.trimmed = 0

    def __len__(self) -> int:
        return self.trimmed + super().__len__()

    def append(self, record: Any) -> None:
        super().append(record)
        excess = super().__len__() - self._kept
        if excess > 0:
            del self[:excess]

    def __delitem__(self, index: Any) -> None:
        if isinstance(index, slice) and index.start is None and index.step is None:
            stop = index.stop if index.stop is not None else super().__len__()
            super().__delitem__(slice(None, stop))
            self.trimmed += stop
            return
        super().__delitem__(index)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            # A read from before the trim point starts at the oldest record held, and
            # still gets as many as it asked for: a reader behind moves on.
            start = max((index.start or 0) - self.trimmed, 0)
            stop = None if index.stop is None else start + index.stop - (index.start or 0)
            return list.__getitem__(self, slice(start, stop, index.step))
        return list.__getitem__(self, index - self.trimmed if index >= 0 else index)

    def truncate(self, length: int) -> None:
        """Drop the records added after the stream was ``length`` long."""
        held = max(length - self.trimmed, 0)
        list.__delitem__(self, slice(held, None))


def _patched(owner: type, name: str, replacement: Callable[..., Any]) -> Undo:
    """``owner.name`` replaced; the call that puts the original back."""
    original = vars(owner)[name]
    setattr(owner, name, replacement)
    return lambda: setattr(owner, name, original)


def _key(table: Table, op: dict[str, Any], op_type: str) -> tuple[DynamoType, DynamoType | None]:
    attributes = op["Item"] if op_type == "Put" else op["Key"]
    hash_key = DynamoType(attributes[table.hash_key_attr])
    range_attr = table.range_key_attr
    return hash_key, DynamoType(attributes[range_attr]) if range_attr else None


class _Prior:
    """What a transaction may change: its items' versions and its streams' lengths."""

    def __init__(self, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        self._items: list[tuple[Table, DynamoType, DynamoType | None, Any]] = []
        self._streams: list[tuple[StreamShard, int]] = []
        tables: dict[str, Table] = {}
        for entry in transact_items[:100]:
            try:
                op_type, op = next(iter(entry.items()))
                table = backend.tables[op["TableName"]]
                hash_key, range_key = _key(table, op, op_type)
            except (KeyError, StopIteration, TypeError, AttributeError):
                continue  # moto refuses this operation before it writes anything
            tables[table.name] = table
            current = table.get_item(hash_key, range_key)
            self._items.append((table, hash_key, range_key, copy.deepcopy(current)))
        for table in tables.values():
            if table.stream_shard is not None:
                self._streams.append((table.stream_shard, len(table.stream_shard.items)))

    def restore(self) -> None:
        for table, hash_key, range_key, prior in reversed(self._items):
            if range_key is not None:
                rows = table.items[hash_key]
                if prior is None:
                    rows.pop(range_key, None)
                else:
                    rows[range_key] = prior
            elif prior is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = prior
        for shard, length in self._streams:
            items = shard.items
            if isinstance(items, StreamRecords):
                items.truncate(length)
            else:
                del items[length:]


def _tables_not_copied() -> Undo:
    """moto's transaction copies tables with ``copy.deepcopy``: copy nothing but tables."""

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    shim = types.ModuleType("copy")
    shim.deepcopy = deepcopy  # type: ignore[attr-defined]
    shim.copy = copy.copy  # type: ignore[attr-defined]
    original = vars(dynamodb_models)["copy"]
    setattr(dynamodb_models, "copy", shim)  # noqa: B010 - moto does not export the name

    def undo() -> None:
        setattr(dynamodb_models, "copy", original)  # noqa: B010

    return undo


def _journaled_transactions() -> Undo:
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        prior = _Prior(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            prior.restore()
            raise

    undo_transactions = _patched(DynamoDBBackend, "transact_write_items", transact_write_items)
    undo_copies = _tables_not_copied()

    def undo() -> None:
        undo_transactions()
        undo_copies()

    return undo


# The items a Query on this thread may match, handed from ``query`` to ``all_items``.
_QUERY_SCOPE = threading.local()


def _rows(table: Table) -> Iterator[Any]:
    for rows in table.items.values():
        yield from rows.values() if table.range_key_attr else (rows,)


def _matchable(table: Table, arguments: dict[str, Any]) -> list[Any] | None:
    """The items a Query's key condition can match, unordered (moto sorts what it
    keeps); None where it cannot tell, and the whole table is read as before."""
    if not arguments.get("index_name"):
        rows = table.items.get(arguments["hash_key"])
        if rows is None:
            return []
        return list(rows.values()) if table.range_key_attr else [rows]
    conditions = arguments.get("hash_key_conditions") or []
    if not conditions:
        return None
    # A tight loop, not DynamoType's ``==`` per item: this runs over every item.
    matched = list(_rows(table))
    for name, value in conditions:
        matched = [
            item
            for item in matched
            if (found := item.attrs.get(name)) is not None
            and found.type == value.type
            and (found.value == value.value or (value.type == "N" and found == value))
        ]
    return matched


def _keyed_queries() -> Undo:
    original_query = Table.query
    original_all_items = Table.all_items
    signature = inspect.signature(original_query)

    def all_items(self: Table) -> list[Any]:
        scope = getattr(_QUERY_SCOPE, "items", None)
        if scope is not None and scope[0] is self:
            return list(scope[1])
        return original_all_items(self)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        matchable = _matchable(self, arguments)
        _QUERY_SCOPE.items = None if matchable is None else (self, matchable)
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _QUERY_SCOPE.items = None

    undo_query = _patched(Table, "query", query)
    undo_all_items = _patched(Table, "all_items", all_items)

    def undo() -> None:
        undo_all_items()
        undo_query()

    return undo


def _weak_instance_lists() -> Undo:
    def new(cls: type[BaseModel], *args: Any, **kwargs: Any) -> BaseModel:
        instance = super(BaseModel, cls).__new__(cls)
        tracked = cls.__dict__.get("instances_tracked")
        if not isinstance(tracked, AliveInstances):
            tracked = AliveInstances(tracked or ())
            cls.instances_tracked = tracked  # type: ignore[attr-defined]
        tracked.append(instance)
        return instance

    return _patched(BaseModel, "__new__", new)


def _bounded_iterators() -> Undo:
    get_iterator = DynamoDBStreamsBackend.get_shard_iterator
    get_records = DynamoDBStreamsBackend.get_records

    def forget_oldest(backend: DynamoDBStreamsBackend) -> None:
        iterators = backend.shard_iterators
        excess = len(iterators) - ITERATORS_KEPT
        if excess > 0:
            for arn in list(islice(iterators, excess)):  # dicts keep insertion order
                del iterators[arn]

    def get_shard_iterator(self: DynamoDBStreamsBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return get_iterator(self, *args, **kwargs)
        finally:
            forget_oldest(self)

    def get_records_kept(self: DynamoDBStreamsBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return get_records(self, *args, **kwargs)
        finally:
            forget_oldest(self)

    undo_iterators = _patched(DynamoDBStreamsBackend, "get_shard_iterator", get_shard_iterator)
    undo_records = _patched(DynamoDBStreamsBackend, "get_records", get_records_kept)

    def undo() -> None:
        undo_records()
        undo_iterators()

    return undo


def _trimmed_streams() -> Undo:
    original_init = StreamShard.__init__

    def init(self: StreamShard, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.items = StreamRecords()

    return _patched(StreamShard, "__init__", init)


@dataclass(frozen=True)
class SentEmail:
    tags: dict[str, str]
    at: datetime


class SentEmails:
    """Each email's tags and send time, by SES message id."""

    def __init__(self) -> None:
        self._by_id: dict[str, SentEmail] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # the stack's, once set

    def record(self, message_id: str, tags: dict[str, str]) -> None:
        self._by_id[message_id] = SentEmail(tags, self.clock())

    def get(self, message_id: str) -> SentEmail | None:
        return self._by_id.get(message_id)


SENT_EMAILS = SentEmails()


def _tagged_sends() -> Undo:
    original = SESV2Response.send_email

    def send_email(self: SESV2Response) -> str:
        answer = original(self)
        tags = json.loads(self.body).get("EmailTags") or []
        SENT_EMAILS.record(
            json.loads(answer)["MessageId"], {tag["Name"]: tag["Value"] for tag in tags}
        )
        return answer

    return _patched(SESV2Response, "send_email", send_email)


def body_kept(message: object) -> bool:
    """Whether ``message`` (one of SES's sent messages) still holds its body."""
    return bool(getattr(message, "body_kept", True))


def header_block(raw: str) -> str:
    """A raw message's header block, up to and including the blank line that ends it."""
    ends = [(at, len(blank)) for blank in ("\r\n\r\n", "\n\n") if (at := raw.find(blank)) >= 0]
    if not ends:
        return raw  # no body to drop
    at, length = min(ends)
    return raw[: at + length]


def keep_newest_bodies(sent: list[Any], kept: int | None = None) -> None:
    """Drop the bodies of all but the newest ``kept`` raw messages in ``sent`` (SES's
    ``sent_messages``): each keeps its header block and is marked as no longer whole.
    Bodies are always dropped oldest first, so the walk stops at the first one dropped."""
    kept = BODIES_KEPT if kept is None else kept
    whole = 0
    for message in reversed(sent):
        if not isinstance(message, RawMessage):
            continue
        if not body_kept(message):
            return
        whole += 1
        if whole > kept:
            message.raw_data = header_block(message.raw_data)
            message.body_kept = False  # type: ignore[attr-defined]


def _trimmed_mail_bodies() -> Undo:
    original = SESBackend.send_raw_email

    def send_raw_email(self: SESBackend, *args: Any, **kwargs: Any) -> RawMessage:
        message = original(self, *args, **kwargs)
        keep_newest_bodies(self.sent_messages)
        return message

    return _patched(SESBackend, "send_raw_email", send_raw_email)


def _trimmed_topics() -> Undo:
    original = Topic.publish

    def publish(self: Topic, *args: Any, **kwargs: Any) -> str:
        message_id = original(self, *args, **kwargs)
        excess = len(self.sent_notifications) - NOTIFICATIONS_KEPT
        if excess > 0:
            del self.sent_notifications[:excess]
        return message_id

    return _patched(Topic, "publish", publish)


class RecentHandles:
    """A queue's ``deleted_messages``: receipt handles, only the newest ``kept`` held.

    Not a set (nor a dict), so that ``data.json`` leaves it out, as it leaves out moto's set.
    """

    def __init__(self, kept: int | None = None) -> None:
        self._kept = DELETED_HANDLES_KEPT if kept is None else kept
        self._handles: dict[str, None] = {}  # oldest first

    def __contains__(self, handle: object) -> bool:
        return handle in self._handles

    def __len__(self) -> int:
        return len(self._handles)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._handles))

    def add(self, handle: str) -> None:
        self.update((handle,))

    def update(self, handles: Iterable[str]) -> None:
        for handle in handles:
            self._handles.pop(handle, None)
            self._handles[handle] = None
        excess = len(self._handles) - self._kept
        if excess > 0:
            for handle in list(islice(self._handles, excess)):
                del self._handles[handle]


def _bounded_deleted_handles() -> Undo:
    original_init = Queue.__init__

    def init(self: Queue, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.deleted_messages = RecentHandles()  # type: ignore[assignment]

    return _patched(Queue, "__init__", init)


def install() -> Undo:
    """Apply the fixes to moto in this process; the call that undoes them."""
    undos = [
        _trimmed_topics(),
        _tagged_sends(),
        _trimmed_mail_bodies(),
        _bounded_deleted_handles(),
        _journaled_transactions(),
        _keyed_queries(),
        _weak_instance_lists(),
        _bounded_iterators(),
        _trimmed_streams(),
    ]

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


# Held while a DynamoDB request is served, and by whatever in this process reads moto's
# tables directly (the console's lead list).
DYNAMODB_LOCK = threading.Lock()


def one_at_a_time(app: WsgiApp) -> WsgiApp:
    """``app`` with DynamoDB requests (tables and streams) served one at a time."""
    lock = DYNAMODB_LOCK

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))  # the whole answer under the lock

    return serve

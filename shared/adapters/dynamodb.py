"""Leads in one DynamoDB table (single-table design).

Items and access patterns:

| item           | pk              | sk                     | access pattern             |
| -------------- | --------------- | ---------------------- | -------------------------- |
| lead profile   | ``LEAD#<id>``   | ``PROFILE``            | lead by id: GetItem        |
| email claim    | ``EMAIL#<key>`` | ``EMAIL``              | lead by email: 2 GetItems  |
| activity       | ``LEAD#<id>``   | ``ACT#<at>#<id>``      | timeline: Query, newest 1st|
| consent record | ``LEAD#<id>``   | ``CONSENT#<at>#<id>``  | consent history: Query     |
| report counter | ``COUNTER#<d>`` | ``<kind>@<shard>``     | a day's counters: Query    |
| running total  | ``COUNTER#total``| ``customers@<shard>`` | what stands now: Query     |
| email record   | ``LEAD#<id>``   | ``MAIL#<message id>``  | one email's opens: GetItem |
| outcome        | ``OUTCOME#<m>`` | ``<at>#<lead id>``     | a month's outcomes: Query  |
| visitor link   | ``VISITOR#<v>`` | ``LINK``               | visitor's lead: GetItem    |
| page view      | ``VISITOR#<v>`` | ``VISIT#<view id>``    | recent views: Query (TTL)  |
| revisit alert  | ``LEAD#<id>``   | ``ALERT#revisit``      | once per period: cond. Set |
| send record    | ``LEAD#<id>``   | ``SEND#<job key>``     | claim: conditional Put     |
| request marker | ``LEAD#<id>``   | ``EVENT#<key>``        | read with the lead (TTL)   |
| hand-off mark  | ``LEAD#<id>``   | ``HANDOFF#<id>``       | once per qualification     |
| erased address | ``ERASED#<h>``  | ``ERASED``             | read with the email claim  |
| sending guard  | ``SENDING``     | ``GUARD``              | each tick: GetItem         |
| jobs queued    | ``SENDING``     | ``QUEUED#<d>``         | warm-up cap: ADD per tick  |
| event seats    | ``EVENT#<e>``   | ``SEATS``              | with the lead: cond. Put   |

An event with a capacity (``<e>``: its id in events.yaml) keeps who holds its places
(``holders``, a string set of lead ids) and who waits (``waiting``, lead id -> since when)
on one item, read with the lead whose registration changes it and written in the same
transaction, conditional on its ``version``.

Page views are kept under the anonymous visitor (``<v>``: the snippet's random id) for
the attribution window (``expires_at``); no IP address is stored. The link names the
lead the visitor is (a form post or a signed email reference); the lead profile's
``page_groups`` string set is added to with ``ADD`` in the scoring transaction.

Report counters are per Japanese day ``<d>``, one numeric attribute per metric, added
to atomically (``ADD``): under ``stage`` the stage transitions (``new>lead``, ``lead>mql``,
``lead>dormant``, ``dormant>lead``, ...); under ``list`` the leads that stopped being
mailable (``unsubscribed``, ``suppressed:bounce``, ``suppressed:complaint``,
``suppressed:rejected``, ``sunset:<stage>``), apart from ``stage`` so that stage maths
never sees them; under ``email#<program>#<step>#<variant>`` the SES events. Every count
is written in the transaction of the change that caused it (``revise``), so a retried or
duplicate request counts once (names and rules: ``shared.funnel``). Each counter is kept
in COUNTER_SHARDS items (``<kind>@<n>``, by lead) so that concurrent transactions rarely
touch the same item; readers add them up.

The ``due`` GSI is sparse and sharded: only a profile with a pending nurture step
carries ``due_shard`` (0..DUE_SHARDS-1, from the lead id) and ``due_at`` (fixed-width
UTC ISO text), so the scheduler's Query per shard touches due leads only. No request
or schedule path scans the table.

A disclosure (``holdings``) reads the lead's whole partition with one paged Query, and
the items about it kept elsewhere (the address's claim and erasure mark, its outcomes)
with one BatchGetItem.

Every change of a lead goes through ``DynamoLeadRepository.revise``: one read (the
profile, with the email's record and the request's marker in one BatchGetItem), one
write conditional on the profile's ``version`` (optimistic locking) that SETs or REMOVEs
only the attributes that changed, with everything the change records in the same
transaction. The email claim is created in the same transaction as the lead, so two
concurrent first posts for one address cannot make two leads.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.adapters.attributes import Binary
from shared.adapters.items import (
    PROFILE,
    SEATS_SK,
    condition_failed,
    counter_pk,
    counter_sk,
    deserialize,
    due_shard,
    email_pk,
    erased_pk,
    lead_pk,
    mail_sk,
    seats_pk,
    serialize,
)
from shared.clock import from_iso, to_iso
from shared.disclosure import Holdings
from shared.funnel import CUSTOMERS_KEY, ReportCount, lead_counts, merged
from shared.jobs import REVIEW
from shared.leads import (
    Activity,
    ActivityType,
    Consent,
    Lead,
    Outcome,
    Seats,
    SendRecord,
    earliest_event,
)
from shared.machine_engagement import MailRecord
from shared.repository import (
    MAX_REVISIONS,
    Change,
    EmailTaken,
    Marker,
    Record,
    Revised,
    Revision,
    Snapshot,
    VersionConflict,
)
from shared.visits import PageView

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# How long an email's record of opens and clicks is kept (time to live).
MAIL_RECORD_DAYS = 400
# Tries of a write whose loss would repeat a message (a hand-off's marker after its
# publish) or lose one (a send's claim before SES), when the table fails to answer.
MARK_ATTEMPTS = 4
# How long an event's dedupe marker is kept: SES and SQS redeliver within days.
EVENT_MARKER_DAYS = 30


def lead_item(lead: Lead) -> dict[str, Any]:
    item: dict[str, Any] = lead.model_dump(mode="json", exclude_none=True)
    # A number, not the JSON string: engagement events ADD to it atomically.
    item.update(pk=lead_pk(lead.lead_id), sk=PROFILE, entity="lead", score_units=lead.score_units)
    # A string set, so a page view adds its group atomically (``ADD``); never empty.
    item.pop("page_groups", None)
    if lead.page_groups:
        item["page_groups"] = set(lead.page_groups)
    enrolment = lead.enrolment
    if enrolment is not None and enrolment.completed_at is None:
        item["program_id"] = enrolment.program_id
        if enrolment.step_id:
            item["step_id"] = enrolment.step_id
        if enrolment.due_at is not None and lead.mailable:
            item["due_shard"] = due_shard(lead.lead_id)
            item["due_at"] = to_iso(enrolment.due_at)
    elif lead.review_at is not None and lead.reviewed:
        item["program_id"] = REVIEW
        item["due_shard"] = due_shard(lead.lead_id)
        item["due_at"] = to_iso(lead.review_at)
    # An event's enrolment due sooner takes the index: one entry per lead, the earliest
    # (the sender finds it on the lead by its program and step); when it has been sent,
    # the write that moves it on puts the next one here.
    event_enrolment = earliest_event(lead)
    if event_enrolment is not None and event_enrolment.due_at is not None and lead.mailable:
        due_at = to_iso(event_enrolment.due_at)
        # A tie goes to the event: a registration's confirmation answers it at once.
        if "due_at" not in item or due_at <= item["due_at"]:
            item.update(
                program_id=event_enrolment.program_id,
                due_shard=due_shard(lead.lead_id),
                due_at=due_at,
            )
            item.pop("step_id", None)
            if event_enrolment.step_id:
                item["step_id"] = event_enrolment.step_id
    return item


# The attributes of a lead's entry in the due index (``lead_item``).
_DUE_KEYS = ("program_id", "step_id", "due_shard", "due_at")


def seats_of(item: Mapping[str, Any]) -> Seats:
    return Seats(
        event_id=str(item["event_id"]),
        holders=frozenset(item.get("holders", ())),
        waiting={k: from_iso(v) for k, v in (item.get("waiting") or {}).items()},
        version=int(item["version"]),
    )


def activity_item(activity: Activity) -> dict[str, Any]:
    item: dict[str, Any] = activity.model_dump(mode="json", exclude_none=True)
    item.update(
        pk=lead_pk(activity.lead_id),
        sk=f"ACT#{to_iso(activity.at)}#{activity.activity_id}",
        entity="activity",
    )
    return item


def send_item(record: SendRecord) -> dict[str, Any]:
    item: dict[str, Any] = record.model_dump(mode="json", exclude_none=True)
    item.update(pk=lead_pk(record.lead_id), sk=f"SEND#{record.key}", entity="send")
    return item


def outcome_pk(month: date) -> str:
    """The outcomes recorded in a UTC month (``OUTCOME#<yyyy-mm>``)."""
    return f"OUTCOME#{month.strftime('%Y-%m')}"


def outcome_item(record: Outcome) -> dict[str, Any]:
    item: dict[str, Any] = record.model_dump(mode="json")
    item.update(
        pk=outcome_pk(record.at.astimezone(UTC).date()),
        sk=f"{to_iso(record.at)}#{record.lead_id}",
        entity="outcome",
    )
    return item


def record_item(lead_id: str, record: Record) -> dict[str, Any]:
    if isinstance(record, Consent):
        return consent_item(lead_id, record)
    if isinstance(record, SendRecord):
        return send_item(record)
    if isinstance(record, Outcome):
        return outcome_item(record)
    return activity_item(record)


def consent_item(lead_id: str, consent: Consent) -> dict[str, Any]:
    item: dict[str, Any] = consent.model_dump(mode="json", exclude_none=True)
    item.update(
        pk=lead_pk(lead_id),
        sk=f"CONSENT#{to_iso(consent.at)}#{consent.consent_id}",
        entity="consent",
        lead_id=lead_id,
    )
    return item


def event_sk(key: str) -> str:
    """A request's dedupe marker under its lead (``EVENT#<key>``)."""
    return f"EVENT#{key}"


def _fresh(seen: Mapping[str, Any], marker: Marker) -> bool:
    """Whether a stored marker makes this request a repeat of the one that wrote it."""
    if marker.window is None:
        return True
    marked = seen.get("marked_at")
    return marked is not None and from_iso(str(marked)) >= marker.at - marker.window


def _cancelled(exc: ClientError) -> set[int] | None:
    """The indexes of a cancelled transaction's items that failed (a condition, or
    another transaction holding the item); None if the error is something else."""
    error = exc.response.get("Error", {}).get("Code")
    if error == "TransactionConflictException":
        return set()
    if error != "TransactionCanceledException":
        return None
    reasons = exc.response.get("CancellationReasons", [])
    codes = [r.get("Code", "None") for r in reasons]
    if any(code not in ("None", "ConditionalCheckFailed", "TransactionConflict") for code in codes):
        return None  # throttled or a validation error: not a conflict to re-read for
    return {i for i, code in enumerate(codes) if code != "None"}


def _without_keys(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "entity")}


# The dispositions whose change lists an outcome (``shared.leads.Outcome``).
_OUTCOMES = frozenset({"won", "lost", "rejected"})


def _json_ready(value: Any) -> Any:
    """A stored value as JSON holds it: sets as sorted lists, binary as base64, the score
    units (kept as Decimal) as their exact text."""
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, Set):
        return sorted(_json_ready(v) for v in value)
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, Binary | bytes | bytearray):
        raw = value.value if isinstance(value, Binary) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def _as_held(item: Mapping[str, Any], **identifier: str) -> dict[str, Any]:
    return {**identifier, **_json_ready(_without_keys(item))}


class DynamoLeadRepository:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- reads -------------------------------------------------------------------------

    def get(self, lead_id: str) -> Lead | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": PROFILE}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Lead.model_validate(_without_keys(deserialize(item))) if item else None

    def find_by_email(self, email: str) -> Lead | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": email_pk(email), "sk": "EMAIL"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        return self.get(str(deserialize(item)["lead_id"]))

    def timeline(self, lead_id: str, limit: int = 100) -> list[Activity]:
        return [
            Activity.model_validate(_without_keys(item))
            for item in self._query_prefix(lead_id, "ACT#", limit)
        ]

    def history(self, lead_id: str) -> list[Activity]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id), ":prefix": "ACT#"}),
        )
        return [
            Activity.model_validate(_without_keys(deserialize(item)))
            for page in pages
            for item in page.get("Items", [])
        ]

    def outcomes(self, start: date, end: date) -> list[Outcome]:
        found: list[Outcome] = []
        month = start.replace(day=1)
        while month <= end:
            pages = self._client.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues=serialize(
                    {
                        ":pk": outcome_pk(month),
                        ":from": start.isoformat(),
                        ":to": (end + timedelta(days=1)).isoformat(),
                    }
                ),
            )
            found.extend(
                Outcome.model_validate(_without_keys(deserialize(item)))
                for page in pages
                for item in page.get("Items", [])
            )
            month = (month + timedelta(days=32)).replace(day=1)
        return found

    def consents(self, lead_id: str) -> list[Consent]:
        return [
            Consent.model_validate(_without_keys(item))
            for item in self._query_prefix(lead_id, "CONSENT#", 100)
        ]

    def holdings(self, lead_id: str) -> Holdings | None:
        """Everything under the lead (one Query, every page, read consistently so that a
        change just made is in it), then what is kept about it elsewhere in one
        BatchGetItem: its address's claim and erasure mark, and the outcome each of its
        won, lost or rejected dispositions listed (same time, same change)."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id)}),
            ConsistentRead=True,
        )
        items = [deserialize(item) for page in pages for item in page.get("Items", [])]
        profile = next((item for item in items if item["sk"] == PROFILE), None)
        if profile is None:
            return None
        lead = Lead.model_validate(_without_keys(profile))
        consents: list[Consent] = []
        activities: list[Activity] = []
        kinds: dict[str, list[dict[str, Any]]] = {
            "SEND": [],
            "MAIL": [],
            "HANDOFF": [],
            "ALERT": [],
            "EVENT": [],
            "other": [],
        }
        for item in items:
            sk = str(item["sk"])
            if sk == PROFILE:
                continue
            kind, _, rest = sk.partition("#")
            if kind == "ACT":
                activities.append(Activity.model_validate(_without_keys(item)))
            elif kind == "CONSENT":
                consents.append(Consent.model_validate(_without_keys(item)))
            elif kind in ("SEND", "MAIL"):
                kinds[kind].append(_as_held(item))  # the key and message id are attributes
            elif kind == "HANDOFF":
                kinds[kind].append(_as_held(item, handoff_id=rest))
            elif kind == "ALERT":
                kinds[kind].append(_as_held(item, kind=rest))
            elif kind == "EVENT":
                kinds[kind].append(_as_held(item, key=rest))
            else:
                kinds["other"].append(_as_held(item, sort_key=sk))
        claim = {"pk": email_pk(lead.email), "sk": "EMAIL"}
        erased = {"pk": erased_pk(lead.email), "sk": "ERASED"}
        outcomes = [
            {
                "pk": outcome_pk(a.at.astimezone(UTC).date()),
                "sk": f"{to_iso(a.at)}#{lead_id}",
            }
            for a in activities
            if a.type is ActivityType.STAGE_CHANGED and a.details.get("disposition") in _OUTCOMES
        ]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        keys = [claim, erased, *outcomes]
        for start in range(0, len(keys), 100):  # BatchGetItem's limit
            found.update(self._batch_get(keys[start : start + 100]))
        owner = found.get((claim["pk"], claim["sk"]))
        return Holdings(
            lead=lead,
            consents=consents,
            activities=activities,
            sends=kinds["SEND"],
            emails=kinds["MAIL"],
            handoffs=kinds["HANDOFF"],
            alerts=kinds["ALERT"],
            markers=kinds["EVENT"],
            outcomes=[
                _as_held(found[(k["pk"], k["sk"])]) for k in outcomes if (k["pk"], k["sk"]) in found
            ],
            # The claim names the lead that owns the address: only this lead's is its own.
            address_claim=(
                _as_held(owner, email=str(owner["pk"]).removeprefix("EMAIL#"))
                if owner and owner.get("lead_id") == lead_id
                else None
            ),
            address_erased=(erased["pk"], erased["sk"]) in found,
            other=kinds["other"],
        )

    def _query_prefix(self, lead_id: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id), ":prefix": prefix}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [deserialize(item) for item in response.get("Items", [])]

    def seats(self, event_id: str) -> Seats:
        """An event's seats as they stand (empty before its first registration)."""
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": seats_pk(event_id), "sk": SEATS_SK}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return seats_of(deserialize(item)) if item else Seats(event_id=event_id)

    def save_seats(self, seats: Seats) -> None:
        """Write the seats alone, conditional on the version read (``VersionConflict``):
        a waiting lead that is gone (erased) is taken off the list this way."""
        try:
            self._client.put_item(**self._seats_put(seats))
        except ClientError as exc:
            if condition_failed(exc):
                raise VersionConflict(seats.event_id) from exc
            raise

    def lead_of(self, email: str) -> tuple[str | None, bool]:
        claim = {"pk": email_pk(email), "sk": "EMAIL"}
        erased = {"pk": erased_pk(email), "sk": "ERASED"}
        found = self._batch_get([claim, erased])
        owner = found.get((claim["pk"], claim["sk"]))
        return (str(owner["lead_id"]) if owner else None), (erased["pk"], "ERASED") in found

    def _batch_get(self, keys: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Items by (pk, sk), read consistently in one call (retrying what DynamoDB left
        unprocessed, which only happens under throttling)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request: dict[str, Any] = {
            self._table: {"Keys": [serialize(k) for k in keys], "ConsistentRead": True}
        }
        for attempt in range(10):
            response = self._client.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(self._table, []):
                item = deserialize(raw)
                found[(str(item["pk"]), str(item["sk"]))] = item
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                return found
            time.sleep(min(0.05 * 2**attempt, 1.0))  # the table is throttling: back off
        raise RuntimeError("reads were not done (throttled)")

    def _read(
        self, lead_id: str, marker: Marker | None, mail: str | None, seats: str | None = None
    ) -> tuple[Snapshot, dict[str, Any] | None]:
        pk = lead_pk(lead_id)
        if marker is None and mail is None and seats is None:
            return Snapshot(self.get(lead_id)), None
        keys = [{"pk": pk, "sk": PROFILE}]
        if mail is not None:
            keys.append({"pk": pk, "sk": mail_sk(mail)})
        if marker is not None:
            keys.append({"pk": pk, "sk": event_sk(marker.key)})
        if seats is not None:
            keys.append({"pk": seats_pk(seats), "sk": SEATS_SK})
        found = self._batch_get(keys)
        profile = found.get((pk, PROFILE))
        lead = Lead.model_validate(_without_keys(profile)) if profile else None
        record = found.get((pk, mail_sk(mail))) if mail is not None else None
        mail_record = (
            MailRecord.model_validate({**_without_keys(record), "lead_id": lead_id})
            if record
            else None
        )
        seen = found.get((pk, event_sk(marker.key))) if marker is not None else None
        held = None
        if seats is not None:
            item = found.get((seats_pk(seats), SEATS_SK))
            held = seats_of(item) if item else Seats(event_id=seats)
        return Snapshot(lead, mail_record, held), seen

    def revise(
        self,
        lead_id: str,
        change: Change,
        *,
        marker: Marker | None = None,
        mail: str | None = None,
        seats: str | None = None,
        known: Snapshot | None = None,
        error_retries: int = 0,
        max_revisions: int = MAX_REVISIONS,
    ) -> Revised:
        errors = 0
        for attempt in range(max_revisions + error_retries):
            seen: dict[str, Any] | None = None
            if known is not None and attempt == 0:
                snapshot = known
            else:
                snapshot, seen = self._read(lead_id, marker, mail, seats)
            if marker is not None and seen is not None and _fresh(seen, marker):
                return Revised(snapshot.lead, duplicate=True, note=seen.get("note") or {})
            revision = change(snapshot)
            if revision is None:
                return Revised(snapshot.lead)
            before = snapshot.lead
            version = before.version + 1 if before is not None else revision.lead.version
            after = revision.lead.model_copy(update={"version": version})
            try:
                self._commit(before, after, revision, marker)
            except VersionConflict:
                # Writers of one lead collide in rounds: a random pause spreads the next one.
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311
                continue
            except (ClientError, BotoCoreError):
                errors += 1
                if errors > error_retries:
                    raise
                known = None  # it may have committed: read again
                time.sleep(0.05 * 2**errors)
                continue
            return Revised(before, after, revision, note=revision.note)
        raise VersionConflict(lead_id)

    def _commit(
        self, before: Lead | None, after: Lead, revision: Revision, marker: Marker | None
    ) -> None:
        """One transaction (or one UpdateItem when the lead alone changes)."""
        lead_id = after.lead_id
        items: list[TransactWriteItemTypeDef] = []
        claim_at = None
        if before is None:
            claim_at = len(items)
            items.append({"Put": self._email_claim(after)})
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": serialize(lead_item(after)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        else:
            update = self._profile_update(before, after)
            if update is not None:
                items.append({"Update": update})  # type: ignore[typeddict-item]
            else:
                # Nothing on the lead changed: its records are still written beside it
                # only (never left behind by an erasure).
                items.append(
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": serialize({"pk": lead_pk(lead_id), "sk": PROFILE}),
                            "ConditionExpression": "version = :expected",
                            "ExpressionAttributeValues": serialize({":expected": before.version}),
                        }
                    }
                )
        if marker is not None:
            items.append({"Put": self._marker_put(lead_id, marker, revision.note)})
        if revision.mail is not None:
            items.append({"Put": self._mail_put(revision.mail, after.updated_at)})
        if revision.seats is not None:
            items.append({"Put": self._seats_put(revision.seats)})
        items.extend(self._record_puts(lead_id, revision.records))
        # The counts the change of the lead implies (stage, list), with the revision's own.
        counts = merged([*revision.counts, *lead_counts(before, after)])
        items.extend({"Update": self._count_update(c, lead_id)} for c in counts)
        if len(items) == 1 and "Update" in items[0]:
            try:
                self._client.update_item(**items[0]["Update"])
            except ClientError as exc:
                if condition_failed(exc):
                    raise VersionConflict(lead_id) from exc
                raise
            return
        if len(items) == 1 and "ConditionCheck" in items[0]:
            return  # nothing to write (the read found the lead as it is)
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            failed = _cancelled(exc)
            if failed is None:
                raise
            if claim_at is not None and claim_at in failed:
                raise EmailTaken(lead_id) from exc
            # The lead or the email's record changed, the marker appeared, or another
            # transaction held an item: read again (a new marker makes it a duplicate).
            raise VersionConflict(lead_id) from exc

    def _email_claim(self, lead: Lead) -> Any:
        return {
            "TableName": self._table,
            "Item": serialize(
                {
                    "pk": email_pk(lead.email),
                    "sk": "EMAIL",
                    "entity": "email",
                    "lead_id": lead.lead_id,
                }
            ),
            "ConditionExpression": "attribute_not_exists(pk)",
        }

    def _profile_update(self, before: Lead, after: Lead) -> dict[str, Any] | None:
        """Only the attributes that changed (SET or REMOVE), conditional on the version:
        never the whole profile."""
        old, new = lead_item(before), lead_item(after)
        changed = [k for k in new if k != "version" and old.get(k) != new[k]]
        removed = [k for k in old if k not in new]
        if set(_DUE_KEYS) & {*changed, *removed}:
            # The lead moved on: its due entry is written whole, so a lease the scheduler
            # put on ``due_at`` does not outlive the step it was for (the next one may be
            # due at the same instant).
            changed += [k for k in _DUE_KEYS if k in new and k not in changed]
        if not changed and not removed:
            return None
        names = {f"#a{i}": k for i, k in enumerate([*changed, *removed, "version"])}
        alias = {k: a for a, k in names.items()}
        values: dict[str, Any] = {f":v{i}": new[k] for i, k in enumerate(changed)}
        values[":version"] = after.version
        values[":expected"] = before.version
        sets = [f"{alias[k]} = :v{i}" for i, k in enumerate(changed)]
        sets.append(f"{alias['version']} = :version")
        expression = "SET " + ", ".join(sets)
        if removed:
            expression += " REMOVE " + ", ".join(alias[k] for k in removed)
        return {
            "TableName": self._table,
            "Key": serialize({"pk": lead_pk(after.lead_id), "sk": PROFILE}),
            "UpdateExpression": expression,
            "ConditionExpression": f"{alias['version']} = :expected",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
        }

    def _marker_put(self, lead_id: str, marker: Marker, note: Mapping[str, Any]) -> Any:
        keep = marker.window or timedelta(days=EVENT_MARKER_DAYS)
        item: dict[str, Any] = {
            "pk": lead_pk(lead_id),
            "sk": event_sk(marker.key),
            "entity": "marker",
            "marked_at": to_iso(marker.at),
            "expires_at": int((marker.at + keep).timestamp()) + 86400,
        }
        if marker.lasting:
            del item["expires_at"]
        if note:
            item["note"] = dict(note)
        put: dict[str, Any] = {"TableName": self._table, "Item": serialize(item)}
        if marker.window is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "attribute_not_exists(pk) OR marked_at < :cutoff"
            put["ExpressionAttributeValues"] = serialize(
                {":cutoff": to_iso(marker.at - marker.window)}
            )
        return put

    def _mail_put(self, record: MailRecord, at: datetime) -> Any:
        item = {
            "pk": lead_pk(record.lead_id),
            "sk": mail_sk(record.message_id),
            **record.model_dump(mode="json", exclude={"lead_id"}),
            # Kept a little longer than anything that reads it: late clicks, reports.
            "expires_at": int(at.timestamp()) + MAIL_RECORD_DAYS * 86400,
        }
        put: dict[str, Any] = {"TableName": self._table, "Item": serialize(item)}
        if record.version <= 1:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :seen"
            put["ExpressionAttributeValues"] = serialize({":seen": record.version - 1})
        return put

    def _seats_put(self, seats: Seats) -> Any:
        """The event's seats, conditional on the version read (two registrations for the
        last place: one commits, the other reads again and waits)."""
        item: dict[str, Any] = {
            "pk": seats_pk(seats.event_id),
            "sk": SEATS_SK,
            "entity": "seats",
            "event_id": seats.event_id,
            "waiting": {k: to_iso(v) for k, v in seats.waiting.items()},
            "version": seats.version + 1,
        }
        if seats.holders:
            item["holders"] = set(seats.holders)  # a string set is never empty
        put: dict[str, Any] = {"TableName": self._table, "Item": serialize(item)}
        if seats.version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :seen"
            put["ExpressionAttributeValues"] = serialize({":seen": seats.version})
        return put

    def _count_update(self, count: ReportCount, lead_id: str) -> Any:
        metrics = sorted(count.metrics.items())
        return {
            "TableName": self._table,
            "Key": serialize({"pk": counter_pk(count.day), "sk": counter_sk(count.key, lead_id)}),
            "UpdateExpression": "ADD " + ", ".join(f"#m{i} :m{i}" for i in range(len(metrics))),
            "ExpressionAttributeNames": {f"#m{i}": name for i, (name, _) in enumerate(metrics)},
            "ExpressionAttributeValues": serialize(
                {f":m{i}": by for i, (_, by) in enumerate(metrics)}
            ),
        }

    # -- writes ------------------------------------------------------------------------

    def _batch_write(self, requests: list[Any]) -> None:
        """BatchWriteItem in chunks of 25, retrying what DynamoDB left unprocessed."""
        pending, throttled = list(requests), 0
        while pending:
            batch, pending = pending[:25], pending[25:]
            response = self._client.batch_write_item(RequestItems={self._table: batch})
            unprocessed = list(response.get("UnprocessedItems", {}).get(self._table, []))
            if unprocessed:
                throttled += 1
                if throttled > 10:
                    raise RuntimeError(f"{len(unprocessed)} writes were not done (throttled)")
                time.sleep(min(0.05 * 2**throttled, 1.0))  # the table is throttling: back off
            pending = unprocessed + pending

    def erase(self, lead_id: str) -> bool:
        """The suppression first, the profile last: a deletion stopped half-way leaves the
        address refused and the profile in place, so the retry finds it and finishes."""
        lead = self.get(lead_id)
        if lead is None:
            return False
        self._client.put_item(
            TableName=self._table,
            Item=serialize({"pk": erased_pk(lead.email), "sk": "ERASED", "entity": "erased"}),
        )
        keys: list[dict[str, Any]] = [{"pk": email_pk(lead.email), "sk": "EMAIL"}]
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id)}),
            ProjectionExpression="pk, sk",
            ConsistentRead=True,
        )
        keys.extend(
            found
            for page in pages
            for found in map(deserialize, page.get("Items", []))
            if found["sk"] != PROFILE
        )
        self._batch_write([{"DeleteRequest": {"Key": serialize(k)}} for k in keys])
        key = serialize({"pk": lead_pk(lead_id), "sk": PROFILE})
        if lead.rank is None:
            self._client.delete_item(TableName=self._table, Key=key)
            return True
        # A customer leaves its segment's running total with its profile, in one write:
        # a retry finds the profile gone and counts nothing again.
        held = ReportCount(None, CUSTOMERS_KEY, {lead.rank.segment: -1})
        items: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": key,
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {"Update": self._count_update(held, lead_id)},
        ]
        for attempt in range(MAX_REVISIONS):
            try:
                self._client.transact_write_items(TransactItems=items)
                return True
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return True  # deleted already (a retry of this erasure): counted then
                if _cancelled(exc) is None:
                    raise
                time.sleep(min(0.02 * 2**attempt, 0.5))  # another write held an item
        raise VersionConflict(lead_id)

    def _record_puts(
        self, lead_id: str, records: Sequence[Record]
    ) -> list[TransactWriteItemTypeDef]:
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": serialize(record_item(lead_id, r)),
                }
            }
            for r in records
        ]


class DynamoSendLedger:
    """Send records (``SEND#<key>`` under the lead) with conditional creation."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, lead_id: str, key: str, at: datetime) -> SendRecord | None:
        """A claim carries its own id: when the table fails to answer, the claim is tried
        again in place, and a record found with that id is this caller's own claim (its
        answer was lost), not another run's."""
        record = SendRecord(lead_id=lead_id, key=key, status="sending", at=at)
        claim_id = uuid.uuid4().hex
        attempt = 0
        while True:
            try:
                return self._claim_once(record, claim_id)
            except (ClientError, BotoCoreError):
                attempt += 1
                if attempt == MARK_ATTEMPTS:
                    raise
                time.sleep(0.05 * 2**attempt)

    def _claim_once(self, record: SendRecord, claim_id: str) -> SendRecord | None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize({**send_item(record), "claim_id": claim_id}),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old: Any = exc.response.get("Item")
            found = _without_keys(deserialize(old)) if old else {}
            if found.get("claim_id") == claim_id and found.get("status") == "sending":
                return None  # our own claim, whose first answer was lost
            return SendRecord.model_validate({**record.model_dump(), **found})
        return None

    def release(self, lead_id: str, key: str) -> None:
        self._client.delete_item(
            TableName=self._table,
            Key=serialize({"pk": lead_pk(lead_id), "sk": f"SEND#{key}"}),
            ConditionExpression="#status = :sending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialize({":sending": "sending"}),
        )


class DynamoHandoffLedger:
    """One marker per qualification, so a retried stream batch does not publish twice."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, lead_id: str, handoff_id: str) -> dict[str, Any]:
        return serialize({"pk": lead_pk(lead_id), "sk": f"HANDOFF#{handoff_id}"})

    def published(self, lead_id: str, handoff_id: str) -> bool:
        response = self._client.get_item(
            TableName=self._table, Key=self._key(lead_id, handoff_id), ConsistentRead=True
        )
        return "Item" in response

    def mark_published(self, lead_id: str, handoff_id: str, message_id: str) -> None:
        """Tried again here when the table fails to answer (the Put is idempotent): a
        stream retry after a published message would reach sales a second time."""
        for attempt in range(MARK_ATTEMPTS):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **self._key(lead_id, handoff_id),
                        **serialize({"message_id": message_id}),
                    },
                )
                return
            except (ClientError, BotoCoreError):
                if attempt + 1 == MARK_ATTEMPTS:
                    raise
                time.sleep(0.05 * 2**attempt)


def visitor_pk(visitor_id: str) -> str:
    """An anonymous website visitor (``VISITOR#<id>``): its link to a lead and its views."""
    return f"VISITOR#{visitor_id}"


VISITOR_LINK = "LINK"
# How long a visitor's link to its lead is kept after it was last made.
VISITOR_LINK_DAYS = 400
REVISIT_ALERT = "ALERT#revisit"


class DynamoVisitStore:
    """Page views under the visitor (``VISIT#<view id>``, with a TTL), the visitor's link
    to its lead, and the lead's revisit-alert claim. An anonymous view is one GetItem
    (the link, eventually consistent) and one PutItem."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def linked_lead(self, visitor_id: str, *, consistent: bool = False) -> str | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": visitor_pk(visitor_id), "sk": VISITOR_LINK}),
            ProjectionExpression="lead_id",
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return str(deserialize(item)["lead_id"]) if item else None

    def put_view(self, view: PageView, expires_at: datetime) -> bool:
        item = {
            "pk": visitor_pk(view.visitor_id),
            "sk": f"VISIT#{view.view_id}",
            "entity": "visit",
            **view.as_item(),
            "expires_at": int(expires_at.timestamp()),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def view(self, visitor_id: str, view_id: str) -> PageView | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=serialize({"pk": visitor_pk(visitor_id), "sk": f"VISIT#{view_id}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _page_view(deserialize(item)) if item else None

    def views_since(self, visitor_id: str, since: datetime) -> list[PageView]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :visit)",
            ExpressionAttributeValues=serialize(
                {":pk": visitor_pk(visitor_id), ":visit": "VISIT#"}
            ),
            ConsistentRead=True,
        )
        views = [_page_view(deserialize(item)) for page in pages for item in page.get("Items", [])]
        # TTL deletes lazily: an expired view may still be read, never attributed.
        return [v for v in views if v.at >= since]

    def link(self, visitor_id: str, lead_id: str, at: datetime, via: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=serialize(
                {
                    "pk": visitor_pk(visitor_id),
                    "sk": VISITOR_LINK,
                    "entity": "visitor",
                    "lead_id": lead_id,
                    "linked_at": to_iso(at),
                    "via": via,
                    "expires_at": int(at.timestamp()) + VISITOR_LINK_DAYS * 86400,
                }
            ),
        )

    def claim_alert(
        self, lead_id: str, at: datetime, period: timedelta
    ) -> tuple[bool, datetime | None]:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=serialize({"pk": lead_pk(lead_id), "sk": REVISIT_ALERT}),
                UpdateExpression="SET last_at = :at, expires_at = :expires",
                ConditionExpression="attribute_not_exists(last_at) OR last_at <= :cutoff",
                ExpressionAttributeValues=serialize(
                    {
                        ":at": to_iso(at),
                        ":cutoff": to_iso(at - period),
                        ":expires": int((at + period).timestamp()) + 86400,
                    }
                ),
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False, None
            raise
        previous = deserialize(response.get("Attributes") or {}).get("last_at")
        return True, from_iso(previous) if previous else None

    def release_alert(self, lead_id: str, at: datetime, previous: datetime | None) -> None:
        key = serialize({"pk": lead_pk(lead_id), "sk": REVISIT_ALERT})
        try:
            if previous is None:
                self._client.delete_item(
                    TableName=self._table,
                    Key=key,
                    ConditionExpression="last_at = :at",
                    ExpressionAttributeValues=serialize({":at": to_iso(at)}),
                )
            else:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET last_at = :previous",
                    ConditionExpression="last_at = :at",
                    ExpressionAttributeValues=serialize(
                        {":at": to_iso(at), ":previous": to_iso(previous)}
                    ),
                )
        except ClientError as exc:
            if not condition_failed(exc):
                raise


def _page_view(item: Mapping[str, Any]) -> PageView:
    return PageView(
        visitor_id=str(item["visitor_id"]),
        view_id=str(item["view_id"]),
        url=str(item["url"]),
        path=str(item["path"]),
        title=str(item.get("title", "")),
        seconds=int(item.get("seconds", 0)),
        at=from_iso(str(item["at"])),
        referrer=item.get("referrer"),
    )

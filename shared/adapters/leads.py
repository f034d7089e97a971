"""The lead repository on the table: every change of a lead through ``revise`` (one read,
one conditional write with everything the change records), its timeline and records,
a disclosure's holdings, an event's seats and erasure (the items: ``shared.adapters.items``)."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.adapters.attributes import Binary
from shared.adapters.codecs import (
    DUE_KEYS,
    event_sk,
    lead_item,
    outcome_pk,
    record_item,
    seats_of,
    without_keys,
)
from shared.adapters.items import (
    PROFILE,
    SEATS_SK,
    condition_failed,
    counter_pk,
    counter_sk,
    deserialize,
    email_pk,
    erased_pk,
    lead_pk,
    mail_sk,
    seats_pk,
    serialize,
)
from shared.domain.clock import from_iso, to_iso
from shared.domain.funnel import CUSTOMERS_KEY, ReportCount, lead_counts, merged
from shared.domain.leads import (
    Activity,
    ActivityType,
    Consent,
    Lead,
    Outcome,
    Seats,
)
from shared.domain.machine_engagement import MailRecord
from shared.ports import (
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
from shared.services.disclosure import Holdings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


# How long an email's record of opens and clicks is kept (time to live).
MAIL_RECORD_DAYS = 400
# How long an event's dedupe marker is kept: SES and SQS redeliver within days.
EVENT_MARKER_DAYS = 30


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


# The dispositions whose change lists an outcome (``shared.domain.leads.Outcome``).
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
    return {**identifier, **_json_ready(without_keys(item))}


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
        return Lead.model_validate(without_keys(deserialize(item))) if item else None

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
            Activity.model_validate(without_keys(item))
            for item in self._query_prefix(lead_id, "ACT#", limit)
        ]

    def history(self, lead_id: str) -> list[Activity]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize({":pk": lead_pk(lead_id), ":prefix": "ACT#"}),
        )
        return [
            Activity.model_validate(without_keys(deserialize(item)))
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
                Outcome.model_validate(without_keys(deserialize(item)))
                for page in pages
                for item in page.get("Items", [])
            )
            month = (month + timedelta(days=32)).replace(day=1)
        return found

    def consents(self, lead_id: str) -> list[Consent]:
        return [
            Consent.model_validate(without_keys(item))
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
        lead = Lead.model_validate(without_keys(profile))
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
                activities.append(Activity.model_validate(without_keys(item)))
            elif kind == "CONSENT":
                consents.append(Consent.model_validate(without_keys(item)))
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
        lead = Lead.model_validate(without_keys(profile)) if profile else None
        record = found.get((pk, mail_sk(mail))) if mail is not None else None
        mail_record = (
            MailRecord.model_validate({**without_keys(record), "lead_id": lead_id})
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
        if set(DUE_KEYS) & {*changed, *removed}:
            # The lead moved on: its due entry is written whole, so a lease the scheduler
            # put on ``due_at`` does not outlive the step it was for (the next one may be
            # due at the same instant).
            changed += [k for k in DUE_KEYS if k in new and k not in changed]
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

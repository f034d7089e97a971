"""What a run left behind, made comparable between runs, and the invariants it must keep.

A snapshot reads the whole table (as a Scan would), the emails moto's SES sent
and the messages sales received, and normalises them: lead ids become the lead's
address, other random ids (activities, consents, SES and SNS messages) and instants
become placeholders, and what only counts writes (``version``) or follows from a
random id or an instant (``due_shard``, ``expires_at``) is left out. Two runs of a
scenario, one with a fault and its retries and one without, must leave equal snapshots.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

from infra.local.functions import REGION
from infra.local.state import moto_sent_mail
from shared.adapters.items import counter_key, deserialize
from shared.domain.normalize import email_key
from tests.faults.system import System

LEFT_OUT = frozenset({"version", "expires_at", "due_shard"})
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
# moto's SES message ids: random lower-case letters and digits, 16-8-4-4-4-12-6.
SES_ID = re.compile(r"\b[0-9a-z]{16}-[0-9a-z]{8}(?:-[0-9a-z]{4}){3}-[0-9a-z]{12}-[0-9a-z]{6}\b")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
# Sort key prefix -> the group its items are compared in.
GROUPS = (
    ("EMAIL", "email claim"),
    ("CONSENT#", "consent record"),
    ("SEND#", "send record"),
    ("EVENT#", "event marker"),
    ("CAP#", "daily cap"),
    ("MAIL#", "email record"),
    ("HANDOFF#", "hand-off marker"),
    ("ALERT#", "revisit alert"),
    ("ERASED", "erasure"),
    ("LINK", "visitor link"),
    ("VISIT#", "page view"),
)


@dataclass
class Snapshot:
    groups: dict[str, Counter[str]] = field(default_factory=dict)  # normalised items
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # by address
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # "pk sk" -> metrics
    mail: list[tuple[str, str]] = field(default_factory=list)  # (to, subject) per email
    sales: list[dict[str, Any]] = field(default_factory=list)  # what sales received
    violations: list[str] = field(default_factory=list)

    def add(self, group: str, item: Any) -> None:
        self.groups.setdefault(group, Counter())[_text(item)] += 1

    def count(self, group: str) -> int:
        return sum(self.groups.get(group, Counter()).values())

    def stage(self, address: str) -> str | None:
        profile = self.profiles.get(email_key(address))
        return None if profile is None else str(profile["stage"])


def _text(item: Any) -> str:
    return json.dumps(item, ensure_ascii=False, sort_keys=True, default=str)


class _Normaliser:
    """Replaces the run's random ids and instants with stable placeholders."""

    def __init__(self, leads: Mapping[str, str]) -> None:
        self._leads = leads  # lead id -> address

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for lead_id, address in self._leads.items():
                value = value.replace(lead_id, f"<lead {address}>")
            for pattern, placeholder in (
                (INSTANT, "<time>"),
                (SES_ID, "<message>"),
                (UUID, "<id>"),
                (HEX_ID, "<id>"),
            ):
                value = pattern.sub(placeholder, value)
            return value
        if isinstance(value, Mapping):
            return {self(k): self(v) for k, v in value.items() if k not in LEFT_OUT}
        if isinstance(value, set | frozenset):
            return sorted((self(v) for v in value), key=_text)
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def take(system: System) -> Snapshot:
    """The run's snapshot (it takes the messages off the sales inbox: once per run)."""
    items = [deserialize(raw) for raw in system.table_items()]
    profiles = {str(i["lead_id"]): i for i in items if i["sk"] == "PROFILE"}
    addresses = {lead_id: email_key(str(p["email"])) for lead_id, p in profiles.items()}
    normalised = _Normaliser(addresses)
    snapshot = Snapshot()

    for item in items:
        pk, sk = str(item["pk"]), str(item["sk"])
        if pk.startswith("COUNTER#"):
            # Shards are by lead id, which differs from run to run: compare the sums.
            summed = snapshot.counters.setdefault(f"{pk} {counter_key(sk)}", {})
            for k, v in item.items():
                if k not in ("pk", "sk"):
                    summed[k] = summed.get(k, 0) + int(v)
        elif sk == "PROFILE":
            snapshot.profiles[addresses[str(item["lead_id"])]] = normalised(item)
        elif sk.startswith("ACT#"):
            snapshot.add(f"activity:{item['type']}", normalised(item))
        elif pk.startswith("OUTCOME#"):
            snapshot.add("outcome", normalised(item))
        else:
            group = next((g for prefix, g in GROUPS if sk.startswith(prefix)), f"item:{sk}")
            snapshot.add(group, normalised(item))

    sent = moto_sent_mail(REGION)
    for mail in sent:
        data = mail["raw_data"]
        raw = data if isinstance(data, bytes) else str(data).encode()
        subject = str(message_from_bytes(raw, policy=policy.default)["Subject"])
        to = _recipients(mail)
        snapshot.mail.append((to, subject))
        snapshot.add("ses email", {"to": to, "subject": subject})

    for envelope in system.sales_inbox():
        message = json.loads(envelope["Message"])
        snapshot.sales.append(message)
        snapshot.add("sales message", normalised({"subject": envelope.get("Subject"), **message}))

    snapshot.violations = _violations(items, profiles, sent, snapshot)
    return snapshot


def _recipients(mail: Mapping[str, Any]) -> str:
    return ",".join(sorted({email_key(str(d)) for d in mail["destinations"]}))


def _violations(
    items: list[dict[str, Any]],
    profiles: Mapping[str, dict[str, Any]],
    sent: list[dict[str, Any]],
    snapshot: Snapshot,
) -> list[str]:
    """The invariants every run must keep, whatever happened to it."""
    found: list[str] = []

    # No lead lost or duplicated: one profile per address, and its address claimed by it.
    claims = {str(i["pk"]): str(i["lead_id"]) for i in items if i["sk"] == "EMAIL"}
    per_address = Counter(email_key(str(p["email"])) for p in profiles.values())
    found += [f"{n} profiles for {a}" for a, n in per_address.items() if n > 1]
    for lead_id, profile in profiles.items():
        if claims.get(f"EMAIL#{email_key(str(profile['email']))}") != lead_id:
            found.append(f"the address of {profile['email']} is not claimed by its profile")
    found += [
        f"{pk} claims a lead with no profile" for pk, i in claims.items() if i not in profiles
    ]

    # At most one email per lead and step; every email sent recorded as sent.
    found += [
        f"mailed twice: {to} got {subject!r} {n} times"
        for (to, subject), n in Counter(snapshot.mail).items()
        if n > 1
    ]
    recorded = {
        str(i["details"].get("message_id")): i
        for i in items
        if i.get("type") == "email_sent" and i.get("details")
    }
    completed = {
        str(i.get("message_id"))
        for i in items
        if str(i["sk"]).startswith("SEND#") and i.get("status") == "sent"
    }
    for mail in sent:
        to, activity = _recipients(mail), recorded.get(str(mail["id"]))
        if activity is None:
            found.append(f"an email to {to} went out with no email_sent activity")
            continue
        if str(mail["id"]) not in completed:
            found.append(f"the email to {to} has no send record with status 'sent'")
        profile = profiles.get(str(activity["lead_id"])) or {}
        if activity["at"] not in (profile.get("recent_sends") or []):
            found.append(f"the email to {to} is not in the lead's recent_sends")
    found += [
        f"a send record is stuck in 'sending' ({i['sk']})"
        for i in items
        if str(i["sk"]).startswith("SEND#") and i.get("status") == "sending"
    ]

    # One hand-off per qualification.
    handoffs = Counter(str(m.get("handoff_id")) for m in snapshot.sales)
    found += [f"handed to sales {n} times ({h})" for h, n in handoffs.items() if n > 1]

    # Nothing left under a lead that is gone (an erasure deletes everything).
    orphans = Counter(
        str(i["pk"])
        for i in items
        if str(i["pk"]).startswith("LEAD#") and str(i["pk"])[5:] not in profiles
    )
    found += [f"{n} items left under {pk}, which has no profile" for pk, n in orphans.items()]
    return found


def differences(
    control: Snapshot, run: Snapshot, tolerated: frozenset[str] = frozenset()
) -> list[str]:
    """How ``run`` differs from the fault-free ``control``, in words."""
    found: list[str] = []
    for address in sorted(set(control.profiles) | set(run.profiles)):
        want, got = control.profiles.get(address), run.profiles.get(address)
        if want is None or got is None:
            found.append(f"profile of {address}: {'missing' if got is None else 'unexpected'}")
        else:
            for key in sorted(set(want) | set(got)):
                found += _changes(f"profile of {address}: {key}", want.get(key), got.get(key))
    for key in sorted(set(control.counters) | set(run.counters)):
        want_metrics, got_metrics = control.counters.get(key, {}), run.counters.get(key, {})
        for metric in sorted(set(want_metrics) | set(got_metrics)):
            want_n, got_n = want_metrics.get(metric, 0), got_metrics.get(metric, 0)
            if want_n != got_n:
                found.append(f"counter {key} {metric} = {got_n}, fault-free {want_n}")
    for group in sorted((set(control.groups) | set(run.groups)) - tolerated):
        want_items = control.groups.get(group, Counter())
        got_items = run.groups.get(group, Counter())
        if want_items != got_items:
            line = f"{group}: {run.count(group)}, fault-free {control.count(group)}"
            if extra := got_items - want_items:
                line += f"; extra {_short(next(iter(extra)))}"
            if missing := want_items - got_items:
                line += f"; missing {_short(next(iter(missing)))}"
            found.append(line)
    return found


def _changes(path: str, want: Any, got: Any) -> list[str]:
    """The leaves where ``got`` differs from ``want``, by their path."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        return [
            change
            for key in sorted(set(want) | set(got))
            for change in _changes(f"{path}.{key}", want.get(key), got.get(key))
        ]
    if want == got:
        return []
    return [f"{path} is {_short(got)}, fault-free {_short(want)}"]


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else _text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

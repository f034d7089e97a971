"""Disclosure of everything held about one lead (開示請求 under the APPI), as one JSON document.

What the table keeps under the lead (the profile, every consent record, the whole
timeline, send records, email records, hand-off, request and alert markers) and what
it keeps about the lead elsewhere (its address's claim and erasure mark, the outcomes
sales recorded) are read through ``LeadRecords`` and written out in named sections.
Items of a kind no section names appear under ``other_records``, so a new kind of item
is never left out of a disclosure for being new. Pure: no AWS here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from shared.domain.clock import Clock, to_iso
from shared.domain.leads import Activity, Consent, Lead

if TYPE_CHECKING:
    # The table's adapter imports this module: functions that never score stay light.
    from shared.domain.scoring import ScoringRules

# Goes up when a section changes shape, so that readers can tell older exports apart.
SCHEMA_VERSION = 1
TOKYO = ZoneInfo("Asia/Tokyo")
NOTES = {
    "ja": (
        "当社がこのリードについて保有する記録です。記録の日時は協定世界時（末尾 Z）、"
        "exported_at は日本時間です。score は出力時点で計算した値です。"
    ),
    "en": (
        "The records we hold about this lead. Record times are UTC (ending in Z); "
        "exported_at is Japan time. The score is computed at the time of the export."
    ),
}
Item = Mapping[str, Any]


@dataclass(frozen=True)
class Holdings:
    """Everything stored about one lead, records oldest first, each as stored (with the
    identifier its key carries)."""

    lead: Lead
    consents: Sequence[Consent] = ()
    activities: Sequence[Activity] = ()
    sends: Sequence[Item] = ()
    emails: Sequence[Item] = ()
    handoffs: Sequence[Item] = ()
    alerts: Sequence[Item] = ()
    markers: Sequence[Item] = ()
    outcomes: Sequence[Item] = ()
    address_claim: Item | None = None
    address_erased: bool = False  # the address is on the erasure list (an earlier lead's)
    other: Sequence[Item] = ()


class LeadRecords(Protocol):
    def holdings(self, lead_id: str) -> Holdings | None:
        """Everything stored about the lead; None without a profile (unknown, or erased:
        an erasure keeps only a hash of the address, which names no lead)."""
        ...


def _reasons(activities: Sequence[Activity]) -> list[dict[str, Any]]:
    """Every activity that moved the score, with the rules behind its points."""
    found = []
    for activity in activities:
        points = int(activity.details.get("points") or 0)
        taken_back = int(activity.details.get("points_taken_back") or 0)
        if not points and not taken_back:
            continue
        reason: dict[str, Any] = {
            "at": to_iso(activity.at),
            "activity": activity.type.value,
            "activity_id": activity.activity_id,
            "points": points,
            "rules": activity.details.get("rules", []),
        }
        if taken_back:
            reason["points_taken_back"] = taken_back
        found.append(reason)
    return found


class LeadDisclosure:
    def __init__(self, records: LeadRecords, rules: ScoringRules, clock: Clock) -> None:
        self._records = records
        self._rules = rules
        self._clock = clock

    def export(self, lead_id: str) -> dict[str, Any] | None:
        """The document, or None for a lead the table does not hold."""
        held = self._records.holdings(lead_id)
        if held is None:
            return None
        now = self._clock.now()
        lead = held.lead
        score = self._rules.evaluate(lead, now)
        return {
            "schema_version": SCHEMA_VERSION,
            "exported_at": now.astimezone(TOKYO).isoformat(timespec="seconds"),
            "lead_id": lead.lead_id,
            "notes": NOTES,
            "profile": lead.model_dump(mode="json"),
            "score": {
                "score": score.score,
                "grade": score.grade.value,
                "temperature": self._rules.temperature(score.score, score.grade).value,
                "fit": [{"rule": rule, "points": points} for rule, points in score.fit],
                "reasons": _reasons(held.activities),
            },
            "subscription": {
                "mailable": lead.mailable,
                "opted_in": lead.consent.opted_in,
                "unsubscribed": lead.unsubscribed,
                "suppressed": lead.suppressed,
                "suppression_reason": lead.suppression_reason,
                "sunset": lead.sunset,
            },
            "consent_records": [c.model_dump(mode="json") for c in held.consents],
            "timeline": [a.model_dump(mode="json") for a in held.activities],
            "sends": [dict(i) for i in held.sends],
            "emails": [dict(i) for i in held.emails],
            "handoffs": [dict(i) for i in held.handoffs],
            "alerts": [dict(i) for i in held.alerts],
            "request_markers": [dict(i) for i in held.markers],
            "outcomes": [dict(i) for i in held.outcomes],
            "address": {
                "claim": dict(held.address_claim) if held.address_claim else None,
                "on_erasure_list": held.address_erased,
            },
            "other_records": [dict(i) for i in held.other],
        }


def as_json(document: Mapping[str, Any]) -> str:
    """The document as the API answers it and the CLI writes it: UTF-8 text, Japanese as
    written (no \\u escapes)."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def file_name(lead_id: str) -> str:
    return f"lead-{lead_id}-export.json"

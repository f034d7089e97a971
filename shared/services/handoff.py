"""Hand-off to sales: the message a newly qualified lead (MQL) becomes, and the use case
that publishes it once (``SalesHandoff``, behind the ports of ``shared.ports``).

One SNS publish serves every subscriber: a readable subject and a plain-text body for
email subscribers (no links, nothing clickable to phish with), structured JSON for
SQS, Lambda and HTTP(S) subscribers, and message attributes for filter policies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from shared.domain.clock import Clock, from_iso, to_iso
from shared.domain.leads import Activity, Lead, Stage
from shared.domain.malformed import MalformedRecord
from shared.domain.prefectures import find_prefecture
from shared.domain.scoring import Grade, LeadScore, ScoringRules, Temperature

if TYPE_CHECKING:  # the ports import this module's SalesMessage
    from shared.ports import HandoffLedger, LeadRepository, SalesPublisher

TOKYO = ZoneInfo("Asia/Tokyo")
TOP_REASONS = 5
TIMELINE = 15

PROFILE_LABELS = (
    ("company", "会社名"),
    ("name", "氏名"),
    ("name_kana", "フリガナ"),
    ("department", "部署"),
    ("job_title", "役職"),
    ("email", "メール"),
    ("phone", "電話"),
    ("phone_department", "部署電話"),
    ("phone_direct", "直通電話"),
    ("mobile", "携帯電話"),
    ("postcode", "郵便番号"),
    ("prefecture", "都道府県"),
    ("address", "住所"),
    ("website", "Webサイト"),
    ("industry", "業種"),
    ("company_size", "従業員規模"),
    ("sales_owner", "営業担当"),
)


@dataclass(frozen=True)
class SalesMessage:
    subject: str
    message: str  # the MessageStructure=json document
    attributes: dict[str, dict[str, str]]
    handoff_id: str


_URL = re.compile(r"(?i)\b(h)(tt)(ps?)(://)")
_WWW = re.compile(r"(?i)\bwww\.")


def defang(text: str) -> str:
    """Make typed-in URLs unclickable in the email to sales (hxxps://, www[.])."""
    return _WWW.sub(lambda m: m.group(0)[:-1] + "[.]", _URL.sub(r"\1xx\3[:]//", text))


def per_protocol(document: dict[str, Any], text: str) -> str:
    """An SNS message with a body per protocol: plain text without live links for email
    subscribers, the structured JSON for machines (SQS, Lambda, HTTP(S), email-json)."""
    structured = json.dumps(document, ensure_ascii=False)
    return json.dumps(
        {
            "default": structured,
            "email": defang(text),
            "email-json": structured,
            "sqs": structured,
            "lambda": structured,
            "http": structured,
            "https": structured,
        },
        ensure_ascii=False,
    )


def _subject(lead: Lead, score: LeadScore) -> str:
    def short(text: str | None, limit: int) -> str:
        text = " ".join((text or "-").split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    subject = (
        f"[MQL] {short(lead.company, 30)} / {short(lead.name, 20)} / "
        f"score {score.score:g} / grade {score.grade.value}"
    )
    return defang(subject)[:99]  # SNS: under 100 characters, one line


def top_reasons(timeline: list[Activity]) -> list[dict[str, Any]]:
    """The activities that earned the most points, with the rules behind them."""
    scored = [a for a in timeline if int(a.details.get("points", 0) or 0) > 0]
    scored.sort(key=lambda a: (-int(a.details["points"]), a.at))
    return [
        {
            "at": to_iso(a.at),
            "activity": a.type.value,
            "points": int(a.details["points"]),
            "rules": a.details.get("rules", []),
        }
        for a in scored[:TOP_REASONS]
    ]


def _summary(activity: Activity) -> str:
    details = activity.details
    parts = [
        str(details[k])
        for k in ("form_type", "asset", "program_id", "step_id", "reason")
        if details.get(k)
    ]
    tags = details.get("link_tags")
    if tags:
        parts.append("link:" + ",".join(tags))
    return " ".join(parts)


def _local(iso: str) -> str:
    return from_iso(iso).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")


def qualified_score(lead: Lead, rules: ScoringRules, now: datetime) -> LeadScore:
    """The score that made the lead an MQL, as its qualification recorded it: what sales
    are told, whatever the lead's score has done since (decay, a scanner's clicks taken
    back, later engagement). A lead qualified before it was recorded is scored now."""
    found = lead.qualification or {}
    if "score" not in found or "grade" not in found:
        return rules.evaluate(lead, now)
    fit = tuple((str(f["rule"]), int(f["points"])) for f in found.get("fit", []))
    return LeadScore(score=float(found["score"]), grade=Grade(found["grade"]), fit=fit)


def build_sales_message(
    lead: Lead, score: LeadScore, temperature: Temperature, timeline: list[Activity]
) -> SalesMessage:
    qualified_at = lead.qualified_at or lead.updated_at
    handoff_id = f"{lead.lead_id}:{to_iso(qualified_at)}"
    reasons = top_reasons(timeline)
    recent = [
        {"at": to_iso(a.at), "activity": a.type.value, "summary": _summary(a)}
        for a in timeline[:TIMELINE]
    ]
    profile = {key: getattr(lead, key) for key, _ in PROFILE_LABELS}
    profile["interests"] = list(lead.interests)
    qualification = lead.qualification or {}
    first = lead.first_touch
    met = first.at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    document = {
        "type": "lead.qualified",
        "handoff_id": handoff_id,
        "lead_id": lead.lead_id,
        "qualified_at": to_iso(qualified_at),
        "stage": lead.stage.value,
        "score": score.score,
        "grade": score.grade.value,
        "temperature": temperature.value,
        "qualification": qualification,
        "fit": [{"rule": r, "points": p} for r, p in score.fit],
        "profile": profile,
        "first_touch": lead.first_touch.model_dump(mode="json", exclude_none=True),
        "last_touch": lead.last_touch.model_dump(mode="json", exclude_none=True),
        "top_reasons": reasons,
        "timeline": recent,
    }
    lines = ["新しい MQL（商談化候補）のリードです。", ""]
    lines += [f"{label}: {getattr(lead, key) or '-'}" for key, label in PROFILE_LABELS]
    lines += [
        f"関心: {', '.join(lead.interests) or '-'}",
        "",
        f"スコア: {score.score:g}  グレード: {score.grade.value}  温度感: {temperature.value}",
        f"判定理由: {qualification.get('reason', '-')}",
        f"初回接点: {met}  {first.form_type.value} {first.source or ''}".rstrip(),
        "",
        "加点の大きい行動:",
    ]
    lines += [
        f"  {_local(r['at'])}  {r['activity']}  +{r['points']}  "
        + ", ".join(f"{x['rule']}({x['points']:+d})" for x in r["rules"])
        for r in reasons
    ] or ["  -"]
    lines += ["", "最近の行動:"]
    lines += [f"  {_local(r['at'])}  {r['activity']}  {r['summary']}".rstrip() for r in recent] or [
        "  -"
    ]
    lines += ["", f"lead_id: {lead.lead_id}"]
    message = per_protocol(document, "\n".join(lines))
    return SalesMessage(
        subject=_subject(lead, score),
        message=message,
        attributes=_attributes(lead, score),
        handoff_id=handoff_id,
    )


def _attributes(lead: Lead, score: LeadScore) -> dict[str, dict[str, str]]:
    """For subscription filter policies (empty values are not allowed by SNS)."""
    attributes: dict[str, dict[str, str]] = {
        "grade": {"DataType": "String", "StringValue": score.grade.value},
        "score": {"DataType": "Number", "StringValue": f"{score.score:g}"},
    }
    for key in ("industry", "company_size", "prefecture", "sales_owner"):
        value = getattr(lead, key)
        if value:
            attributes[key] = {"DataType": "String", "StringValue": str(value)}
    prefecture = find_prefecture(lead.prefecture or "")
    if prefecture:
        attributes["region"] = {"DataType": "String", "StringValue": prefecture.region}
    if lead.interests:
        attributes["interests"] = {
            "DataType": "String.Array",
            "StringValue": json.dumps(list(lead.interests), ensure_ascii=False),
        }
    return attributes


class SalesHandoff:
    """A lead that just became an MQL (its profile's image on the table stream) is
    published to sales once per qualification: the mark is checked before the publish
    and written after it (``HANDOFF#<handoff id>``)."""

    def __init__(
        self,
        leads: LeadRepository,
        ledger: HandoffLedger,
        publisher: SalesPublisher,
        rules: ScoringRules,
        clock: Clock,
    ) -> None:
        self._leads = leads
        self._ledger = ledger
        self._publisher = publisher
        self._rules = rules
        self._clock = clock

    def hand_off(self, image: dict[str, Any] | None, old: dict[str, Any] | None) -> str:
        """``published``, ``duplicate`` (published before) or ``skipped`` (not a move into
        MQL, or the lead moved on or was erased since); ``MalformedRecord`` for a profile
        image without its lead id."""
        if not image or image.get("sk") != "PROFILE" or image.get("stage") != Stage.MQL:
            return "skipped"
        if old is not None and old.get("stage") == Stage.MQL:
            return "skipped"  # already an MQL: another change to the same lead
        lead_id = image.get("lead_id")
        if not isinstance(lead_id, str) or not lead_id:
            raise MalformedRecord("lead profile without a lead_id")
        lead = self._leads.get(lead_id)
        if lead is None or lead.stage is not Stage.MQL:
            return "skipped"  # erased, or moved on since
        score = qualified_score(lead, self._rules, self._clock.now())
        temperature = self._rules.temperature(score.score, score.grade)
        timeline = self._leads.timeline(lead.lead_id)
        message = build_sales_message(lead, score, temperature, timeline)
        if self._ledger.published(lead.lead_id, message.handoff_id):
            return "duplicate"
        message_id = self._publisher.publish(message)
        self._ledger.mark_published(lead.lead_id, message.handoff_id, message_id)
        return "published"

"""A lead's timeline as a person reads it: activity names in Japanese and English, details
as a line of text, and a machine's opens and clicks labelled with why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.leads import Activity, ActivityType
from shared.domain.machine_engagement import (
    BURST,
    DELIVERY_WINDOW,
    TRAP_LINK,
    EngagementRules,
)

ACTIVITY_LABELS: dict[ActivityType, tuple[str, str]] = {
    ActivityType.FORM_SUBMITTED: ("フォーム送信", "Form submitted"),
    ActivityType.ENROLLED: ("プログラム開始", "Enrolled"),
    ActivityType.EMAIL_SENT: ("メール送信", "Email sent"),
    ActivityType.EMAIL_SEND_UNCERTAIN: ("送信結果不明（再送なし）", "Send uncertain (not resent)"),
    ActivityType.RESCHEDULED: ("送信延期", "Rescheduled"),
    ActivityType.STEP_SKIPPED: ("ステップ省略", "Step skipped"),
    ActivityType.PROGRAM_EXITED: ("プログラム離脱", "Left the program"),
    ActivityType.PROGRAM_COMPLETED: ("プログラム完了", "Program completed"),
    ActivityType.UNSUBSCRIBED: ("配信停止", "Unsubscribed"),
    ActivityType.SUPPRESSED: ("配信抑止", "Suppressed"),
    ActivityType.EMAIL_DELIVERED: ("配信完了", "Delivered"),
    ActivityType.EMAIL_OPENED: ("開封", "Opened"),
    ActivityType.EMAIL_CLICKED: ("クリック", "Clicked"),
    ActivityType.EMAIL_BOUNCED: ("バウンス", "Bounced"),
    ActivityType.EMAIL_COMPLAINED: ("苦情", "Complaint"),
    ActivityType.EMAIL_REJECTED: ("送信拒否", "Rejected by SES"),
    ActivityType.EMAIL_RENDERING_FAILED: ("表示失敗", "Rendering failed"),
    ActivityType.EMAIL_DELAYED: ("配信遅延", "Delivery delayed"),
    ActivityType.EMAIL_SEND_ACCEPTED: ("SES 受付", "Accepted by SES"),
    ActivityType.QUALIFIED: ("MQL 判定", "Qualified (MQL)"),
    ActivityType.STAGE_CHANGED: ("ステージ変更", "Stage changed"),
    ActivityType.PAGE_VIEWED: ("ページ閲覧", "Page viewed"),
    ActivityType.EVENT_REGISTERED: ("イベント申込", "Registered for an event"),
    ActivityType.EVENT_WAITLISTED: ("キャンセル待ち", "On an event's waiting list"),
    ActivityType.EVENT_CANCELLED: ("イベント申込の取消", "Event registration cancelled"),
    ActivityType.EVENT_ATTENDED: ("イベント参加", "Attended an event"),
    ActivityType.PURCHASED: ("購入", "Purchased"),
    ActivityType.SEGMENT_CHANGED: ("顧客セグメント変更", "Customer segment changed"),
}

# Shown by their own wording, or not at all (ids a reader does not need).
_SHOWN_APART = frozenset(
    {
        "program_id",
        "step_id",
        "variant",
        "subject",
        "link",
        "link_tags",
        "points",
        "rules",
        "points_taken_back",
        "verdict",
        "machine_reasons",
        "message_id",
        "from",
        "to",
        "view_id",
    }
)


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    kind: str  # the activity type, for styling and tests
    label: str
    label_en: str
    text: str
    machine: str | None  # why it was a machine's, if it was
    message_id: str | None = None  # the SES message an email activity is about


def machine_reason(reason: str, rules: EngagementRules) -> str:
    """A machine reason in words: the scanner's title, or the rule that caught it."""
    if reason.startswith("agent:"):
        name = reason.removeprefix("agent:")
        if name == "blank_user_agent":
            return "User-Agent なし / no user agent"
        return next((a.title for a in rules.agents if a.name == name), name)
    return {
        DELIVERY_WINDOW: (
            f"配信 {rules.delivery_window_seconds:g} 秒以内 / within "
            f"{rules.delivery_window_seconds:g} s of delivery"
        ),
        BURST: "一斉クリック / most links within seconds",
        TRAP_LINK: "隠しリンク / the hidden link",
    }.get(reason, reason)


def describe(details: dict[str, Any]) -> str:
    """The details of an activity as one line of text."""
    parts: list[str] = []
    if details.get("program_id"):
        where = f"{details['program_id']} / {details.get('step_id') or '-'}"
        parts.append(where + (f" ({details['variant']})" if details.get("variant") else ""))
    if details.get("subject"):
        parts.append(f"「{details['subject']}」")
    if details.get("title"):
        parts.append(f"「{details['title']}」")
    if details.get("url"):
        parts.append(str(details["url"]))
    if details.get("seconds") is not None and details.get("url"):
        parts.append(f"{details['seconds']} 秒 / s")
    if details.get("to"):  # a first segment comes from none
        parts.append(f"{details.get('from') or '-'} → {details['to']}")
    if details.get("link"):
        tags = ", ".join(details.get("link_tags") or [])
        parts.append(details["link"] + (f" [{tags}]" if tags else ""))
    if details.get("points"):
        rules = ", ".join(f"{r['rule']} {r['points']:+d}" for r in details.get("rules", []))
        parts.append(f"{details['points']:+d} 点" + (f" ({rules})" if rules else ""))
    if details.get("points_taken_back"):
        parts.append(f"{details['points_taken_back']} 点を取り消し / taken back")
    parts.extend(
        f"{key}: {_text(value)}"
        for key, value in details.items()
        if key not in _SHOWN_APART and value not in (None, "", [], {})
    )
    return " · ".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    return str(value)


def rows(timeline: Sequence[Activity], rules: EngagementRules) -> list[TimelineRow]:
    result = []
    for activity in timeline:
        label, label_en = ACTIVITY_LABELS.get(activity.type, (activity.type.value,) * 2)
        details = activity.details
        machine = None
        if details.get("verdict") == "machine":
            reasons = details.get("machine_reasons") or []
            machine = ", ".join(machine_reason(r, rules) for r in reasons) or "-"
        message_id = details.get("message_id")
        result.append(
            TimelineRow(
                activity.at,
                activity.type.value,
                label,
                label_en,
                describe(details),
                machine,
                str(message_id) if message_id else None,
            )
        )
    return result

"""The whole lifecycle over HTTP against the running local stack.

form post → welcome email → wait → branch on a click → score → MQL → SNS message to
sales → disposition (won) → customer program. Engagement is produced the way a reader
produces it: opening and clicking emails in the console's outbox, which publishes SES
events that flow through SNS, the engagement queue and the engagement function.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.test_local_stack import (
    Stack,
    eventually,
    local_stack,
    next_send_time,
    request,
    signed_request,
)

pytestmark = pytest.mark.e2e

# Generous: CI runs this beside the rest of the suite on two cores.
WAIT_S = 45

DAY = timedelta(days=1)
SITE = "https://www.example.co.jp"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("lifecycle") / "stack.log") as running:
        yield running


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return int(response.status)


def lead(stack: Stack, lead_id: str) -> dict[str, Any]:
    status, body = signed_request(f"{stack.api}/leads/{lead_id}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def mails_to(stack: Stack, email: str) -> list[dict[str, Any]]:
    return [m for m in stack.sent_emails() if email in m["destinations"]]


def advance(stack: Stack, by: timedelta) -> None:
    status, _ = request(
        f"{stack.origin}/_local/clock/advance", {"by": f"PT{int(by.total_seconds())}S"}
    )
    assert status == 200
    status, _ = request(f"{stack.origin}/_local/tick", method="POST")
    assert status == 200


def until_mail(stack: Stack, email: str, count: int, max_days: int = 10) -> dict[str, Any]:
    """Day by day (with the schedules run) until the ``count``-th email has gone out."""
    for _ in range(max_days):
        found = mails_to(stack, email)
        if len(found) >= count:
            return found[count - 1]
        advance(stack, DAY)
        try:
            return eventually(
                lambda: (lambda m: m[count - 1] if len(m) >= count else None)(
                    mails_to(stack, email)
                ),
                "an email",
                timeout_s=8,
            )
        except AssertionError:
            continue
    raise AssertionError(f"email {count} to {email} within {max_days} days")


def open_and_click(stack: Stack, mail: dict[str, Any], *tags: str) -> None:
    """Open the email in the console (an Open event) and click links with these tags."""
    mail_id = urllib.parse.quote(str(mail["id"]), safe="")
    assert get(f"{stack.origin}/console/outbox/{mail_id}") == 200
    for tag in tags:
        query = urllib.parse.urlencode({"url": f"{SITE}/{tag}/", "tag": f"link:{tag}"})
        assert get(f"{stack.origin}/console/outbox/{mail_id}/click?{query}") == 200


def recorded_steps(stack: Stack, lead_id: str, expected: set[str]) -> set[str]:
    """The enrolment's sent steps once they include ``expected``: SES holds the email a
    moment before the sender records it on the lead."""

    def probe() -> set[str] | None:
        steps = sent_steps(stack, lead_id)
        return steps if expected <= steps else None

    return eventually(probe, f"steps {sorted(expected)} recorded on the lead", WAIT_S)


def sent_steps(stack: Stack, lead_id: str) -> set[str]:
    enrolment = lead(stack, lead_id)["lead"]["enrolment"] or {}
    return set(enrolment.get("sent") or {})


def test_a_lead_walks_from_form_post_to_customer_program(stack: Stack) -> None:
    # Given a manager at a large manufacturer who downloads a whitepaper with consent
    email = f"life-{uuid.uuid4().hex[:8]}@example.co.jp"
    form = {
        "email": email,
        "form_type": "download",
        "asset": "dx-guide-2026.pdf",
        "consent": True,
        "company": "株式会社サンプル製作所",
        "name": "山田 太郎",
        "job_title": "製造部 部長",
        "industry": "製造業",
        "company_size": "1000+",
    }
    status, body = request(f"{stack.api}/leads", form)
    assert status == 201, body
    lead_id = body["lead_id"]
    assert lead(stack, lead_id)["score"]["grade"] == "A"

    # When the window opens, the welcome email goes out
    now = stack.now()
    advance(stack, timedelta(seconds=math.ceil((next_send_time(now) - now).total_seconds())))
    welcome = until_mail(stack, email, 1)
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in welcome["raw_data"]
    open_and_click(stack, welcome)

    # and after their waits the case study and the whitepaper follow
    until_mail(stack, email, 2)
    whitepaper = until_mail(stack, email, 3)
    recorded_steps(stack, lead_id, {"welcome", "case_study", "whitepaper"})

    # When the reader clicks the whitepaper email, the click settles the branch at once
    open_and_click(stack, whitepaper, "whitepaper")

    def clicked() -> bool | None:
        enrolment = lead(stack, lead_id)["lead"]["enrolment"] or {}
        return True if (enrolment.get("sent") or {})["whitepaper"].get("clicked_at") else None

    eventually(clicked, "the click on the whitepaper email recorded", WAIT_S)
    advance(stack, timedelta(minutes=1))  # the next tick queues the decision

    def decided() -> bool | None:
        enrolment = lead(stack, lead_id)["lead"]["enrolment"] or {}
        chosen = (enrolment.get("awaiting"), enrolment.get("step_id"))
        return True if chosen == (None, "seminar_invitation") else None

    eventually(decided, "the sender deciding the branch for the click", WAIT_S)
    seminar = until_mail(stack, email, 4)
    steps = recorded_steps(stack, lead_id, {"seminar_invitation"})
    assert "seminar_invitation" in steps
    assert "whitepaper_reminder" not in steps

    # and engagement with the seminar invitation lifts the score past the MQL rule
    open_and_click(stack, seminar, "pricing", "trial", "seminar", "case_study")
    qualified = eventually(
        lambda: (lambda found: found if found["lead"]["stage"] == "mql" else None)(
            lead(stack, lead_id)
        ),
        "the lead becoming an MQL",
        WAIT_S,
    )
    assert qualified["lead"]["qualification"]["reason"] == "score"
    assert qualified["score"]["score"] >= 50

    # Then sales receive it on the sales topic (read from the inbox queue subscribed to it)
    sqs = stack.sqs()
    inbox = str(stack.about["sales_inbox_url"])

    def handed_off() -> dict[str, Any] | None:
        messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            envelope = json.loads(message["Body"])
            if lead_id in envelope["Message"]:
                return envelope  # type: ignore[no-any-return]
        return None

    envelope = eventually(handed_off, "the MQL on the sales topic", WAIT_S)
    assert envelope["Subject"].startswith("[MQL] 株式会社サンプル製作所 / 山田 太郎 / score ")
    assert envelope["MessageAttributes"]["grade"]["Value"] == "A"

    # When sales report the deal won
    status, body = signed_request(
        f"{stack.api}/leads/{lead_id}/disposition", {"disposition": "won", "by": "sales-e2e"}
    )
    assert status == 200, body
    assert (body["stage"], body["program_id"]) == ("customer", "customer")

    # Then the customer program's first email follows after its wait
    count = len(mails_to(stack, email))
    until_mail(stack, email, count + 1, max_days=14)
    recorded_steps(stack, lead_id, {"onboarding_tips"})

"""``make dev --state DIR`` stopped and started again: the outbox and the queues are kept.

A marketer's run sends a welcome email and hands an inquiry to sales; after a restart
with the same state the console still shows that email under its SES message id (so
opening it still finds the lead) and the sales inbox still holds the handoff.
"""

from __future__ import annotations

import math
import re
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.test_local_stack import Stack, eventually, local_stack, next_send_time, request

pytestmark = pytest.mark.e2e


def page(url: str) -> str:
    """A console page's HTML (it answers 200 or raises)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        html: str = response.read().decode()
        return html


def post_lead(stack: Stack, form: dict[str, Any]) -> str:
    status, body = request(f"{stack.api}/leads", form)
    assert status == 201, body
    return str(body["lead_id"])


def test_with_state_sent_mail_and_the_sales_inbox_survive_a_restart(tmp_path: Path) -> None:
    log, state = tmp_path / "stack.log", tmp_path / "state"
    email = f"kept-{uuid.uuid4().hex[:8]}@example.co.jp"
    with local_stack(log, "--state", str(state)) as first:
        # Given a lead whose welcome email went out
        lead_id = post_lead(
            first, {"email": email, "form_type": "download", "consent": True, "last_name": "山田"}
        )
        now = first.now()
        seconds = math.ceil((next_send_time(now) - now).total_seconds())
        status, _ = request(f"{first.origin}/_local/clock/advance", {"by": f"PT{seconds}S"})
        assert status == 200
        status, _ = request(f"{first.origin}/_local/tick", method="POST")
        assert status == 200

        def welcome() -> dict[str, Any] | None:
            return next((m for m in first.sent_emails() if email in m["destinations"]), None)

        mail_id = str(eventually(welcome, f"an email to {email}")["id"])
        mail_url = f"{first.origin}/console/outbox/{quote(mail_id, safe='')}"

        def recorded() -> str | None:
            # track=0: look without publishing an Open, which would change the lead
            html = page(f"{mail_url}?track=0")
            return html if "program=" in html else None

        eventually(recorded, f"the email_sent activity of {mail_id}")

        # and an inquiry handed to sales, waiting in the sales inbox
        inquirer = post_lead(
            first,
            {
                "email": f"mql-{uuid.uuid4().hex[:8]}@example.co.jp",
                "form_type": "inquiry",
                "consent": True,
                "message": "見積もり希望",
            },
        )

        def in_sales_inbox() -> str | None:
            html = page(f"{first.origin}/console/sales")
            return html if f"/console/leads/{inquirer}" in html else None

        eventually(in_sales_inbox, f"lead {inquirer} in the sales inbox")

    # When the stack starts again with the same state
    with local_stack(log, "--state", str(state)) as second:
        # Then SES still has the email under its id, and the outbox lists it
        assert mail_id in [m["id"] for m in second.sent_emails()]
        assert mail_id in page(f"{second.origin}/console/outbox")

        # and opening it finds the lead by that id: the page links to it, with the
        # program and step its email_sent activity recorded, and the Open is scored on it
        mail_page = page(f"{second.origin}/console/outbox/{quote(mail_id, safe='')}")
        assert f"/console/leads/{lead_id}" in mail_page
        assert "program=" in mail_page

        def opened() -> str | None:
            html = page(f"{second.origin}/console/leads/{lead_id}")
            rows = re.findall(r'<tr class="activity email_opened"[^>]*>.*?</tr>', html, re.DOTALL)
            return next((row for row in rows if mail_id in row), None)

        eventually(opened, f"the Open of {mail_id} on lead {lead_id}")

        # and the handoff is still waiting in the sales inbox
        assert f"/console/leads/{inquirer}" in page(f"{second.origin}/console/sales")

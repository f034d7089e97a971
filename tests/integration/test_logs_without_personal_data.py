"""No personal data in any log line: every function, on its success and error paths.

Every function runs as deployed (``tests.integration.deployed``), driven through its
paths by a lead of its own whose address, name, phone number and postal address appear
nowhere else (``PROBES``): captures, repeats, bad JSON, invalid fields, unknown leads,
SES events about it (readable, for an unknown lead, malformed), sends, hand-off,
disposition, erasure; and AWS calls that fail with a ``ClientError`` whose text quotes
the lead, as SES's and DynamoDB's errors can.

Everything written is captured: each function's log lines (its Powertools handler),
stdout and stderr (metrics, anything printed), the standard logging records of other
loggers at INFO and above (what the Lambda runtime's handler would write), and the
text of every error that leaves a handler (what the runtime logs of a failed
invocation). None of the probes may appear there, in any spelling.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest

from infra.local.runtime import reported_failures, scheduled_event
from infra.wiring import (
    ADMIN,
    CAPTURE,
    ENGAGEMENT,
    ENGAGEMENT_QUEUE,
    FUNCTIONS,
    HANDOFF,
    SCHEDULER,
    SEND_QUEUE,
    SENDER,
    UNSUBSCRIBE,
    VISITS,
    FunctionSpec,
)
from shared.domain.jobs import SendJob
from tests.email_events import raw, ses_record, sns_envelope, sqs_event
from tests.events import form_post, json_post, rest_event
from tests.integration.deployed import Deployed, client_error, deploy, function_logs

EMAIL = "pii-probe-7f3a@example.co.jp"
NAME = "個人情報 太郎"
PHONE = "090-1234-5678"
ADDRESS = "東京都千代田区丸の内1-2-3"
# Each probe in the spellings it may take on its way: stored (E.164), split, quoted in
# JSON with ASCII escapes, URL-encoded.
PROBES = (EMAIL, NAME, "個人情報", PHONE, "+819012345678", "09012345678", ADDRESS)
SPELLINGS = sorted(
    {
        spelling
        for probe in PROBES
        for spelling in (probe, json.dumps(probe)[1:-1], quote(probe), quote_plus(probe))
    }
)
SITE = "http://localhost:3000"  # the deployment's default site origin
LEAD = {
    "email": EMAIL,
    "name": NAME,
    "phone": PHONE,
    "company": "株式会社個人情報テスト",
    "department": "情報システム部",
    "job_title": "部長",
    "industry": "製造業",
    "company_size": "300-999",
    "prefecture": "東京都",
    "message": f"資料は {ADDRESS} 宛にお送りください。{NAME}（{PHONE}）",
    "form_type": "download",
    "asset": "dx-whitepaper-2026",
    "consent": True,
}
# What an AWS error can quote of a request: the item, the recipient.
QUOTED = (
    f"One or more parameter values were invalid: {{'email': {{'S': '{EMAIL}'}}, "
    f"'name': {{'S': '{NAME}'}}, 'phone': {{'S': '{PHONE}'}}}}"
)
REJECTED = (
    "Email address is not verified. The following identities failed the check in "
    f"region AP-NORTHEAST-1: {EMAIL}"
)
IN_TEXT = f"Invalid parameter: {EMAIL} / {PHONE} / {ADDRESS}"


class Run:
    """Invokes the functions and keeps the text of every error that leaves a handler."""

    def __init__(self, deployed: Deployed) -> None:
        self.deployed = deployed
        self.escaped: list[str] = []

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        try:
            return self.deployed.invoke(spec, event)
        except Exception as error:
            # What the Lambda runtime logs: errorMessage, errorType and stackTrace.
            self.escaped.append("".join(traceback.format_exception(error)))
            return None

    def api(self, spec: FunctionSpec, event: dict[str, Any]) -> tuple[int, Any]:
        response = self.invoke(spec, event)
        assert response is not None, self.escaped[-1]
        body = response.get("body") or ""
        headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
        is_json = "application/json" in str(headers.get("content-type"))
        return response["statusCode"], json.loads(body) if is_json and body else body

    def batch(self, spec: FunctionSpec, event: dict[str, Any], ids: list[str]) -> set[str]:
        """The identifiers reported failed (all of them when the invocation failed)."""
        response = self.invoke(spec, event)
        failed = None if response is None else reported_failures(response, ids)
        return set(ids) if failed is None else failed


def admin_event(method: str, lead_id: str, action: str = "", body: str | None = None) -> Any:
    """An IAM-authorised admin API event for /leads/{lead_id}[/action]."""
    resource = "/leads/{lead_id}" + (f"/{action}" if action else "")
    event = rest_event(
        method,
        resource.replace("{lead_id}", lead_id),
        body=body,
        headers={"Content-Type": "application/json"},
    )
    event["resource"] = resource
    event["pathParameters"] = {"lead_id": lead_id}
    event["requestContext"]["resourcePath"] = resource
    event["requestContext"]["identity"]["userArn"] = (
        "arn:aws:sts::123456789012:assumed-role/sales-ops/alice"
    )
    return event


def beacon(document: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(document, ensure_ascii=False)
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE}
    return rest_event("POST", "/visits", body=body, headers=headers)


@pytest.fixture
def deployed(aws: None, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    return deploy(monkeypatch.setenv)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    with function_logs() as buffer:
        yield buffer


def test_no_log_line_holds_personal_data_on_any_path(
    deployed: Deployed,
    logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # what Lambda's runtime writes by default
    run = Run(deployed)

    def dynamodb_fails() -> Any:
        return deployed.fail("dynamodb", client_error("Query", "ValidationException", QUOTED))

    # -- capture: a new lead, the same post again, invalid, unreadable, storage failing --
    status, body = run.api(CAPTURE, json_post(LEAD))
    assert status == 201
    lead_id = body["lead_id"]
    assert run.api(CAPTURE, json_post(LEAD))[0] == 201
    invalid = {**LEAD, "company": "<b>株式会社</b>", "consent": "on"}
    accept = {"Accept": "application/json"}
    assert run.api(CAPTURE, form_post(invalid, headers=accept))[0] == 422
    unreadable = json.dumps(LEAD, ensure_ascii=False)[:-1]
    assert run.api(CAPTURE, json_post(unreadable))[0] == 400
    assert run.api(CAPTURE, json_post({**LEAD, "homepage": "https://spam.example"}))[0] == 201
    with dynamodb_fails() as failed:
        assert run.api(CAPTURE, json_post({**LEAD, "form_type": "contact"}))[0] == 503
    assert failed
    unexpected = RuntimeError(f"lead {{'name': '{NAME}', 'email': '{EMAIL}'}} at {ADDRESS}")
    with deployed.fail("dynamodb", unexpected):
        assert run.api(CAPTURE, json_post({**LEAD, "form_type": "contact"}))[0] == 500

    # -- visits: page views (the address in the URL), a forged reference, storage failing --
    visitor = uuid.uuid4().hex
    view = {
        "kind": "view",
        "visitor_id": visitor,
        "view_id": uuid.uuid4().hex,
        "url": f"{SITE}/contact?{urlencode({'email': EMAIL, 'tel': PHONE})}",
        "title": f"{NAME} 様のページ",
        "referrer": f"{SITE}/?{urlencode({'address': ADDRESS})}",
        "seconds": 30,
    }
    assert run.api(VISITS, beacon(view))[0] == 204
    forged = {"kind": "identify", "visitor_id": visitor, "ref": f"{EMAIL}.forged"}
    assert run.api(VISITS, beacon(forged))[0] == 422
    with dynamodb_fails():
        assert run.api(VISITS, beacon({**view, "view_id": uuid.uuid4().hex}))[0] == 503
    linked = {**LEAD, "form_type": "contact", "visitor_id": visitor}
    assert run.api(CAPTURE, json_post(linked))[0] == 200

    # -- scheduler and sender: queueing failing, SES refusing, a send, a malformed job ----
    with deployed.fail("sqs.SendMessageBatch", client_error("SendMessageBatch", "X", IN_TEXT)):
        assert run.invoke(SCHEDULER, scheduled_event(SCHEDULER, deployed.clock.now())) is None
    deployed.clock.advance(timedelta(minutes=10))  # the failed tick's lease runs out
    assert run.invoke(SCHEDULER, scheduled_event(SCHEDULER, deployed.clock.now()))["queued"] == 1
    refused = client_error("SendEmail", "TooManyRequestsException", REJECTED)
    with deployed.fail("sesv2.SendEmail", refused):
        assert deployed.drain(SENDER)[0].failed == set()  # throttled: sent later
    deployed.clock.advance(timedelta(minutes=10))
    assert run.invoke(SCHEDULER, scheduled_event(SCHEDULER, deployed.clock.now()))["queued"] == 1
    deployed.send(SEND_QUEUE, json.dumps({"lead_id": lead_id, "email": EMAIL}))
    assert [b.failed for b in deployed.drain(SENDER)] == [set()]
    assert len(deployed.dead_letters(SEND_QUEUE)) == 1
    with dynamodb_fails():  # every record failed: the invocation fails
        jobs = sqs_event([SendJob(lead_id, "welcome", "case_study").to_json()])
        assert run.batch(SENDER, jobs, [jobs["Records"][0]["messageId"]])

    # -- engagement: the lead's events, an unknown lead's, malformed ones, storage failing --
    at = deployed.clock.now()
    events = [
        raw(ses_record("delivery", lead_id=lead_id, email=EMAIL, at=at)),
        sns_envelope(ses_record("open", lead_id=lead_id, email=EMAIL, at=at)),
        raw(
            ses_record(
                "click",
                lead_id=lead_id,
                email=EMAIL,
                at=at + timedelta(minutes=5),
                link=f"https://www.example.co.jp/pricing/?{urlencode({'email': EMAIL})}",
            )
        ),
        raw(
            ses_record(
                "bounce_transient",
                lead_id=lead_id,
                email=EMAIL,
                at=at,
                diagnosticCode=f"smtp; 452 4.2.2 mailbox full <{EMAIL}>",
            )
        ),
        raw(ses_record("open", lead_id="0" * 32, email=f"former-{EMAIL}", at=at)),
        raw({**ses_record("open", lead_id=lead_id, email=EMAIL), "open": {"timestamp": EMAIL}}),
        f'{{"eventType": "Open", "mail": {{"destination": ["{EMAIL}"], "name": "{NAME}"',
    ]
    deployed.send(ENGAGEMENT_QUEUE, *events)
    assert [b.failed for b in deployed.drain(ENGAGEMENT)] == [set()]
    assert len(deployed.dead_letters(ENGAGEMENT_QUEUE)) == 2
    later = raw(ses_record("open", lead_id=lead_id, email=EMAIL, at=at + timedelta(hours=1)))
    with dynamodb_fails():  # every record failed: the invocation fails
        retried = sqs_event([later])
        assert run.batch(ENGAGEMENT, retried, [retried["Records"][0]["messageId"]])

    # -- admin: lookup, unreadable and invalid dispositions, an unknown lead, failing ---
    assert run.api(ADMIN, admin_event("GET", lead_id))[0] == 200
    assert run.api(ADMIN, admin_event("POST", lead_id, "disposition", unreadable))[0] == 400
    invalid_disposition = json.dumps({"disposition": EMAIL, "by": NAME, "reason": ADDRESS})
    assert (
        run.api(ADMIN, admin_event("POST", lead_id, "disposition", invalid_disposition))[0] == 422
    )
    accepted = json.dumps({"disposition": "accepted", "by": NAME, "reason": ADDRESS})
    assert run.api(ADMIN, admin_event("POST", "f" * 32, "disposition", accepted))[0] == 404
    with dynamodb_fails():
        assert run.api(ADMIN, admin_event("GET", lead_id))[0] == 500

    # -- hand-off: an inquiry makes the lead an MQL; SNS failing, then published ----------
    assert run.api(CAPTURE, json_post({**LEAD, "form_type": "inquiry"}))[0] == 200
    records = deployed.stream_records(HANDOFF)
    assert records
    ids = [r["dynamodb"]["SequenceNumber"] for r in records]
    refused_publish = client_error("Publish", "InvalidParameter", IN_TEXT)
    with deployed.fail("sns.Publish", refused_publish):
        assert run.batch(HANDOFF, {"Records": records}, ids)
    assert run.batch(HANDOFF, {"Records": records}, ids) == set()
    assert len(deployed.queued(deployed.provisioned.sales_inbox_url)) == 1
    broken = json.loads(json.dumps(records[-1]))
    del broken["dynamodb"]["NewImage"]["lead_id"]
    assert run.batch(HANDOFF, {"Records": [broken]}, ids[-1:]) == set()
    assert len(deployed.stream_failures(HANDOFF)) == 1

    # -- unsubscribe: the page, the one-click opt-out, storage failing; then erasure -----
    token = deployed.unsubscribe_token(lead_id)
    query = {"t": token}
    assert run.api(UNSUBSCRIBE, rest_event("GET", "/unsubscribe", query=query))[0] == 200
    one_click = rest_event(
        "POST",
        "/unsubscribe",
        query=query,
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with dynamodb_fails():
        assert run.api(UNSUBSCRIBE, one_click)[0] == 503
    assert run.api(UNSUBSCRIBE, one_click)[0] == 200
    assert run.api(ADMIN, admin_event("DELETE", lead_id))[0] == 200

    # Then no probe is anywhere, in any spelling
    out, err = capsys.readouterr()
    functions = {spec.name for spec in FUNCTIONS}
    others = [
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if record.name.split(".")[0] not in functions  # theirs are in the function logs
    ]
    written = {
        "function logs": logs.getvalue(),
        "stdout": out,
        "stderr": err,
        "other loggers": "\n".join(others),
        "errors left to Lambda": "\n".join(run.escaped),
    }
    leaks = {where: [s for s in SPELLINGS if s in text] for where, text in written.items()}
    assert leaks == {where: [] for where in written}
    # though every function logged, its errors too, and the probes reached the logs
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert {line["service"] for line in lines} == functions
    assert {
        "lead could not be stored",
        "request failed",
        "invalid submission",
        "visit could not be stored",
        "invocation failed",
        "record failed; it will be retried",
        "malformed record moved to the dead-letter queue",
        "event for an unknown lead dropped",
        "unsubscribe could not be stored",
    } <= {line["message"] for line in lines}
    for marker in ("[redacted]", "[email]", "[phone]", "[address]"):
        assert marker in logs.getvalue()
    assert len(run.escaped) == 4  # the failed tick, the failed batches

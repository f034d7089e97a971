"""The nurture engine end to end on moto: scheduler tick -> SQS -> sender -> SES, and opt-out.

Time only moves when a test moves the clock. Most scenarios use the small catalog under
``fixtures/programs`` (linear: business hours; branching and burst: always open); the
first ones use the shipped ``welcome`` program with a lead created by ``POST /leads``.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import yaml
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from functions.observability import build_logger
from functions.unsubscribe.handler import Dependencies, build_app
from functions.unsubscribe.handler import lambda_handler as unsubscribe_handler
from shared.adapters.items import DUE_INDEX, due_shard, lead_pk
from shared.adapters.sqs import SqsJobQueue
from shared.domain.clock import FixedClock, to_iso
from shared.domain.email import EmailRenderer
from shared.domain.jobs import SendJob
from shared.domain.leads import ActivityType, ConsentState, FormType, Lead, Stage, Touch, new_id
from shared.domain.machine_engagement import tracked_links
from shared.domain.nurture import record_engagement, start, variant_label, variant_of
from shared.domain.programs import Engagement, Program, ProgramCatalog, load_programs
from shared.domain.tokens import UnsubscribeTokens
from shared.services.sending import SEND_GRACE, Outcome, StepBeingSent, ledger_key
from shared.web.pages import Pages
from tests.builders import DynamoCounters, overwrite, store
from tests.email_events import raw, ses_record, sns_envelope
from tests.emf import emf_documents, metric_counts
from tests.events import form_post, multipart_body, rest_event
from tests.integration.conftest import TABLE
from tests.integration.nurture import (
    CONFIGURATION_SET,
    FIXTURES,
    FROM,
    SENDER,
    UNSUBSCRIBE_URL,
    NurtureWorld,
    SentEmail,
    build_world,
)
from tests.integration.scoring_world import counters, engagement, recorder

Post = Callable[[dict[str, Any]], dict[str, Any]]

JST = ZoneInfo("Asia/Tokyo")
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=JST)  # a business day, inside the window
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
FIXTURE_PROGRAMS = FIXTURES / "programs"
ACCEPT_JSON = {"Accept": "application/json"}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# -- the world and helpers --------------------------------------------------------------------


def catalog() -> ProgramCatalog:
    return load_programs(FIXTURE_PROGRAMS)


@pytest.fixture
def world(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    """The test catalog, on Tuesday 2026-11-24 10:00 JST."""
    clock.set(TUESDAY_10.astimezone(UTC))
    return build_world(clock, dynamodb, TABLE, lambda_context, programs=catalog())


@pytest.fixture
def shipped(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    """The shipped programs; the clock stays on the holiday Monday until a test moves it."""
    return build_world(clock, dynamodb, TABLE, lambda_context)


def enrol(
    world: NurtureWorld,
    program_id: str,
    *,
    consent: bool = True,
    email: str | None = None,
    due_in: timedelta | None = None,
    **fields: Any,
) -> str:
    """Store a lead enrolled in ``program_id`` now (as capture or an import would)."""
    now = world.clock.now()
    program = world.programs.get(program_id)
    assert program is not None
    enrolment = start(program, now)
    if due_in is not None:
        enrolment = enrolment.model_copy(update={"due_at": now + due_in})
    touch = Touch(at=now, form_type=FormType.DOWNLOAD)
    lead = Lead(
        lead_id=new_id(),
        email=email or f"lead-{uuid.uuid4().hex[:8]}@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(
            opted_in=True, at=now, wording_version="2026-04", form_type=FormType.DOWNLOAD
        )
        if consent
        else ConsentState(),
        enrolment=enrolment,
        created_at=now,
        updated_at=now,
        **fields,
    )
    store(world.repository, lead)
    return lead.lead_id


def lead_of(world: NurtureWorld, lead_id: str) -> Lead:
    lead = world.repository.get(lead_id)
    assert lead is not None
    return lead


def change(world: NurtureWorld, lead_id: str, **changes: Any) -> Lead:
    """Another writer changes the stored lead (stage change, engagement, ...)."""
    lead = lead_of(world, lead_id)
    updated = lead.model_copy(update={**changes, "version": lead.version + 1})
    overwrite(world.repository, updated)
    return updated


def engage(world: NurtureWorld, lead_id: str, step_id: str, engagement: Engagement) -> None:
    """What the engagement function (a later issue) will do with an SES open/click event."""
    lead = lead_of(world, lead_id)
    assert lead.enrolment is not None
    program = world.programs.get(lead.enrolment.program_id)
    enrolment = record_engagement(lead.enrolment, program, step_id, engagement, world.clock.now())
    change(world, lead_id, enrolment=enrolment)


def indexed_due_at(world: NurtureWorld, lead_id: str) -> str | None:
    """The lead's due_at in the sparse due index, or None if it is not in the index."""
    response = world.dynamodb.query(
        TableName=TABLE,
        IndexName=DUE_INDEX,
        KeyConditionExpression="due_shard = :shard",
        ExpressionAttributeValues={":shard": {"N": str(due_shard(lead_id))}},
    )
    for item in response["Items"]:
        if item["lead_id"]["S"] == lead_id:
            return str(item["due_at"]["S"])
    return None


def activities(world: NurtureWorld, lead_id: str) -> Counter[str]:
    return Counter(a.type.value for a in world.repository.timeline(lead_id))


def activity(world: NurtureWorld, lead_id: str, kind: ActivityType) -> dict[str, Any]:
    (found,) = [a for a in world.repository.timeline(lead_id) if a.type is kind]
    return found.details


def steps_sent(world: NurtureWorld, lead_id: str | None = None) -> list[str]:
    return [
        e.tags["step"] for e in world.ses.sent if lead_id is None or e.tags["lead_id"] == lead_id
    ]


def ledger_item(world: NurtureWorld, lead_id: str, step_id: str) -> dict[str, Any] | None:
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    program = world.programs.get(enrolment.program_id)
    assert program is not None
    key = ledger_key(enrolment, program.step(step_id))
    response = world.dynamodb.get_item(
        TableName=TABLE,
        Key={"pk": {"S": lead_pk(lead_id)}, "sk": {"S": f"SEND#{key}"}},
        ConsistentRead=True,
    )
    item: dict[str, Any] | None = response.get("Item")
    return item


def queued(world: NurtureWorld) -> int:
    attributes = world.sqs.get_queue_attributes(
        QueueUrl=world.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def raw_header(email: SentEmail, name: str) -> str:
    """A header as SES received it: unfolded, not decoded."""
    raw: bytes = email.params["Content"]["Raw"]["Data"]
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for line in re.sub(r"\r\n(?=[ \t])", "", head).split("\r\n"):
        field, _, value = line.partition(":")
        if field.lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} header")


def header(response: dict[str, Any], name: str) -> str | None:
    headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): [v] for k, v in (response.get("headers") or {}).items()})
    values = headers.get(name.lower())
    return ", ".join(values) if values else None


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n")


# -- a lead from POST /leads gets the shipped welcome email ------------------------------------


def test_a_lead_created_by_post_leads_receives_the_welcome_email_on_the_next_tick(
    shipped: NurtureWorld, post: Post, clock: FixedClock
) -> None:
    # Given Tuesday 10:00 JST and a visitor downloading a whitepaper with consent,
    # whose company name carries characters that mean something in HTML
    clock.set(TUESDAY_10.astimezone(UTC))
    form: dict[str, str | list[str]] = {
        "email": "Taro.Yamada@EXAMPLE.co.jp",
        "last_name": "山田",
        "first_name": "太郎",
        "company": 'A&B "テック" <>',
        "form_type": "download",
        "consent": "on",
    }
    response = post(form_post(form, headers=ACCEPT_JSON))
    assert response["statusCode"] == 201
    lead = shipped.repository.find_by_email("taro.yamada@example.co.jp")
    assert lead is not None
    assert lead.company == 'A&B "テック" <>'

    # When the scheduler ticks and the sender works off the queue
    assert shipped.run() == 1

    # Then exactly the welcome email went to the lead, through the configuration set
    (email,) = shipped.ses.sent
    welcome = shipped.programs.get("welcome")
    assert welcome is not None
    step = welcome.step("welcome")
    variant = variant_of(lead.lead_id, welcome, step)
    assert email.to == "Taro.Yamada@example.co.jp"
    assert email.params["FromEmailAddress"] == FROM
    assert email.params["ConfigurationSetName"] == CONFIGURATION_SET
    assert email.tags == {
        "lead_id": lead.lead_id,
        "program": "welcome",
        "step": "welcome",
        "variant": variant_label(variant),
        "links": email.tags["links"],  # checked against the rendered email below
        "send_time": "default",  # the shipped programs keep their own send times
    }
    message = email.message
    # with both RFC 8058 headers, naming a link that opts this lead out
    url = f"{UNSUBSCRIBE_URL}?t={shipped.tokens.sign(lead.lead_id)}"
    assert message["List-Unsubscribe"] == f"<{url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (token,) = parse_qs(urlsplit(url).query)["t"]
    assert shipped.tokens.verify(token) == lead.lead_id
    # a Japanese subject, MIME-encoded on the wire, that decodes to the rendered one
    # Site links carry the signed lead reference the tracking snippet exchanges.
    site_ref = shipped.tokens.site_references().sign(lead.lead_id)
    expected = EmailRenderer(SENDER).render(lead, welcome, step, variant, url, site_ref=site_ref)
    assert f"lnr={site_ref}" in expected.text
    assert f"lnr={site_ref}" in expected.html
    # (and the tracked links it holds, hidden trap link included, for the burst rule)
    assert email.tags["links"] == str(tracked_links(expected.html))
    assert tracked_links(expected.html) >= 2
    assert message["Subject"] == expected.subject
    assert JAPANESE.search(message["Subject"])
    assert raw_header(email, "Subject").isascii()
    assert "{{" not in message["Subject"]
    assert "{%" not in message["Subject"]
    # both parts decode to the rendered UTF-8 text
    plain, html = email.part("plain"), email.part("html")
    assert crlf(plain).strip() == expected.text.strip()
    assert crlf(html).strip() == expected.html.strip()
    assert "山田 太郎 様" in plain
    # the footer: sender, postal address, contact address and the opt-out link, in both
    for part in (plain, html):
        assert SENDER.company_name in part
        assert SENDER.postal_address in part
        assert SENDER.contact_email in part
        assert url in part
    assert f'href="{url}"' in html
    # the company name is escaped in HTML and left as typed in the plain text
    assert "A&amp;B &#34;テック&#34; &lt;&gt;" in html
    assert 'A&B "テック" <>' not in html
    assert 'A&B "テック" <>' in plain

    # and the lead moved on to the next step, due after its wait
    stored = lead_of(shipped, lead.lead_id)
    assert stored.enrolment is not None
    following = welcome.step_after("welcome")
    assert following is not None
    assert stored.enrolment.step_id == following.id
    assert stored.enrolment.due_at == clock.now() + following.wait
    assert stored.enrolment.sent["welcome"].message_id == email.message_id
    assert stored.enrolment.sent["welcome"].variant == variant_label(variant)
    assert stored.recent_sends == (clock.now(),)
    assert activity(shipped, lead.lead_id, ActivityType.EMAIL_SENT) == {
        "program_id": "welcome",
        "step_id": "welcome",
        "variant": variant_label(variant),
        "content_type": "welcome",
        "subject": expected.subject,
        "message_id": email.message_id,
    }
    assert indexed_due_at(shipped, lead.lead_id) == to_iso(clock.now() + following.wait)
    # and a second tick sends nothing more
    assert shipped.run() == 0


def test_the_list_unsubscribe_header_reaches_ses_verbatim(world: NurtureWorld) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    (email,) = world.ses.sent
    url = f"{UNSUBSCRIBE_URL}?t={world.tokens.sign(lead_id)}"
    assert raw_header(email, "List-Unsubscribe") == f"<{url}>"


def test_markup_in_stored_lead_data_is_escaped_in_html_and_kept_in_text_and_subject(
    world: NurtureWorld,
) -> None:
    # Given a lead whose data did not come through the form's markup check (an import)
    lead_id = enrol(world, "linear", company='<b>&"', family_name="山田", name="山田 太郎")

    # When its welcome email is sent
    assert world.run() == 1
    (email,) = world.ses.sent
    assert email.tags["lead_id"] == lead_id

    # Then HTML shows the text, not markup; the subject header and the text keep it as typed
    html, plain = email.part("html"), email.part("plain")
    assert "&lt;b&gt;&amp;&#34;" in html
    assert '<b>&"' not in html
    assert "<title>&lt;b&gt;&amp;&#34;様、ご登録ありがとうございます</title>" in html
    assert '<b>&"' in plain
    assert email.message["Subject"] == '<b>&"様、ご登録ありがとうございます'


def test_a_lead_with_an_internationalised_domain_is_mailed_at_its_punycode_address(
    shipped: NurtureWorld, post: Post, clock: FixedClock
) -> None:
    clock.set(TUESDAY_10.astimezone(UTC))
    form: dict[str, str | list[str]] = {
        "email": "info@例え.jp",
        "form_type": "inquiry",
        "consent": "on",
    }
    assert post(form_post(form, headers=ACCEPT_JSON))["statusCode"] == 201
    assert shipped.run() == 1
    (email,) = shipped.ses.sent
    assert email.params["Destination"]["ToAddresses"] == ["info@xn--r8jz45g.jp"]
    assert raw_header(email, "To") == "info@xn--r8jz45g.jp"


# -- waits and branches ------------------------------------------------------------------------


def test_the_next_step_is_sent_only_after_its_wait(world: NurtureWorld) -> None:
    # Given a lead that got its welcome email on Tuesday 10:00
    lead_id = enrol(world, "linear")
    assert world.run() == 1

    # When the clock reaches one minute before the case study's two-day wait is over
    world.advance(2 * DAY - MINUTE)
    # Then a tick sends nothing
    assert world.run() == 0
    # and when the wait is over, the case study goes
    world.advance(MINUTE)
    assert world.run() == 1
    assert steps_sent(world) == ["welcome", "case_study"]
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert (enrolment.step_id, enrolment.due_at) == ("whitepaper", world.clock.now() + DAY)
    # and the sender counted each email on its day, without waiting for SES's events
    welcome = enrolment.sent["welcome"]
    assert counters(world.dynamodb, welcome.sent_at)[f"email#linear#welcome#{welcome.variant}"] == {
        "sent": 1
    }
    case_study = enrolment.sent["case_study"].variant
    assert counters(world.dynamodb, world.clock.now())[f"email#linear#case_study#{case_study}"] == {
        "sent": 1
    }


def test_the_last_step_completes_the_program_and_leaves_the_due_index(
    world: NurtureWorld,
) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    world.advance(2 * DAY)
    assert world.run() == 1
    world.advance(DAY)
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["welcome", "case_study", "whitepaper"]
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.outcome == "completed"
    assert enrolment.completed_at == world.clock.now()
    # Out of its program, the lead stays in the due index only for its dormancy review.
    review_at = world.clock.now() + 90 * DAY
    assert indexed_due_at(world, lead_id) == to_iso(review_at)
    assert lead_of(world, lead_id).review_at == review_at
    assert activities(world, lead_id)["program_completed"] == 1
    world.advance(30 * DAY)
    assert world.run() == 0


def test_a_click_decides_the_branch_at_once_and_its_step_is_sent(world: NurtureWorld) -> None:
    # Given a lead that got the whitepaper (a step that branches on engagement)
    lead_id = enrol(world, "branching")
    assert world.run() == 1
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert (enrolment.awaiting, enrolment.due_at) == ("whitepaper", world.clock.now() + 3 * DAY)

    # When the lead clicks two hours later
    world.advance(timedelta(hours=2))
    engage(world, lead_id, "whitepaper", Engagement.CLICKED)
    assert indexed_due_at(world, lead_id) == to_iso(world.clock.now())

    # Then the next tick sends the clicked branch's step, without waiting three days
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["whitepaper", "seminar_invitation"]
    stored = lead_of(world, lead_id)
    assert stored.enrolment is not None
    assert stored.enrolment.sent["whitepaper"].clicked_at == world.clock.now()
    assert stored.enrolment.step_id == "free_trial"


def test_a_lead_that_did_not_open_gets_the_not_opened_branch_after_the_wait(
    world: NurtureWorld,
) -> None:
    lead_id = enrol(world, "branching")
    assert world.run() == 1

    # nothing is decided before wait_up_to
    world.advance(3 * DAY - MINUTE)
    assert world.run() == 0
    # at wait_up_to, no open: the reminder
    world.advance(MINUTE)
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["whitepaper", "whitepaper_reminder"]


def test_an_open_alone_does_not_decide_early_and_leads_to_otherwise(
    world: NurtureWorld,
) -> None:
    lead_id = enrol(world, "branching")
    assert world.run() == 1

    # an open may still be followed by a click: the branch waits
    world.advance(timedelta(hours=1))
    engage(world, lead_id, "whitepaper", Engagement.OPENED)
    assert world.run() == 0
    world.advance(3 * DAY - timedelta(hours=1) - MINUTE)
    assert world.run() == 0
    # at wait_up_to: opened, not clicked -> otherwise
    world.advance(MINUTE)
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["whitepaper", "free_trial"]


# -- branches on a link, through the engagement function ----------------------------------------

ANY_TIME = """
send_window:
  weekdays: [mon, tue, wed, thu, fri, sat, sun]
  start: "00:00"
  end: "23:59"
  skip_public_holidays: false
  skip_new_year_holidays: false
entry:
  stages: [lead]
"""
# The welcome email links the overview, a case study and the pricing page.
ON_PRICING = Program.model_validate(
    yaml.safe_load(
        ANY_TIME
        + """
id: on_pricing
name: テスト（料金ページのクリックで分岐）
priority: 40
steps:
  - id: welcome
    template: welcome
    content_type: welcome
    subject: {ja: ["ご登録ありがとうございます"], en: ["Thank you for signing up"]}
    branch:
      wait_up_to: P3D
      rules:
        - {when: clicked, links: [pricing], goto: free_trial}
      otherwise: case_study
  - id: case_study
    template: case_study
    content_type: case_study
    subject: {ja: ["【導入事例】製造業A社の取り組み"], en: ["[Case study] A manufacturer"]}
  - id: free_trial
    template: free_trial
    content_type: free_trial
    subject: {ja: ["14日間無料でお試しください"], en: ["Try it free for 14 days"]}
"""
    )
)
# Two steps that trial leads do not get: one in the middle, one at the end.
NOT_FOR_TRIALS = Program.model_validate(
    yaml.safe_load(
        ANY_TIME
        + """
id: not_for_trials
name: テスト（トライアル申込者には送らない）
priority: 50
steps:
  - id: welcome
    template: welcome
    content_type: welcome
    subject: {ja: ["ご登録ありがとうございます"], en: ["Thank you for signing up"]}
  - id: trial_offer
    wait: P1D
    template: free_trial
    content_type: free_trial
    subject: {ja: ["14日間無料でお試しください"], en: ["Try it free for 14 days"]}
    skip_if: {form_types: [trial]}
  - id: seminar_invitation
    template: seminar_invitation
    content_type: seminar_invitation
    subject: {ja: ["【参加無料】セミナーのご案内"], en: ["[Free seminar] Join us"]}
  - id: closing_offer
    wait: P1D
    template: free_trial
    content_type: free_trial
    subject: {ja: ["トライアルのご案内（再送）"], en: ["Try it free: a reminder"]}
    skip_if: {form_types: [trial]}
"""
    )
)


@pytest.fixture
def extended(clock: FixedClock, dynamodb: Any, lambda_context: Any) -> NurtureWorld:
    """The test catalog and the two programs above, on Tuesday 10:00 JST."""
    clock.set(TUESDAY_10.astimezone(UTC))
    programs = ProgramCatalog([*catalog().programs, ON_PRICING, NOT_FOR_TRIALS])
    return build_world(clock, dynamodb, TABLE, lambda_context, programs=programs)


def click_event(world: NurtureWorld, sent: SentEmail, tag: str) -> str:
    """The SES click on the link tagged ``tag`` in ``sent``, as SNS delivers it to SQS."""
    record = ses_record(
        "click",
        email=sent.to,
        at=world.clock.now(),
        message_id=sent.message_id,
        link=f"https://www.example.co.jp/{tag}/",
        link_tags=[tag],
        **{k: sent.tags[k] for k in ("lead_id", "program", "step", "variant")},
    )
    return sns_envelope(record)


def test_a_click_on_the_named_link_decides_the_branch_at_once(
    extended: NurtureWorld, lambda_context: Any
) -> None:
    # Given a lead that got the welcome email, whose branch waits 3 days for a pricing click
    world = extended
    lead_id = enrol(world, "on_pricing")
    assert world.run() == 1
    (sent,) = world.ses.sent
    deliver = engagement(
        recorder(world.dynamodb, world.clock, programs=world.programs), lambda_context
    )

    # When the reader clicks the pricing link an hour later
    world.advance(timedelta(hours=1))
    clicked_at = world.clock.now()
    assert deliver([click_event(world, sent, "pricing")]).failed == []

    # Then the click and its tag are on the sent step and the branch is due at once
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.sent["welcome"].clicked_at == clicked_at
    assert enrolment.sent["welcome"].clicked_links == ("pricing",)
    assert (enrolment.awaiting, enrolment.due_at) == ("welcome", clicked_at)
    assert indexed_due_at(world, lead_id) == to_iso(clicked_at)
    # and the next tick sends the trial offer, not the case study
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["welcome", "free_trial"]


def test_a_click_on_another_link_leaves_the_branch_to_its_otherwise(
    extended: NurtureWorld, lambda_context: Any
) -> None:
    world = extended
    lead_id = enrol(world, "on_pricing")
    assert world.run() == 1
    (sent,) = world.ses.sent
    due = world.clock.now() + 3 * DAY
    deliver = engagement(
        recorder(world.dynamodb, world.clock, programs=world.programs), lambda_context
    )

    # A click on the case study link is recorded with its tag, but decides nothing yet
    world.advance(timedelta(hours=1))
    assert deliver([click_event(world, sent, "case_study")]).failed == []
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.sent["welcome"].clicked_links == ("case_study",)
    assert enrolment.due_at == due
    assert world.run() == 0

    # and when the wait is over, the lead takes otherwise
    world.clock.set(due)
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["welcome", "case_study"]


# -- steps skipped for leads they do not fit ------------------------------------------------------


def test_steps_that_do_not_fit_a_trial_lead_are_skipped_and_the_program_completes(
    extended: NurtureWorld,
) -> None:
    # Given two leads in the same program, one of whom has since applied for a trial
    world = extended
    trial_id = enrol(world, "not_for_trials")
    other_id = enrol(world, "not_for_trials")
    change(world, trial_id, last_touch=Touch(at=world.clock.now(), form_type=FormType.TRIAL))
    assert world.run() == 2  # both welcome emails

    # When the trial offer is due, it is skipped for the trial lead, and the seminar
    # invitation (due at once after it) goes in the same job
    world.advance(DAY)
    assert world.run() == 2
    assert steps_sent(world, trial_id) == ["welcome", "seminar_invitation"]
    assert steps_sent(world, other_id) == ["welcome", "trial_offer"]
    assert ledger_item(world, trial_id, "trial_offer") is None  # nothing was claimed
    skipped = activity(world, trial_id, ActivityType.STEP_SKIPPED)
    assert skipped == {
        "program_id": "not_for_trials",
        "step_id": "trial_offer",
        "reason": "skip_if:form_type:trial",
    }

    # When the last step is due, skipping it completes the program
    world.advance(DAY)
    world.run()
    assert steps_sent(world, trial_id) == ["welcome", "seminar_invitation"]
    trial = lead_of(world, trial_id)
    assert trial.enrolment is not None
    assert trial.enrolment.outcome == "completed"
    assert trial.enrolment.skipped == {
        "trial_offer": "skip_if:form_type:trial",
        "closing_offer": "skip_if:form_type:trial",
    }
    counts = activities(world, trial_id)
    assert (counts["step_skipped"], counts["program_completed"], counts["email_sent"]) == (2, 1, 2)
    # and the lead leaves the send index, watched only for its dormancy review
    assert trial.review_at is not None
    assert indexed_due_at(world, trial_id) == to_iso(trial.review_at)
    # while the other lead got every step
    other = lead_of(world, other_id).enrolment
    assert other is not None
    assert (set(other.sent), other.skipped) == (
        {"welcome", "trial_offer", "seminar_invitation"},
        {},
    )
    assert other.step_id == "closing_offer"


def test_the_shipped_welcome_does_not_offer_a_trial_to_a_lead_who_applied_for_one(
    shipped: NurtureWorld, post: Post, clock: FixedClock
) -> None:
    # Given a lead who applied for the trial (capture here runs without scoring, so the
    # high-intent form does not make it an MQL at once, as in sales' cool-down)
    clock.set(TUESDAY_10.astimezone(UTC))
    form: dict[str, str | list[str]] = {
        "email": "trial@example.co.jp",
        "form_type": "trial",
        "consent": "on",
    }
    assert post(form_post(form, headers=ACCEPT_JSON))["statusCode"] == 201
    lead = shipped.repository.find_by_email("trial@example.co.jp")
    assert lead is not None
    assert lead.enrolment is not None
    assert lead.enrolment.program_id == "welcome"

    # When the program runs to its end, a day at a time
    for _ in range(40):
        shipped.run()
        enrolment = lead_of(shipped, lead.lead_id).enrolment
        if enrolment is None or enrolment.completed_at is not None:
            break
        clock.advance(DAY)

    # Then every email but the trial offer went, and the skip is on record
    assert steps_sent(shipped, lead.lead_id) == [
        "welcome",
        "case_study",
        "whitepaper",
        "whitepaper_reminder",
        "seminar_invitation",
    ]
    assert enrolment is not None
    assert enrolment.outcome == "completed"
    assert enrolment.skipped == {"free_trial": "skip_if:form_type:trial"}
    assert activity(shipped, lead.lead_id, ActivityType.STEP_SKIPPED)["step_id"] == "free_trial"


# -- unsubscribe -------------------------------------------------------------------------------


@pytest.fixture
def unsubscribe_app(world: NurtureWorld) -> APIGatewayRestResolver:
    return build_app(
        Dependencies(
            world.repository, world.tokens, world.clock, Pages(), build_logger("unsubscribe")
        )
    )


Call = Callable[..., dict[str, Any]]


@pytest.fixture
def call(unsubscribe_app: APIGatewayRestResolver, lambda_context: Any) -> Call:
    def send(method: str, token: str | None, body: str | bytes | None = None, **kw: Any) -> Any:
        query = {"t": token} if token is not None else None
        headers = kw.pop("headers", {"Content-Type": "application/x-www-form-urlencoded"})
        event = rest_event(method, "/unsubscribe", body=body, query=query, headers=headers, **kw)
        return unsubscribe_handler(event, lambda_context, unsubscribe_app)

    return send


def token_from(email: SentEmail) -> str:
    url = str(email.message["List-Unsubscribe"]).strip("<>")
    assert url.startswith(f"{UNSUBSCRIBE_URL}?")
    (token,) = parse_qs(urlsplit(url).query)["t"]
    return token


def test_get_shows_a_japanese_confirmation_page_and_changes_nothing(
    world: NurtureWorld, call: Call
) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    before = lead_of(world, lead_id)

    response = call("GET", token_from(world.ses.sent[0]))

    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    assert header(response, "Cache-Control") == "no-store"
    assert header(response, "Referrer-Policy") == "no-referrer"
    page = response["body"]
    assert '<html lang="ja">' in page
    assert "メール配信の停止" in page
    assert '<form method="post"' in page
    assert "配信を停止する" in page
    # the button posts back to the same signed link
    action = re.search(r'action="([^"]+)"', page)
    assert action is not None
    assert parse_qs(urlsplit(action.group(1).replace("&amp;", "&")).query)["t"] == [
        token_from(world.ses.sent[0])
    ]
    # a link scanner fetching the URL must not opt the lead out
    assert lead_of(world, lead_id) == before


def test_one_click_post_opts_out_at_once_idempotently_and_stops_all_email(
    world: NurtureWorld, call: Call, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a lead that got its welcome email
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    token = token_from(world.ses.sent[0])
    capsys.readouterr()

    # When its mail client posts the RFC 8058 one-click request
    world.advance(MINUTE)
    response = call("POST", token, body="List-Unsubscribe=One-Click")

    # Then it is opted out at once, and counted
    assert response["statusCode"] == 200
    assert metric_counts(capsys.readouterr().out) == {("unsubscribe", "OptOuts"): 1}
    assert "配信を停止しました" in response["body"]
    lead = lead_of(world, lead_id)
    assert lead.unsubscribed
    assert lead.enrolment is not None
    assert lead.enrolment.outcome == "exited:unsubscribed"
    assert lead.enrolment.due_at is None
    assert activity(world, lead_id, ActivityType.UNSUBSCRIBED) == {"via": "one_click"}
    # and it left the due index
    assert indexed_due_at(world, lead_id) is None

    # When the request is repeated (clients retry)
    again = call("POST", token, body="List-Unsubscribe=One-Click")
    # Then the answer is the same and nothing changes (nor is counted)
    assert again["statusCode"] == 200
    assert lead_of(world, lead_id) == lead
    assert activities(world, lead_id)["unsubscribed"] == 1
    assert metric_counts(capsys.readouterr().out) == {}

    # and no later tick mails it again
    for _ in range(3):
        world.advance(2 * DAY)
        assert world.run() == 0
    assert steps_sent(world) == ["welcome"]


def test_the_button_on_the_page_opts_out_too(world: NurtureWorld, call: Call) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1

    response = call("POST", token_from(world.ses.sent[0]), body="via=page")

    assert response["statusCode"] == 200
    assert lead_of(world, lead_id).unsubscribed
    assert activity(world, lead_id, ActivityType.UNSUBSCRIBED) == {"via": "page"}


def test_an_unsubscribe_for_a_lead_that_no_longer_exists_is_still_confirmed(
    world: NurtureWorld, call: Call
) -> None:
    response = call("POST", world.tokens.sign(new_id()), body="List-Unsubscribe=One-Click")
    assert response["statusCode"] == 200
    assert "配信を停止しました" in response["body"]


def test_a_multipart_one_click_post_is_recorded_as_one_click(
    world: NurtureWorld, call: Call
) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    boundary = "----one-click"
    body = multipart_body({"List-Unsubscribe": "One-Click"}, boundary=boundary)

    response = call(
        "POST",
        token_from(world.ses.sent[0]),
        body=body,
        base64_encoded=True,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert response["statusCode"] == 200
    assert lead_of(world, lead_id).unsubscribed
    assert activity(world, lead_id, ActivityType.UNSUBSCRIBED) == {"via": "one_click"}


def test_a_forged_or_altered_token_gets_a_clear_page_and_changes_nothing(
    world: NurtureWorld, call: Call
) -> None:
    # Given a lead in its program and its genuine token
    lead_id = enrol(world, "linear")
    before = lead_of(world, lead_id)
    token = world.tokens.sign(lead_id)
    other_secret = UnsubscribeTokens(b"someone-elses-secret-0123456789")
    forgeries: dict[str, str | None] = {
        "another lead id": new_id() + token[32:],
        "altered MAC": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "truncated": token[:-3],
        "lead id only": lead_id,
        "signed with another secret": other_secret.sign(lead_id),
        "non-ASCII MAC": f"{lead_id}.é",
        "empty": "",
        "missing": None,
    }

    # When each is used to open the page or to opt out
    for name, forged in forgeries.items():
        for method in ("GET", "POST"):
            response = call(method, forged, body="List-Unsubscribe=One-Click")

            # Then the answer is a clear page, not an error
            assert response["statusCode"] == 400, (name, method)
            assert header(response, "Content-Type") == "text/html; charset=utf-8"
            assert "このリンクは無効です" in response["body"], (name, method)
            assert "Traceback" not in response["body"]

    # and nothing changed
    assert lead_of(world, lead_id) == before
    assert activities(world, lead_id)["unsubscribed"] == 0
    assert indexed_due_at(world, lead_id) == to_iso(world.clock.now())


# -- the send window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "opening"),
    [
        pytest.param(
            datetime(2026, 11, 23, 9, 30, tzinfo=JST),
            datetime(2026, 11, 24, 9, 0, tzinfo=JST),
            id="勤労感謝の日 Monday 09:30",
        ),
        pytest.param(
            datetime(2026, 11, 28, 10, 0, tzinfo=JST),
            datetime(2026, 11, 30, 9, 0, tzinfo=JST),
            id="Saturday 10:00",
        ),
        pytest.param(
            datetime(2026, 11, 25, 20, 0, tzinfo=JST),
            datetime(2026, 11, 26, 9, 0, tzinfo=JST),
            id="Wednesday 20:00",
        ),
    ],
)
def test_outside_the_window_the_lead_is_rescheduled_to_the_next_opening_and_sent_then(
    world: NurtureWorld, now: datetime, opening: datetime
) -> None:
    # Given a lead due at a moment the window is closed
    world.clock.set(now.astimezone(UTC))
    lead_id = enrol(world, "linear")

    # When the scheduler ticks
    assert world.run() == 0

    # Then nothing is sent, and the lead is due again at the next opening, not dropped
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert (enrolment.step_id, enrolment.due_at) == ("welcome", opening)
    assert indexed_due_at(world, lead_id) == to_iso(opening)
    details = activity(world, lead_id, ActivityType.RESCHEDULED)
    assert details["reason"] == "send_window"
    assert details["due_at"] == to_iso(opening)

    # and nothing goes a minute before the opening
    world.clock.set(opening.astimezone(UTC) - MINUTE)
    assert world.run() == 0
    # but at the opening, the welcome email goes
    world.clock.set(opening.astimezone(UTC))
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["welcome"]


def test_a_lead_posted_on_the_holiday_gets_the_welcome_email_on_tuesday_morning(
    shipped: NurtureWorld, post: Post, clock: FixedClock
) -> None:
    # Given a lead posted on 勤労感謝の日 (Monday 2026-11-23) at 09:30 JST
    form: dict[str, str | list[str]] = {
        "email": "hanako@example.co.jp",
        "form_type": "seminar_registration",
        "consent": "on",
    }
    assert post(form_post(form, headers=ACCEPT_JSON))["statusCode"] == 201
    lead = shipped.repository.find_by_email("hanako@example.co.jp")
    assert lead is not None

    # When the scheduler ticks that day, nothing goes
    assert shipped.run() == 0
    tuesday_9 = datetime(2026, 11, 24, 9, 0, tzinfo=JST)
    assert indexed_due_at(shipped, lead.lead_id) == to_iso(tuesday_9)
    clock.advance(timedelta(hours=6))
    assert shipped.run() == 0

    # Then the welcome email goes at 09:00 on Tuesday
    clock.set(tuesday_9.astimezone(UTC))
    assert shipped.run() == 1
    assert shipped.ses.sent[0].tags["step"] == "welcome"


# -- the frequency cap -------------------------------------------------------------------------


def test_the_frequency_cap_holds_back_the_third_email_until_the_oldest_ages_out(
    clock: FixedClock, dynamodb: Any, lambda_context: Any
) -> None:
    # Given a cap of 2 emails per 7 days and a program of 3 steps with no wait
    clock.set(TUESDAY_10.astimezone(UTC))
    world = build_world(clock, dynamodb, TABLE, lambda_context, programs=catalog(), frequency_cap=2)
    lead_id = enrol(world, "burst")
    first_sent = clock.now()

    # When the scheduler ticks at once, an hour later, then twice a day for the week
    assert world.run() == 1
    world.advance(timedelta(hours=1))
    assert world.run() == 1
    sent_in_week = 2
    while clock.now() + timedelta(hours=12) < first_sent + 7 * DAY:
        world.advance(timedelta(hours=12))
        sent_in_week += world.run()
    clock.set(first_sent + 7 * DAY - MINUTE)
    sent_in_week += world.run()

    # Then only 2 emails went in those 7 days
    assert sent_in_week == 2
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    ages_out = first_sent + 7 * DAY
    assert (enrolment.step_id, enrolment.due_at) == ("whitepaper", ages_out)
    assert indexed_due_at(world, lead_id) == to_iso(ages_out)
    assert activity(world, lead_id, ActivityType.RESCHEDULED)["reason"] == "frequency_cap"

    # and the third goes when the oldest send ages out
    clock.set(ages_out)
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["welcome", "case_study", "whitepaper"]
    assert lead_of(world, lead_id).recent_sends == (first_sent + timedelta(hours=1), ages_out)


# -- exactly once --------------------------------------------------------------------------------


def assert_sent_once(world: NurtureWorld, lead_id: str) -> None:
    assert steps_sent(world) == ["welcome"]
    lead = lead_of(world, lead_id)
    assert lead.enrolment is not None
    assert lead.enrolment.step_id == "case_study"  # moved on once, not twice
    assert activities(world, lead_id)["email_sent"] == 1
    assert len(lead.recent_sends) == 1


def test_a_duplicate_job_sends_one_email(world: NurtureWorld) -> None:
    lead_id = enrol(world, "linear")
    assert world.tick()["queued"] == 1
    # the same job queued a second time (SQS delivers at least once)
    SqsJobQueue(world.sqs, world.queue_url).enqueue([SendJob(lead_id, "linear", "welcome")])
    assert queued(world) == 2

    assert world.drain() == 2

    assert_sent_once(world, lead_id)


def test_the_same_message_delivered_twice_sends_one_email(world: NurtureWorld) -> None:
    lead_id = enrol(world, "linear")
    world.tick()
    first = world.receive()
    second = world.receive()  # visible again: received a second time
    assert [m["MessageId"] for m in first] == [m["MessageId"] for m in second]

    world.deliver(first)
    world.deliver(second)

    assert_sent_once(world, lead_id)


def test_a_retried_batch_sends_one_email(world: NurtureWorld) -> None:
    lead_ids = [enrol(world, "linear") for _ in range(3)]
    world.tick()
    batch = world.receive()
    assert len(batch) == 3

    world.deliver(batch)
    retried = world.deliver(batch)

    assert retried["batchItemFailures"] == []
    assert sorted(e.tags["lead_id"] for e in world.ses.sent) == sorted(lead_ids)


def test_overlapping_ticks_queue_one_job_and_send_one_email(world: NurtureWorld) -> None:
    lead_id = enrol(world, "linear")

    first = world.tick()
    second = world.tick()

    assert (first["leased"], first["queued"]) == (1, 1)
    assert (second["leased"], second["queued"]) == (0, 0)
    assert queued(world) == 1
    world.drain()
    assert_sent_once(world, lead_id)


def test_a_duplicate_job_handled_while_the_first_is_sending_sends_nothing(
    world: NurtureWorld,
) -> None:
    # Given a due lead whose job is being handled
    lead_id = enrol(world, "linear")
    job = SendJob(lead_id, "linear", "welcome")
    refused: list[Exception] = []

    def duplicate() -> None:
        try:
            world.sender.process(job)
        except StepBeingSent as exc:
            refused.append(exc)

    # and a duplicate of the job that another sender handles while the email is going out
    world.ses.during_send.append(duplicate)

    # When the first one sends
    assert world.sender.process(job) is Outcome.SENT

    # Then the duplicate found the fresh claim, sent nothing and failed (SQS retries it)
    assert len(refused) == 1
    assert_sent_once(world, lead_id)
    # and once redelivered, it finds the step sent and does nothing
    assert world.sender.process(job) is Outcome.STALE
    assert_sent_once(world, lead_id)
    item = ledger_item(world, lead_id, "welcome")
    assert item is not None
    assert item["status"]["S"] == "sent"


def test_a_lost_job_is_queued_again_when_its_lease_runs_out(world: NurtureWorld) -> None:
    lead_id = enrol(world, "linear")
    assert world.tick()["queued"] == 1
    # the job is lost (e.g. purged); the lease is 10 minutes
    world.sqs.purge_queue(QueueUrl=world.queue_url)
    world.advance(9 * MINUTE)
    assert world.tick()["queued"] == 0
    world.advance(MINUTE)
    assert world.run() == 1
    assert steps_sent(world, lead_id) == ["welcome"]


def test_a_job_retried_after_a_crash_between_send_and_advance_sends_nothing_again(
    world: NurtureWorld,
) -> None:
    # Given a lead whose welcome email was sent, but the sender died before moving it on
    lead_id = enrol(world, "linear")
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    program = world.programs.get("linear")
    assert program is not None
    key = ledger_key(enrolment, program.step("welcome"))
    claimed_at = world.clock.now()
    assert world.ledger.claim(lead_id, key, claimed_at) is None
    job = SendJob(lead_id, "linear", "welcome")

    # When the job is retried at once, it may still be sending: it fails, to be retried
    with pytest.raises(StepBeingSent):
        world.sender.process(job)
    # and when it is retried after the grace a send takes at most
    world.advance(SEND_GRACE)
    assert world.sender.process(job) is Outcome.UNCERTAIN

    # Then no email goes; the step counts as sent (the cap sees it), explained
    assert world.ses.sent == []
    lead = lead_of(world, lead_id)
    assert lead.enrolment is not None
    assert lead.enrolment.step_id == "case_study"
    assert "welcome" in lead.enrolment.sent
    assert claimed_at in lead.recent_sends
    assert activity(world, lead_id, ActivityType.EMAIL_SEND_UNCERTAIN)["reason"] == "interrupted"
    item = ledger_item(world, lead_id, "welcome")
    assert item is not None
    assert item["status"]["S"] == "uncertain"


# -- SES errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "metric"),
    [
        (None, "EmailsSent"),
        ("TooManyRequestsException", "SendsThrottled"),
        ("MessageRejected", "SendsRejected"),
        ("ServiceUnavailable", "SendsUncertain"),
    ],
)
def test_the_sender_counts_what_ses_answered_once_per_batch(
    world: NurtureWorld, capsys: pytest.CaptureFixture[str], failure: str | None, metric: str
) -> None:
    # Given three leads due at once, SES answering the first send as given
    for _ in range(3):
        enrol(world, "linear")
    if failure is not None:
        world.ses.failures.append(failure)

    # When the sender handles their jobs (one batch)
    world.run()

    # Then one metric document counts each answer under the sender
    out = capsys.readouterr().out
    assert len(emf_documents(out)) == 1
    expected = {("sender", "EmailsSent"): 3 if failure is None else 2}
    if failure is not None:
        expected["sender", metric] = 1
    assert metric_counts(out) == expected


def test_ses_throttling_retries_later_and_then_sends_exactly_once(world: NurtureWorld) -> None:
    # Given SES over its send rate
    lead_id = enrol(world, "linear")
    world.ses.failures.append("TooManyRequestsException")
    throttled_at = world.clock.now()

    # When the lead is due
    assert world.run() == 0

    # Then nothing was sent; the lead is due again about 5 minutes later, step unchanged
    lead = lead_of(world, lead_id)
    assert lead.enrolment is not None
    assert (lead.enrolment.step_id, lead.enrolment.due_at) == (
        "welcome",
        throttled_at + timedelta(minutes=5),
    )
    assert indexed_due_at(world, lead_id) == to_iso(throttled_at + timedelta(minutes=5))
    assert activity(world, lead_id, ActivityType.RESCHEDULED)["reason"] == "throttled"
    assert not lead.suppressed
    # and the send ledger was released, so the retry may send
    assert ledger_item(world, lead_id, "welcome") is None
    assert queued(world) == 0  # the job itself succeeded: no redelivery storm

    # When the clock moves past the backoff
    world.advance(4 * MINUTE)
    assert world.run() == 0
    world.advance(MINUTE)
    assert world.run() == 1

    # Then exactly one email went and the lead moved on
    assert_sent_once(world, lead_id)
    item = ledger_item(world, lead_id, "welcome")
    assert item is not None
    assert item["status"]["S"] == "sent"
    world.advance(10 * MINUTE)
    assert world.run() == 0


def test_ses_rejection_suppresses_the_address_and_nothing_is_sent_again(
    world: NurtureWorld,
) -> None:
    # Given SES refusing the message for good
    lead_id = enrol(world, "linear")
    world.ses.failures.append("MessageRejected")

    # When the lead is due
    assert world.run() == 0

    # Then nothing was sent and the lead is suppressed, out of its program and the index
    lead = lead_of(world, lead_id)
    assert lead.suppressed
    assert lead.suppression_reason == "ses:MessageRejected"
    assert lead.enrolment is not None
    assert lead.enrolment.outcome == "exited:suppressed"
    assert lead.enrolment.due_at is None
    assert indexed_due_at(world, lead_id) is None
    assert activity(world, lead_id, ActivityType.SUPPRESSED) == {"reason": "ses:MessageRejected"}
    item = ledger_item(world, lead_id, "welcome")
    assert item is not None
    assert item["status"]["S"] == "rejected"
    assert queued(world) == 0

    # and later ticks send nothing
    for _ in range(3):
        world.advance(2 * DAY)
        assert world.run() == 0
    assert world.ses.sent == []


def test_a_clear_ses_error_releases_the_step_and_the_retry_sends_it(
    world: NurtureWorld,
) -> None:
    # Given SES refusing the call with a client error that is neither throttling nor a
    # rejection of the message (nothing was sent)
    lead_id = enrol(world, "linear")
    world.ses.failures.append("AccountSuspendedException")
    world.tick()

    # When the sender handles the job
    first = world.deliver(world.receive())

    # Then the job is reported as failed (SQS will redeliver it), nothing was sent,
    # the step is still pending and the ledger claim was released
    assert len(first["batchItemFailures"]) == 1
    assert world.ses.sent == []
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.step_id == "welcome"
    assert ledger_item(world, lead_id, "welcome") is None
    assert not lead_of(world, lead_id).suppressed

    # and when SQS redelivers it, the email goes, once
    world.deliver(world.receive())
    assert_sent_once(world, lead_id)


@pytest.mark.parametrize("code", ["InternalFailure", "ServiceUnavailable"])
def test_an_ses_server_error_keeps_the_step_claimed_and_never_mails_twice(
    world: NurtureWorld, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given SES answering with a server error (it may have accepted the email first)
    lead_id = enrol(world, "linear")
    world.ses.failures.append(code)
    sent_at = world.clock.now()
    world.tick()

    # When the sender handles the job, and SQS would deliver it again
    first = world.deliver(world.receive())
    assert first["batchItemFailures"] == []
    # and the sender says so in its metric (embedded metric format, alarmed)
    assert metric_counts(capsys.readouterr().out) == {("sender", "SendsUncertain"): 1}

    # Then the step counts as sent (never sent again), with the uncertainty on the timeline
    lead = lead_of(world, lead_id)
    assert lead.enrolment is not None
    assert lead.enrolment.step_id == "case_study"
    assert lead.enrolment.sent["welcome"].message_id is None
    assert sent_at in lead.recent_sends
    assert activity(world, lead_id, ActivityType.EMAIL_SEND_UNCERTAIN)["reason"] == code
    item = ledger_item(world, lead_id, "welcome")
    assert item is not None
    assert item["status"]["S"] == "uncertain"
    assert world.ses.sent == []
    assert world.run() == 0
    # and the report counts it apart from the emails known to be sent
    variant = lead.enrolment.sent["welcome"].variant
    assert counters(world.dynamodb, sent_at)[f"email#linear#welcome#{variant}"] == {"uncertain": 1}


# -- consent and exit rules -------------------------------------------------------------------


def test_a_lead_posted_without_consent_is_never_mailed(
    shipped: NurtureWorld, post: Post, clock: FixedClock
) -> None:
    clock.set(TUESDAY_10.astimezone(UTC))
    form: dict[str, str | list[str]] = {"email": "no-consent@example.co.jp", "form_type": "inquiry"}
    assert post(form_post(form, headers=ACCEPT_JSON))["statusCode"] == 201
    lead = shipped.repository.find_by_email("no-consent@example.co.jp")
    assert lead is not None
    assert not lead.consent.opted_in
    assert lead.enrolment is None
    assert indexed_due_at(shipped, lead.lead_id) is None

    for _ in range(5):
        assert shipped.run() == 0
        clock.advance(DAY)
    assert shipped.ses.sent == []


def test_the_sender_rechecks_consent_even_when_a_job_arrives(world: NurtureWorld) -> None:
    # Given an enrolled lead without a recorded opt-in (e.g. imported), which the due
    # index leaves out, and a job for it anyway
    lead_id = enrol(world, "linear", consent=False)
    assert indexed_due_at(world, lead_id) is None
    assert world.tick()["due"] == 0
    SqsJobQueue(world.sqs, world.queue_url).enqueue([SendJob(lead_id, "linear", "welcome")])

    # When the sender handles it
    world.drain()

    # Then no email goes and the lead leaves the program
    assert world.ses.sent == []
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.outcome == "exited:no_consent"
    assert activity(world, lead_id, ActivityType.PROGRAM_EXITED)["reason"] == "no_consent"


def test_a_lead_that_became_mql_exits_the_program_without_an_email(world: NurtureWorld) -> None:
    # Given a lead that got its welcome email
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    # When sales qualifies it before its next step
    world.advance(DAY)
    change(world, lead_id, stage=Stage.MQL)
    world.advance(DAY)
    # Then the next step is not sent; the lead exits
    assert world.run() == 0
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.outcome == "exited:stage:mql"
    assert enrolment.due_at is None
    assert activity(world, lead_id, ActivityType.PROGRAM_EXITED) == {
        "program_id": "linear",
        "reason": "stage:mql",
    }
    assert indexed_due_at(world, lead_id) is None
    world.advance(7 * DAY)
    assert world.run() == 0
    assert steps_sent(world) == ["welcome"]


def test_a_job_for_a_step_the_lead_has_left_is_stale_and_sends_nothing(
    world: NurtureWorld,
) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    SqsJobQueue(world.sqs, world.queue_url).enqueue([SendJob(lead_id, "linear", "welcome")])
    SqsJobQueue(world.sqs, world.queue_url).enqueue([SendJob(lead_id, "burst", "welcome")])
    SqsJobQueue(world.sqs, world.queue_url).enqueue([SendJob(new_id(), "linear", "welcome")])
    assert world.drain() == 3
    assert steps_sent(world) == ["welcome"]
    assert queued(world) == 0


# -- the sender and scheduler handlers -------------------------------------------------------


def test_a_poison_message_is_reported_while_the_rest_of_the_batch_succeeds(
    world: NurtureWorld,
) -> None:
    lead_ids = [enrol(world, "linear") for _ in range(2)]
    world.tick()
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody="{not json")
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody='{"program_id": "linear"}')
    batch = world.receive()
    assert len(batch) == 4
    poison = {m["MessageId"] for m in batch if not m["Body"].startswith('{"lead_id"')}

    response = world.deliver(batch)

    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == poison
    assert sorted(e.tags["lead_id"] for e in world.ses.sent) == sorted(lead_ids)
    # the good messages were deleted; the poison ones stay for SQS to retry / dead-letter
    assert sorted(m["Body"] for m in world.receive()) == ['{"program_id": "linear"}', "{not json"]


@pytest.fixture
def dynamodb_calls(dynamodb: Any) -> Iterator[Counter[str]]:
    """Counts DynamoDB calls and the items that Queries return, on the shared client."""
    counts: Counter[str] = Counter()

    def after_query(parsed: dict[str, Any], **_: Any) -> None:
        counts["Query"] += 1
        counts["query items"] += len(parsed.get("Items", []))

    def before_scan(**_: Any) -> None:
        counts["Scan"] += 1

    events = dynamodb.meta.events
    events.register("after-call.dynamodb.Query", after_query)
    events.register("before-call.dynamodb.Scan", before_scan)
    yield counts
    events.unregister("after-call.dynamodb.Query", after_query)
    events.unregister("before-call.dynamodb.Scan", before_scan)


def test_scheduler_work_grows_with_due_leads_not_with_all_leads(
    world: NurtureWorld, dynamodb_calls: Counter[str]
) -> None:
    # Given 50 leads that are not due (due later, or not mailable) and 3 due
    now = world.clock.now()
    for i in range(50):
        if i % 5:
            enrol(world, "linear", due_in=(i + 1) * MINUTE)
        else:
            enrol(world, "linear", consent=False)  # never due: not in the index at all
    due = [enrol(world, "linear") for _ in range(3)]
    dynamodb_calls.clear()

    # When the scheduler ticks
    result = world.tick()

    # Then it read, leased and queued the 3 due leads only: one Query per shard, no Scan
    assert result == {"due": 3, "leased": 3, "queued": 3, "held": 0, "paused": False}
    assert dynamodb_calls["query items"] == 3
    assert dynamodb_calls["Query"] == 16
    assert dynamodb_calls["Scan"] == 0
    bodies = [m["Body"] for m in world.receive()]
    assert len(bodies) == 3 == queued(world)
    assert sorted(SendJob.from_json(b).lead_id for b in bodies) == sorted(due)
    # the leases moved the 3 due leads 10 minutes ahead in the index
    assert {indexed_due_at(world, i) for i in due} == {to_iso(now + 10 * MINUTE)}


def test_many_due_leads_are_queued_in_batches_and_all_sent(world: NurtureWorld) -> None:
    lead_ids = [enrol(world, "linear") for _ in range(12)]  # two SendMessageBatch calls

    result = world.tick()

    assert result == {"due": 12, "leased": 12, "queued": 12, "held": 0, "paused": False}
    assert queued(world) == 12
    assert world.drain() == 12
    assert sorted(e.tags["lead_id"] for e in world.ses.sent) == sorted(lead_ids)
    assert world.run() == 0


# -- experiments ------------------------------------------------------------------------------

BANDIT = Program.model_validate(
    yaml.safe_load(
        """
id: bandit
name: テスト（バンディット）
entry: {stages: [lead]}
send_window:
  {timezone: Asia/Tokyo, weekdays: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
steps:
  - id: invite
    template: seminar_invitation
    content_type: seminar_invitation
    subject:
      ja: ["セミナーのご案内", "【残席わずか】セミナーのご案内"]
      en: ["Seminar invitation", "[Few seats left] Seminar invitation"]
    experiment: {allocation: bandit, metric: clicks, min_share: 0.05}
"""
    )
)


def test_a_bandit_step_sends_most_leads_the_variant_people_click(
    clock: FixedClock, dynamodb: Any, lambda_context: Any
) -> None:
    # Given a bandit step whose variant B has been clicked far more often this month
    clock.set(TUESDAY_10.astimezone(UTC))
    world = build_world(clock, dynamodb, TABLE, lambda_context, programs=ProgramCatalog([BANDIT]))
    counts = DynamoCounters(dynamodb, TABLE)
    yesterday = (world.clock.now() - DAY).astimezone(JST).date()
    for variant, sent, clicks in [("A", 500, 5), ("B", 500, 60)]:
        counts.count(yesterday, f"email#bandit#invite#{variant}", "sent", sent)
        counts.count(yesterday, f"email#bandit#invite#{variant}", "unique_human_clicks", clicks)

    # When forty leads are due
    for _ in range(40):
        enrol(world, "bandit")
    assert world.run() == 40

    # Then most get B, and A keeps some of the sends; each send is counted for its variant
    given = Counter(email.tags["variant"] for email in world.ses.sent)
    assert given["B"] >= 30
    today = counters(world.dynamodb, world.clock.now())
    assert today["email#bandit#invite#B"]["sent"] == given["B"]
    assert today.get("email#bandit#invite#A", {}).get("sent", 0) == given["A"]


# -- send-time optimisation ---------------------------------------------------------------

TIMED = Program.model_validate(
    {
        **yaml.safe_load((FIXTURE_PROGRAMS / "linear.yaml").read_text(encoding="utf-8")),
        "id": "timed",
        "send_time": {"optimise": True, "holdout": 0, "min_engagements": 3},
    }
)


def test_a_lead_that_reads_at_two_gets_its_next_email_at_two(
    clock: FixedClock, dynamodb: Any, lambda_context: Any
) -> None:
    # Given a program that optimises send times, and a lead that opened and clicked at
    # 14:00 on earlier days
    clock.set(TUESDAY_10.astimezone(UTC))
    world = build_world(clock, dynamodb, TABLE, lambda_context, programs=ProgramCatalog([TIMED]))
    lead_id = enrol(world, "timed", engaged_hours={"14": 3}, engaged_weekdays={"wed": 3})

    # When it is sent the welcome email (Tuesday 10:00)
    assert world.run() == 1

    # Then the case study, due two days on (Thursday 10:00), waits for Thursday 14:00
    enrolment = lead_of(world, lead_id).enrolment
    assert enrolment is not None
    assert enrolment.due_at == datetime(2026, 11, 26, 14, 0, tzinfo=JST)
    assert indexed_due_at(world, lead_id) == to_iso(datetime(2026, 11, 26, 5, 0, tzinfo=UTC))
    # and the email says which send-time group it was sent in, for the report's lift
    assert world.ses.sent[0].tags["send_time"] == "optimised"
    assert counters(world.dynamodb, world.clock.now())["sendtime#optimised"] == {"sent": 1}
    world.advance(2 * DAY)
    assert world.run() == 0
    world.advance(4 * HOUR)
    assert world.run() == 1


def test_a_persons_click_teaches_the_lead_its_hour_and_a_scanners_does_not(
    world: NurtureWorld, lambda_context: Any
) -> None:
    lead_id = enrol(world, "linear")
    assert world.run() == 1
    (sent,) = world.ses.sent
    deliver = engagement(recorder(world.dynamodb, world.clock), lambda_context)
    at = world.clock.now() + 5 * HOUR  # 15:00 in Tokyo
    person = ses_record(
        "click", lead_id=lead_id, email=sent.to[0], at=at, message_id=sent.message_id,
        program="linear", step="welcome", variant=sent.tags["variant"],
    )  # fmt: skip
    scanner = ses_record(
        "click", lead_id=lead_id, email=sent.to[0], at=at + HOUR, message_id=sent.message_id,
        program="linear", step="welcome", variant=sent.tags["variant"],
        userAgent="python-requests/2.32.3", ipAddress="198.51.100.7",
    )  # fmt: skip
    assert deliver([raw(person)]).failed == []
    assert deliver([raw(scanner)]).failed == []

    # only the person's click counts towards the lead's hours
    lead = lead_of(world, lead_id)
    assert (lead.engaged_hours, lead.engaged_weekdays) == ({"15": 1}, {"tue": 1})


SEND_TIMES = Program.model_validate(
    yaml.safe_load(
        """
id: send_times
name: テスト（配信時刻の A/B）
entry: {stages: [lead]}
steps:
  - id: welcome
    template: welcome
    content_type: welcome
    subject: {ja: ["ご登録ありがとうございます"], en: ["Thank you for signing up"]}
  - id: case_study
    wait: P2D
    template: case_study
    content_type: case_study
    subject:
      ja: ["【導入事例】A", "【導入事例】B"]
      en: ["[Case study] A", "[Case study] B"]
    experiment:
      send_times: [null, {weekdays: [fri], hour: 16}]
"""
    )
)


def test_a_send_time_variant_moves_its_leads_to_its_weekday_and_hour(
    clock: FixedClock, dynamodb: Any, lambda_context: Any
) -> None:
    # Given a step whose variant B is sent on Fridays at 16:00, A at the program's time
    clock.set(TUESDAY_10.astimezone(UTC))
    catalog_ = ProgramCatalog([SEND_TIMES])
    world = build_world(clock, dynamodb, TABLE, lambda_context, programs=catalog_)
    leads = [enrol(world, "send_times") for _ in range(12)]

    # When they are sent the welcome email on Tuesday 10:00
    assert world.run() == 12

    # Then each lead's case study is due at its variant's time
    step = SEND_TIMES.step("case_study")
    thursday_10 = datetime(2026, 11, 26, 10, 0, tzinfo=JST)
    friday_16 = datetime(2026, 11, 27, 16, 0, tzinfo=JST)
    due = {}
    for lead_id in leads:
        enrolment = lead_of(world, lead_id).enrolment
        assert enrolment is not None
        due[lead_id] = enrolment.due_at
        variant = variant_of(lead_id, SEND_TIMES, step)
        assert enrolment.due_at == (friday_16 if variant == 1 else thursday_10)
    assert len(set(due.values())) == 2
    # and on Friday at 16:00 every B has gone out, labelled B
    world.advance(friday_16 - world.clock.now())
    world.run()
    labels = {
        e.tags["lead_id"]: e.tags["variant"]
        for e in world.ses.sent
        if e.tags["step"] == "case_study"
    }
    assert set(labels) == set(leads)
    assert all(labels[lead] == variant_label(variant_of(lead, SEND_TIMES, step)) for lead in leads)

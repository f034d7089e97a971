"""Telling a machine's opens and clicks from a person's (pure rules, no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.domain.machine_engagement import (
    BURST,
    DELIVERY_WINDOW,
    MAX_EVENTS,
    TRAP_LINK,
    EngagementRules,
    Kind,
    MailAction,
    MailRecord,
    counter_delta,
    load_engagement_rules,
    screen,
    tracked_links,
)

RULES = load_engagement_rules()
SENT = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def action(
    key: str,
    at: datetime,
    kind: Kind = Kind.CLICK,
    link: str | None = None,
    tags: tuple[str, ...] = (),
    **fields: Any,
) -> MailAction:
    if kind is Kind.CLICK and link is None:
        link = f"https://www.example.co.jp/{key}"
    return MailAction(key=key, kind=kind, at=at, link=link, link_tags=tags, **fields)


def record(*events: MailAction, **fields: Any) -> MailRecord:
    fields.setdefault("sent_at", SENT)
    return MailRecord(lead_id="lead", message_id="m-1", events=events, **fields)


def reasons(screened: MailRecord) -> dict[str, tuple[str, ...]]:
    return {e.key: e.reasons for e in screened.events}


# -- the content file ------------------------------------------------------------------------


def test_the_shipped_rules_load_with_every_documented_signal() -> None:
    assert RULES.delivery_window == timedelta(seconds=10)
    assert RULES.burst.window == timedelta(seconds=5)
    assert RULES.trap_link == "trap"
    names = {agent.name for agent in RULES.agents}
    assert {"apple_mail_privacy", "microsoft_defender", "proofpoint", "mimecast"} <= names
    assert all(agent.title for agent in RULES.agents)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agents": [{"name": "x", "title": "X", "ip_ranges": ["10.0.0.0/33"]}]}, "CIDR"),
        ({"agents": [{"name": "x", "title": "X"}]}, "needs user_agents"),
        ({"agents": [{"name": "x", "title": "X", "user_agents": [" "]}]}, "blank user agent"),
        (
            {
                "agents": [
                    {"name": "x", "title": "X", "user_agents": ["a"]},
                    {"name": "x", "title": "Y", "user_agents": ["b"]},
                ]
            },
            "listed twice",
        ),
        ({"burst": {"window_seconds": 5, "min_links": 1, "share": 0.5}}, "min_links"),
        ({"burst": {"window_seconds": 5, "min_links": 3, "share": 1.5}}, "share"),
        ({"trap_link": "trap; other"}, "trap_link"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_broken_rule_file_names_what_is_wrong(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    document = RULES.model_dump(mode="json")
    document.update(change)
    path = tmp_path / "engagement.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_engagement_rules(path)


# -- who made it, from the event alone -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "user_agent", "ip", "expected"),
    [
        (Kind.OPEN, "Mozilla/5.0", "172.225.80.14", ("agent:apple_mail_privacy",)),
        # Apple's proxy fetches images, it follows no link
        (Kind.CLICK, "Mozilla/5.0", "172.225.80.14", ()),
        (Kind.CLICK, CHROME, "40.107.74.21", ("agent:microsoft_defender",)),
        (Kind.OPEN, CHROME, "104.47.58.100", ("agent:microsoft_defender",)),
        (Kind.CLICK, CHROME, "148.163.150.12", ("agent:proofpoint",)),
        (Kind.CLICK, CHROME, "205.139.110.60", ("agent:mimecast",)),
        (Kind.CLICK, "python-requests/2.32.3", "198.51.100.7", ("agent:automation",)),
        (Kind.CLICK, "Mozilla/5.0 HeadlessChrome/120.0", "198.51.100.7", ("agent:automation",)),
        (Kind.OPEN, "", "198.51.100.7", ("agent:blank_user_agent",)),
        (Kind.OPEN, None, None, ("agent:blank_user_agent",)),
        # People: Gmail's proxy fetches when the reader opens; office browsers; IPv6
        (
            Kind.OPEN,
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
            "GoogleImageProxy)",
            "66.249.84.10",
            (),
        ),
        (Kind.CLICK, CHROME, "203.0.113.25", ()),
        (Kind.CLICK, CHROME, "2001:db8::1", ()),
        (Kind.CLICK, CHROME, "not an address", ()),
    ],
)
def test_the_event_alone_names_known_scanners_and_proxies(
    kind: Kind, user_agent: str | None, ip: str | None, expected: tuple[str, ...]
) -> None:
    assert RULES.agent_reasons(kind, user_agent, ip) == expected


def test_a_blank_user_agent_can_be_allowed() -> None:
    lenient = RULES.model_copy(update={"blank_user_agent_is_machine": False})
    assert lenient.agent_reasons(Kind.OPEN, "", "198.51.100.7") == ()


# -- on the email's record -------------------------------------------------------------------


def test_within_the_delivery_window_of_the_delivery_else_of_the_send() -> None:
    delivered = SENT + timedelta(minutes=10)
    events = (
        action("early", delivered + 2 * SECOND, Kind.OPEN),
        action("edge", delivered + 10 * SECOND),
        action("later", delivered + 11 * SECOND, Kind.OPEN),
        # before the delivery was reported: a gateway scanning inside the SMTP session
        action("before", delivered - SECOND, Kind.OPEN),
    )
    screened, turned = screen(record(*events, delivered_at=delivered), RULES)
    assert reasons(screened) == {
        "early": (DELIVERY_WINDOW,),
        "edge": (DELIVERY_WINDOW,),
        "later": (),
        "before": (DELIVERY_WINDOW,),
    }
    assert set(turned) == {"early", "edge", "before"}
    # Without a delivery, the send time is the reference
    screened, _ = screen(record(action("o", SENT + 3 * SECOND, Kind.OPEN)), RULES)
    assert screened.events[0].reasons == (DELIVERY_WINDOW,)


def test_a_burst_needs_most_of_the_emails_links_within_seconds() -> None:
    start = SENT + timedelta(hours=1)
    three = [action(f"c{i}", start + i * SECOND) for i in range(3)]
    # An email of eight links: four different ones are needed (share 0.5)
    assert RULES.burst.links_needed(8) == 4
    screened, _ = screen(record(*three, links=8), RULES)
    assert all(e.reasons == () for e in screened.events)
    four = [*three, action("c3", start + 3 * SECOND)]
    screened, turned = screen(record(*four, links=8), RULES)
    assert all(e.reasons == (BURST,) for e in screened.events)
    assert set(turned) == {"c0", "c1", "c2", "c3"}
    # An email of five: three are enough; too slow (more than 5 s apart) is a person
    screened, _ = screen(record(*three, links=5), RULES)
    assert all(e.reasons == (BURST,) for e in screened.events)
    slow = [action(f"s{i}", start + i * 3 * SECOND) for i in range(3)]
    screened, _ = screen(record(*slow, links=5), RULES)
    assert all(e.reasons == () for e in screened.events)


def test_clicking_one_link_again_and_again_is_no_burst() -> None:
    start = SENT + timedelta(hours=1)
    same = [action(f"c{i}", start + i * SECOND / 2, link="https://x.example/a") for i in range(6)]
    screened, _ = screen(record(*same, links=5), RULES)
    assert all(e.reasons == () for e in screened.events)


def test_an_email_with_too_few_links_has_no_burst_rule() -> None:
    assert RULES.burst.links_needed(2) is None
    start = SENT + timedelta(hours=1)
    two = [action(f"c{i}", start + i * SECOND / 2) for i in range(2)]
    screened, _ = screen(record(*two, links=2), RULES)
    assert all(e.reasons == () for e in screened.events)


def test_the_trap_link_marks_itself_and_the_clicks_near_it_but_not_a_later_reader() -> None:
    start = SENT + timedelta(hours=2)
    events = (
        action("before", start - 4 * SECOND),
        action("trap", start, tags=("trap",)),
        action("after", start + 5 * SECOND),
        action("reader", start + timedelta(minutes=3)),
        action("open", start, Kind.OPEN),
    )
    screened, _ = screen(record(*events, links=9), RULES)
    assert reasons(screened) == {
        "before": (TRAP_LINK,),
        "trap": (TRAP_LINK,),
        "after": (TRAP_LINK,),
        "reader": (),
        "open": (),
    }


def test_peers_from_the_same_batch_show_a_burst_before_they_are_recorded() -> None:
    start = SENT + timedelta(hours=1)
    first = action("c0", start)
    peers = [action(f"c{i}", start + i * SECOND / 4) for i in (1, 2)]
    screened, turned = screen(record(first, links=4), RULES, peers)
    assert screened.events[0].reasons == (BURST,)
    assert turned == ("c0",)
    assert len(screened.events) == 1  # peers are not stored


def test_reasons_only_accumulate_and_agent_reasons_stay() -> None:
    start = SENT + timedelta(hours=1)
    known = action("k", start, reasons=("burst",), agent=("agent:proofpoint",))
    screened, turned = screen(record(known), RULES)
    assert screened.events[0].reasons == ("agent:proofpoint", "burst")
    assert turned == ()  # already a machine's


def test_the_tally_counts_each_class_and_each_email_once() -> None:
    start = SENT + timedelta(hours=1)
    mail = record(
        action("o1", start, Kind.OPEN),
        action("o2", start + SECOND, Kind.OPEN),
        action("c1", start + 2 * SECOND, reasons=("burst",)),
    )
    assert mail.tally() == {
        "human_opens": 2,
        "machine_clicks": 1,
        "unique_human_opens": 1,
        "unique_human_clicks": 0,
        "unique_machine_clicks": 1,
        "unique_machine_opens": 1,
    }
    # A person's click counts the email as opened by a person (images may be blocked)
    clicked = record(action("c", start))
    assert clicked.tally()["unique_human_opens"] == 1
    assert counter_delta(mail.tally(), clicked.tally()) == {
        "human_clicks": 1,
        "human_opens": -2,
        "machine_clicks": -1,
        "unique_human_clicks": 1,
        "unique_machine_clicks": -1,
        "unique_machine_opens": -1,
    }


def test_old_events_beyond_the_limit_are_folded_into_counts() -> None:
    mail = record()
    for i in range(MAX_EVENTS + 5):
        mail = mail.with_event(action(f"o{i}", SENT + i * timedelta(minutes=5), Kind.OPEN))
    assert len(mail.events) == MAX_EVENTS
    assert mail.folded == {"human_opens": 5}
    assert mail.tally()["human_opens"] == MAX_EVENTS + 5
    assert mail.events[0].key == "o5"


def test_a_record_round_trips_with_its_units_exact() -> None:
    units = Decimal("13.123456789012345678")
    mail = record(action("c", SENT + timedelta(hours=1), points=13, units=units))
    again = MailRecord.model_validate(mail.model_dump(mode="json"))
    assert again == mail
    assert again.events[0].units == units


# -- the links of an email ---------------------------------------------------------------------


def test_tracked_links_are_the_distinct_http_links_ses_rewrites() -> None:
    html = """
    <a href="https://www.example.co.jp/a?utm_source=nurture&amp;x=1">A</a>
    <a href="https://www.example.co.jp/a?utm_source=nurture&amp;x=1">A again</a>
    <A HREF="http://www.example.co.jp/b">B</A>
    <a href="https://www.example.co.jp/unsubscribe" ses:no-track>stop</a>
    <a href="mailto:sales@example.co.jp">mail</a>
    <a name="top">anchor</a>
    <div style="display:none"><a href="https://www.example.co.jp/" ses:tags="link:trap;">.</a></div>
    """
    assert tracked_links(html) == 3


def test_rules_are_a_frozen_model() -> None:
    assert isinstance(RULES, EngagementRules)
    with pytest.raises(ValueError, match="frozen"):
        RULES.trap_link = "other"  # type: ignore[misc]


# -- the console's timeline ------------------------------------------------------------------


def test_every_activity_has_a_name_in_both_languages() -> None:
    from infra.local.console.timeline import ACTIVITY_LABELS
    from shared.domain.leads import ActivityType

    assert set(ACTIVITY_LABELS) == set(ActivityType)
    assert all(ja and en and ja != en for ja, en in ACTIVITY_LABELS.values())


def test_a_machine_click_reads_as_text_with_its_reasons_in_words() -> None:
    from infra.local.console.timeline import rows
    from shared.domain.leads import Activity, ActivityType

    click = Activity(
        activity_id="k",
        lead_id="lead",
        type=ActivityType.EMAIL_CLICKED,
        at=SENT,
        details={
            "message_id": "m-1",
            "program_id": "welcome",
            "step_id": "case_study",
            "variant": "A",
            "link": "https://www.example.co.jp/pricing/",
            "link_tags": ["pricing"],
            "verdict": "machine",
            "machine_reasons": ["agent:microsoft_defender", "burst", "delivery_window"],
            "points": 0,
            "points_taken_back": 13,
        },
    )
    (row,) = rows([click], RULES)
    assert (row.label, row.label_en) == ("クリック", "Clicked")
    assert row.text == (
        "welcome / case_study (A) · https://www.example.co.jp/pricing/ [pricing]"
        " · 13 点を取り消し / taken back"
    )
    assert row.machine == (
        "Microsoft Defender for Office 365（安全なリンク / Safe Links）, "
        "一斉クリック / most links within seconds, "
        "配信 10 秒以内 / within 10 s of delivery"
    )
    person = click.model_copy(
        update={
            "details": {
                "verdict": "human",
                "points": 13,
                "rules": [{"rule": "click", "points": 3}, {"rule": "link:pricing", "points": 10}],
            }
        }
    )
    (row,) = rows([person], RULES)
    assert row.machine is None
    assert row.text == "+13 点 (click +3, link:pricing +10)"

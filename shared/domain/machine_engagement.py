"""Machine engagement: telling a mail scanner's or image proxy's opens and clicks from a
person's (pure; the rules are ``shared/content/engagement.yaml``).

Security gateways follow every link of an email seconds after it is delivered, and
Apple's image proxy fetches every image; SES reports each as an Open or a Click. Each
open and click of one email is kept on its mail record (``MailRecord``) with the
reasons that mark it a machine's, if any:

- ``agent:<name>``: the user agent or IP address of a known scanner or image proxy;
- ``delivery_window``: within seconds of the Delivery (else of the send);
- ``burst``: most links of the email clicked within seconds;
- ``trap_link``: the hidden link no person can see, or a click of the same email near it.

The first two are known when the event arrives; the others may only show once later
clicks arrive, so screening the record again can turn an earlier human click into a
machine's (never the other way): its points are then taken back (``shared.services.engagement``).
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.yamlfile import read_yaml

ENGAGEMENT_FILE = Path(__file__).parents[1] / "content" / "engagement.yaml"
# Opens and clicks kept per email; older ones are folded into counts (they can no longer
# be part of a burst, which is seconds long).
MAX_EVENTS = 40

DELIVERY_WINDOW = "delivery_window"
BURST = "burst"
TRAP_LINK = "trap_link"
BLANK_USER_AGENT = "agent:blank_user_agent"


class Kind(StrEnum):
    OPEN = "open"
    CLICK = "click"


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Agent(_Content):
    """A known scanner or image proxy, recognised by user agent or IP address."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    events: tuple[Kind, ...] = (Kind.OPEN, Kind.CLICK)
    user_agents: tuple[str, ...] = ()  # substrings, case-insensitive
    user_agents_exact: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()

    @field_validator("ip_ranges")
    @classmethod
    def _networks(cls, ranges: tuple[str, ...]) -> tuple[str, ...]:
        for text in ranges:
            try:
                ipaddress.ip_network(text)
            except ValueError as exc:
                raise ValueError(f"{text} is not a CIDR range: {exc}") from exc
        return ranges

    @model_validator(mode="after")
    def _recognisable(self) -> Agent:
        if not (self.user_agents or self.user_agents_exact or self.ip_ranges):
            raise ValueError(f"agent {self.name} needs user_agents, user_agents_exact or ip_ranges")
        if any(not word.strip() for word in (*self.user_agents, *self.user_agents_exact)):
            raise ValueError(f"agent {self.name} has a blank user agent")
        return self

    @cached_property
    def _networks_parsed(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(text) for text in self.ip_ranges)

    def matches(self, kind: Kind, user_agent: str, ip: str) -> bool:
        if kind not in self.events:
            return False
        if user_agent in self.user_agents_exact:
            return True
        folded = user_agent.casefold()
        if any(word.casefold() in folded for word in self.user_agents):
            return True
        if not ip or not self.ip_ranges:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks_parsed)


class Burst(_Content):
    window_seconds: float = Field(gt=0, le=300)
    min_links: int = Field(ge=2)
    share: float = Field(gt=0, le=1)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    def links_needed(self, links: int | None) -> int | None:
        """Different links clicked within the window that make a burst; None when the
        email has too few links for one to be told from a reader's clicks."""
        needed = self.min_links
        if links is not None:
            if links < self.min_links:
                return None
            needed = max(needed, math.ceil(self.share * links))
        return needed


class EngagementRules(_Content):
    delivery_window_seconds: float = Field(ge=0, le=3600)
    burst: Burst
    trap_link: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    blank_user_agent_is_machine: bool = True
    agents: tuple[Agent, ...] = ()

    @model_validator(mode="after")
    def _unique_agents(self) -> EngagementRules:
        names = Counter(agent.name for agent in self.agents)
        twice = sorted(name for name, n in names.items() if n > 1)
        if twice:
            raise ValueError(f"agents listed twice: {', '.join(twice)}")
        return self

    @property
    def delivery_window(self) -> timedelta:
        return timedelta(seconds=self.delivery_window_seconds)

    def agent_reasons(self, kind: Kind, user_agent: str | None, ip: str | None) -> tuple[str, ...]:
        """What the event alone says of its maker: a known scanner or proxy, or no name."""
        agent = (user_agent or "").strip()
        if not agent:
            return (BLANK_USER_AGENT,) if self.blank_user_agent_is_machine else ()
        return tuple(
            f"agent:{a.name}" for a in self.agents if a.matches(kind, agent, (ip or "").strip())
        )


def load_engagement_rules(path: Path = ENGAGEMENT_FILE) -> EngagementRules:
    try:
        return EngagementRules.model_validate(read_yaml(path))
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


# -- one email's opens and clicks ----------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class MailAction(_Record):
    """One open or click of an email, with what marks it a machine's (if anything)."""

    key: str  # the SES event's dedupe key
    kind: Kind
    at: datetime
    link: str | None = None
    link_tags: tuple[str, ...] = ()
    agent: tuple[str, ...] = ()  # reasons from the event alone, fixed on arrival
    reasons: tuple[str, ...] = ()  # every reason found so far; a machine's if any
    points: int = 0  # what it earned when recorded (taken back if it turns out a machine's)
    units: Decimal = Decimal(0)
    # Earlier clicks this one showed to be a machine's (so a retry can finish the job).
    reclassified: tuple[str, ...] = ()

    @property
    def machine(self) -> bool:
        return bool(self.reasons)


def metric(kind: Kind, machine: bool) -> str:
    """The report counter of an open or a click by class: ``human_opens``, ``machine_clicks``."""
    return f"{'machine' if machine else 'human'}_{kind.value}s"


class MailRecord(_Record):
    """One email to one lead as it was received: delivered when, opened and clicked how.

    Stored as its own item (``LEAD#<id>`` / ``MAIL#<message id>``), written with the
    event that changes it, conditional on ``version``.
    """

    lead_id: str
    message_id: str
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    links: int | None = None  # tracked links in the email (the send's ``links`` tag)
    events: tuple[MailAction, ...] = ()
    folded: dict[str, int] = Field(default_factory=dict)  # counts of events no longer kept
    version: int = 0

    def find(self, key: str) -> MailAction | None:
        return next((e for e in self.events if e.key == key), None)

    def tally(self) -> dict[str, int]:
        """Opens and clicks by class, and whether the email was opened or clicked at all
        by a person and by a machine (``unique_*``: 0 or 1, summed per email in reports).
        A person's click implies a person's open (the images may have been blocked)."""
        counts: Counter[str] = Counter(self.folded)
        for event in self.events:
            counts[metric(event.kind, event.machine)] += 1
        for who in ("human", "machine"):
            clicked = counts[f"{who}_clicks"] > 0
            counts[f"unique_{who}_clicks"] = int(clicked)
            counts[f"unique_{who}_opens"] = int(clicked or counts[f"{who}_opens"] > 0)
        return dict(counts)

    def human(self, kind: Kind) -> list[MailAction]:
        return [e for e in self.events if e.kind is kind and not e.machine]

    def with_event(self, event: MailAction) -> MailRecord:
        events = (*self.events, event)
        folded = Counter(self.folded)
        while len(events) > MAX_EVENTS:
            oldest, events = events[0], events[1:]
            folded[metric(oldest.kind, oldest.machine)] += 1
        return self.model_copy(update={"events": events, "folded": dict(folded)})

    def replace_event(self, event: MailAction) -> MailRecord:
        events = tuple(event if e.key == event.key else e for e in self.events)
        return self.model_copy(update={"events": events})


def counter_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    names = set(before) | set(after)
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in sorted(names)}
    return {name: by for name, by in delta.items() if by}


def screen(
    record: MailRecord, rules: EngagementRules, peers: Sequence[MailAction] = ()
) -> tuple[MailRecord, tuple[str, ...]]:
    """Find every reason that marks each open and click of the record a machine's.

    ``peers`` are clicks of the same email not yet recorded (the rest of the batch):
    they help find a burst or a trap click, and are not stored. Reasons only accumulate.
    Returns the record and the keys of the events that turned from a person's into a
    machine's.
    """
    reference = record.delivered_at or record.sent_at
    clicks = [e for e in (*record.events, *peers) if e.kind is Kind.CLICK]
    window = rules.burst.window
    traps = [e.at for e in clicks if rules.trap_link in e.link_tags]
    needed = rules.burst.links_needed(record.links)
    turned: list[str] = []
    events: list[MailAction] = []
    for event in record.events:
        found = set(event.reasons) | set(event.agent)
        if reference is not None and event.at - reference <= rules.delivery_window:
            found.add(DELIVERY_WINDOW)
        if event.kind is Kind.CLICK:
            if any(abs(event.at - t) <= window for t in traps):
                found.add(TRAP_LINK)
            if needed is not None and _in_burst(event, clicks, window, needed):
                found.add(BURST)
        reasons = tuple(sorted(found))
        if reasons != event.reasons:
            if not event.reasons:
                turned.append(event.key)
            event = event.model_copy(update={"reasons": reasons})
        events.append(event)
    return record.model_copy(update={"events": tuple(events)}), tuple(turned)


def _in_burst(
    event: MailAction, clicks: Sequence[MailAction], window: timedelta, needed: int
) -> bool:
    """Whether some span of ``window`` holding the click also holds clicks on ``needed``
    different links (a few dozen clicks at most: quadratic is fine)."""
    for start in clicks:
        if not start.at <= event.at <= start.at + window:
            continue
        links = {c.link or c.key for c in clicks if start.at <= c.at <= start.at + window}
        if len(links) >= needed:
            return True
    return False


# -- the links of an email -----------------------------------------------------------------


class _Links(HTMLParser):
    """Collects the links SES tracks: http(s) anchors without ``ses:no-track``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        names = {name.lower(): value for name, value in attrs}
        href = (names.get("href") or "").strip()
        if "ses:no-track" in names or not href.lower().startswith(("http://", "https://")):
            return
        self.links.append((href, names.get("ses:tags") or ""))


def links_in(html: str) -> list[tuple[str, str]]:
    """The links SES tracks in an email's HTML, in order: (URL, its ``ses:tags`` text).

    Hand-written on the standard library's parser: the only question is which anchors
    SES rewrites, and a full HTML toolkit would add a dependency to every function.
    """
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


def tracked_links(html: str) -> int:
    """Different links SES tracks in an email (the burst rule's "all its links")."""
    return len({href for href, _ in links_in(html)})


def as_details(event: MailAction) -> dict[str, Any]:
    """What an activity says of its maker: ``verdict`` and, for a machine, why."""
    details: dict[str, Any] = {"verdict": "machine" if event.machine else "human"}
    if event.machine:
        details["machine_reasons"] = list(event.reasons)
    return details

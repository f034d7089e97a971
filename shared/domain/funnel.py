"""The report counters' names, the rule that counts each change of a lead, and the
funnel maths for reports and planning (pure: no I/O, no AWS).

The daily report counters (``COUNTER#<JST day>`` items, see ``shared.adapters.items``)
hold three kinds of metric:

- sk ``stage``: one attribute per stage transition, ``<from>><to>`` (``new>lead`` for a
  lead created, ``lead>mql``, ``mql>sql``, ``sql>customer``, ``lead>dormant``,
  ``dormant>lead``, ...), counted once per stage change;
- sk ``list``: list health, once per lead that stops being mailable: ``unsubscribed``,
  ``suppressed:<cause>`` (``bounce``, ``complaint``, ``rejected`` by SES) and
  ``sunset:<stage>`` (re-engagement went unanswered). They are not stages: kept apart,
  they cannot leak into the stage maths;
- sk ``email#<program>#<step>#<variant>``: email events (``sent``, ``delivered``,
  ``opens``, ``clicks``, ``bounces``, ``complaints``, ...), and the opens and clicks by
  who made them (``shared.domain.machine_engagement``): ``human_opens``, ``machine_clicks``, ...,
  and ``unique_human_opens``, ``unique_machine_clicks``, ...: the emails a person (or a
  machine) opened or clicked at all, each email once. An open or click that later turns
  out a machine's moves from one column to the other. ``sent`` and ``uncertain`` are
  counted by the sender itself (``accepted`` is SES's Send event), ``unsubscribes`` by
  the lead's opt-out (credited to the last email it was sent), and ``mql_<n>d`` by a
  lead's qualification, on every email it was sent in the ``n`` days before;
- sk ``source#<source>``, ``form#<form type>``, ``program#<program>``: the stage
  transitions again, by the lead's first touch and by the program it followed, and the
  ``revenue`` (yen) of deals won;
- sk ``cycle#<stage>``: how long the move into ``mql``, ``sql`` and ``customer`` took,
  one ``d<days>`` attribute per whole number of days (a histogram: medians, no scans);
- sk ``revenue``: ``deals`` won, their ``amount`` (yen), and the ``customers`` whose first
  deal it was (revenue per customer: lifetime value);
- sk ``customers``: customers' RFM segments (``shared.domain.customers``): a move between
  segments ``<from>><to>`` (``none>new`` for a first purchase), and the purchases and
  their yen by the segment the purchase put the customer in (``purchases:<segment>``,
  ``revenue:<segment>``); under the running totals (``day`` None, not a day's item) each
  segment's customers now, one attribute per segment;
- sk ``event#<event id>``: an event's ``registered`` (places given, a waiting lead's
  included), ``cancelled`` (places given up), ``waitlisted``, ``attended`` (registrants
  who came), ``walk_ins`` (came without a place) and ``mql`` (its registrants and
  attendees who became MQL within ``EVENT_MQL_DAYS`` of registering).

Counts in a period are flows, not cohorts: the MQLs of a month may come from leads of
earlier months, so a period's conversion rate is an estimate (and may exceed 1 when a
period is short). Planning works backwards from deals won to the leads needed, rounding
up at every stage: half a lead produces nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from shared.domain.leads import Lead, SentStep

TOKYO = ZoneInfo("Asia/Tokyo")

STAGE_KEY = "stage"
LIST_KEY = "list"
EMAIL_PREFIX = "email#"
CYCLE_PREFIX = "cycle#"
SENDTIME_PREFIX = "sendtime#"  # the emails of one send-time group (shared.domain.sendtime)
REVENUE_KEY = "revenue"
EVENT_PREFIX = "event#"
CUSTOMERS_KEY = "customers"
NO_SEGMENT = "none"
# An MQL is credited to the events its lead registered for (or came to) this recently.
EVENT_MQL_DAYS = 90
# The dimensions a stage transition is counted by, besides the total.
DIMENSIONS = ("source", "form", "program")
NO_SOURCE = "(none)"
NO_PROGRAM = "(none)"
# An email is credited with a lead's MQL within each of these many days of its send.
CONVERSION_DAYS = (1, 3, 7, 14, 30)
# An opt-out is credited to the last email sent within this many days.
UNSUBSCRIBE_CREDIT_DAYS = 30
CYCLE_DAYS_CAP = 999  # a longer cycle is counted as this many days

UNSUBSCRIBED = "unsubscribed"
SUPPRESSED_PREFIX = "suppressed:"
SUPPRESSED_BOUNCE = "suppressed:bounce"
SUPPRESSED_COMPLAINT = "suppressed:complaint"
SUPPRESSED_REJECTED = "suppressed:rejected"
SUNSET_PREFIX = "sunset:"
DORMANT = "dormant"
# Won back: a dormant lead returned to nurturing, or qualified straight to MQL.
REENGAGED = ("dormant>lead", "dormant>mql")


@dataclass(frozen=True)
class ReportCount:
    """What one change adds to one report counter item: metric -> amount (may be
    negative). Written in the same transaction as the change that caused it, so a
    retried or duplicate request that changes nothing counts nothing."""

    day: date | None  # None: the running totals, not a day's
    key: str
    metrics: Mapping[str, int]


def transition(source: str, target: str) -> str:
    return f"{source}>{target}"


def transition_count(day: date, source: str, target: str) -> ReportCount | None:
    """One stage change (``new>lead`` for a lead created); None if the stage stays."""
    if source == target:
        return None
    return ReportCount(day, STAGE_KEY, {transition(source, target): 1})


def list_count(day: date, metric: str) -> ReportCount:
    """One lead leaving the mailing list (``unsubscribed``, ``suppressed:<cause>``, ...)."""
    return ReportCount(day, LIST_KEY, {metric: 1})


def business_day(at: datetime) -> date:
    """Caps and report counters count Japanese days."""
    return at.astimezone(TOKYO).date()


def suppression_metric(reason: str) -> str:
    """The list-health counter of a suppression reason (``bounce:permanent`` and
    ``bounce:transient`` are both ``suppressed:bounce``; SES's refusals ``rejected``)."""
    cause = reason.split(":", 1)[0]
    if cause == "ses":
        return SUPPRESSED_REJECTED
    return SUPPRESSED_PREFIX + cause


def email_key(program_id: str, step_id: str | None, variant: str | None) -> str:
    """The counter of one email: a program's step in one variant."""
    return f"{EMAIL_PREFIX}{program_id}#{step_id}#{variant}"


def lead_source(lead: Lead) -> str:
    """Where a lead came from, for the funnel by source: the first touch's ``source``
    (a list's name, a form's hidden field), else its ``utm_source``."""
    touch = lead.first_touch
    raw = (touch.source or touch.utm_source or "").strip().lower()
    # Counter keys use "#" and "@" as separators.
    return raw.replace("#", "-").replace("@", "-")[:60] or NO_SOURCE


def dimension_keys(lead: Lead, program_id: str | None) -> list[str]:
    """The counter items a transition of ``lead`` is also counted in."""
    values = (lead_source(lead), lead.first_touch.form_type.value, program_id or NO_PROGRAM)
    return [f"{name}#{value}" for name, value in zip(DIMENSIONS, values, strict=True)]


def lead_counts(before: Lead | None, after: Lead) -> list[ReportCount]:
    """The counts a change of a lead implies, on the day of the change: its stage
    transition (``new>lead`` for a lead created), by source, form and program, and how
    long it took; the emails an MQL is credited to; its leaving the mailing list (an
    opt-out credited to the last email); the revenue of a deal won. Every change of a
    lead is counted by this one rule, in the write that makes it."""
    day = business_day(after.updated_at)
    counts: list[ReportCount | None] = []
    source = before.stage.value if before is not None else "new"
    moved = transition_count(day, source, after.stage.value)
    program_id = _program_of(before or after)
    revenue = after.revenue - (before.revenue if before is not None else 0)
    if moved is not None or revenue:
        by = {**(moved.metrics if moved else {}), **({REVENUE_KEY: revenue} if revenue else {})}
        counts.extend(ReportCount(day, key, by) for key in dimension_keys(after, program_id))
    if revenue:
        first = before is None or before.revenue == 0  # a customer's first deal
        deal = {"deals": 1, "amount": revenue, "customers": 1 if first else 0}
        counts.append(ReportCount(day, REVENUE_KEY, deal))
    if moved is not None:
        counts.append(moved)
        counts.append(_cycle_count(day, before, after))
        if after.stage.value == "mql":
            counts.extend(_conversion_counts(day, before or after, after))
    counts.extend(_event_counts(day, before, after, qualified=moved is not None))
    counts.extend(_customer_counts(day, before, after))
    if before is None:
        return [c for c in counts if c is not None]
    if after.suppressed and not before.suppressed:
        counts.append(list_count(day, suppression_metric(after.suppression_reason or "")))
    elif after.unsubscribed and not before.unsubscribed:
        counts.append(list_count(day, UNSUBSCRIBED))
        counts.append(_unsubscribe_count(day, before, after))
    if after.sunset and not before.sunset:
        counts.append(list_count(day, SUNSET_PREFIX + before.stage.value))
    return [c for c in counts if c is not None]


def _program_of(lead: Lead) -> str | None:
    enrolment = lead.enrolment
    return enrolment.program_id if enrolment is not None else None


def _event_counts(
    day: date, before: Lead | None, after: Lead, *, qualified: bool
) -> list[ReportCount]:
    """What the change did to the lead's registrations (per event), and an MQL credited
    to the events the lead registered for or came to in the ``EVENT_MQL_DAYS`` before."""
    found = []
    earlier = before.registrations if before is not None else {}
    became_mql = qualified and after.stage.value == "mql"
    for event_id, now in after.registrations.items():
        was = earlier.get(event_id)
        metrics: Counter[str] = Counter()
        status, old = now.status.value, was.status.value if was is not None else None
        if status != old:
            metric = {"registered": "registered", "waitlisted": "waitlisted"}.get(status)
            if status == "walk_in":
                metric = "walk_ins"
            elif status == "cancelled" and old == "registered":
                metric = "cancelled"  # a place given up (leaving the waiting list is not)
            if metric is not None:
                metrics[metric] += 1
        if now.attended_at is not None and (was is None or was.attended_at is None):
            metrics["attended"] += status == "registered"
        recent = timedelta() <= after.updated_at - now.registered_at <= timedelta(EVENT_MQL_DAYS)
        if became_mql and status in ("registered", "walk_in") and recent:
            metrics["mql"] += 1
        if any(metrics.values()):
            found.append(ReportCount(day, EVENT_PREFIX + event_id, +metrics))
    return found


def _customer_counts(day: date, before: Lead | None, after: Lead) -> list[ReportCount]:
    """A customer's move between segments (and the running totals of each), and what it
    bought, by the segment it is in after."""
    was = before.rank.segment if before is not None and before.rank is not None else None
    now = after.rank.segment if after.rank is not None else None
    found = []
    if was != now:
        move = transition(was or NO_SEGMENT, now or NO_SEGMENT)
        found.append(ReportCount(day, CUSTOMERS_KEY, {move: 1}))
        held = {**({was: -1} if was else {}), **({now: 1} if now else {})}
        found.append(ReportCount(None, CUSTOMERS_KEY, held))
    earlier = before.purchases if before is not None else None
    bought = (after.purchases.count if after.purchases else 0) - (earlier.count if earlier else 0)
    if bought > 0 and after.purchases is not None:
        spent = after.purchases.total - (earlier.total if earlier else 0)
        segment = now or NO_SEGMENT
        found.append(
            ReportCount(
                day, CUSTOMERS_KEY, {f"purchases:{segment}": bought, f"revenue:{segment}": spent}
            )
        )
    return found


def _cycle_count(day: date, before: Lead | None, after: Lead) -> ReportCount | None:
    """Days the move into MQL (from creation), SQL or customer (from the stage before)
    took: one histogram bar."""
    target = after.stage.value
    if before is None or target not in STAGES[1:]:
        return None
    began = (
        after.created_at
        if target == "mql"
        else before.stage_changed_at or before.qualified_at or before.created_at
    )
    days = min(max((after.updated_at - began).days, 0), CYCLE_DAYS_CAP)
    return ReportCount(day, CYCLE_PREFIX + target, {f"d{days}": 1})


def _sent_steps(lead: Lead) -> list[tuple[str, str, SentStep]]:
    """The emails of the lead's nurture program and of its events' programs."""
    enrolments = [lead.enrolment, *(r.enrolment for r in lead.registrations.values())]
    return [
        (enrolment.program_id, step_id, sent)
        for enrolment in enrolments
        if enrolment is not None
        for step_id, sent in enrolment.sent.items()
    ]


def _conversion_counts(day: date, before: Lead, after: Lead) -> list[ReportCount]:
    """An MQL credited to every email of its program sent in the ``n`` days before."""
    found = []
    for program_id, step_id, sent in _sent_steps(before):
        elapsed = after.updated_at - sent.sent_at
        metrics = {
            f"mql_{n}d": 1 for n in CONVERSION_DAYS if timedelta() <= elapsed <= timedelta(days=n)
        }
        if metrics:
            found.append(ReportCount(day, email_key(program_id, step_id, sent.variant), metrics))
    return found


def _unsubscribe_count(day: date, before: Lead, after: Lead) -> ReportCount | None:
    """An opt-out credited to the last email the lead was sent (the one whose link, or
    whose List-Unsubscribe header, it most likely used)."""
    recent = [
        item
        for item in _sent_steps(before)
        if timedelta()
        <= after.updated_at - item[2].sent_at
        <= timedelta(days=UNSUBSCRIBE_CREDIT_DAYS)
    ]
    if not recent:
        return None
    program_id, step_id, sent = max(recent, key=lambda item: item[2].sent_at)
    return ReportCount(day, email_key(program_id, step_id, sent.variant), {"unsubscribes": 1})


def merged(counts: Iterable[ReportCount | None]) -> list[ReportCount]:
    """One count per counter item (a transaction writes an item once), zeros dropped."""
    totals: dict[tuple[date | None, str], Counter[str]] = {}
    for count in counts:
        if count is not None:
            totals.setdefault((count.day, count.key), Counter()).update(count.metrics)
    return [
        ReportCount(day, key, {m: by for m, by in sorted(metrics.items()) if by})
        for (day, key), metrics in totals.items()
        if any(metrics.values())
    ]


# The funnel's stages in order, and the conversions between neighbours.
STAGES = ("lead", "mql", "sql", "customer")
CONVERSIONS = ("lead_mql", "mql_sql", "sql_won")

# Used when there is no data and no rate is given: typical B2B figures.
DEFAULT_RATES: dict[str, Fraction] = {
    "lead_mql": Fraction("0.2"),
    "mql_sql": Fraction("0.4"),
    "sql_won": Fraction("0.25"),
}


def stage_counts(transitions: Mapping[str, int]) -> dict[str, int]:
    """Entries into each stage: leads created (``new>lead`` only: a lead sent back to
    nurturing is not a new lead), and ``*><stage>`` for MQL, SQL and customer."""
    counts = dict.fromkeys(STAGES, 0)
    for name, value in transitions.items():
        source, _, target = name.partition(">")
        if target == "lead":
            if source == "new":
                counts["lead"] += value
        elif target in counts:
            counts[target] += value
    return counts


def ratio(numerator: int, denominator: int) -> Fraction | None:
    """``numerator / denominator``; None when there is nothing to divide by."""
    return Fraction(numerator, denominator) if denominator > 0 else None


def conversion_rates(counts: Mapping[str, int]) -> dict[str, Fraction | None]:
    """Stage-to-stage conversion in the period, and lead to customer overall."""
    rates = {
        name: ratio(counts[target], counts[source])
        for name, source, target in zip(CONVERSIONS, STAGES[:-1], STAGES[1:], strict=True)
    }
    rates["lead_won"] = ratio(counts["customer"], counts["lead"])
    return rates


@dataclass(frozen=True)
class Reengagement:
    """Dormancy in a period: leads gone quiet, won back, and given up on."""

    dormant: int  # became dormant
    reengaged: int  # dormant, then back to nurturing or straight to MQL
    sunset: int  # dormant, and re-engagement went unanswered

    @property
    def rate(self) -> Fraction | None:
        """Won back over gone dormant (flows, like the conversion rates)."""
        return ratio(self.reengaged, self.dormant)


def reengagement(transitions: Mapping[str, int], lists: Mapping[str, int]) -> Reengagement:
    return Reengagement(
        dormant=sum(n for name, n in transitions.items() if name.partition(">")[2] == DORMANT),
        reengaged=sum(transitions.get(name, 0) for name in REENGAGED),
        sunset=lists.get(SUNSET_PREFIX + DORMANT, 0),
    )


@dataclass(frozen=True)
class ListHealth:
    """Leads that stopped being mailable in a period, by why."""

    unsubscribed: int
    suppressed: Mapping[str, int]  # by cause: bounce, complaint, rejected
    sunset: int  # re-engagement unanswered (dormant and lost leads)

    @property
    def suppressed_total(self) -> int:
        return sum(self.suppressed.values())

    @property
    def total(self) -> int:
        return self.unsubscribed + self.suppressed_total + self.sunset


def list_health(lists: Mapping[str, int]) -> ListHealth:
    return ListHealth(
        unsubscribed=lists.get(UNSUBSCRIBED, 0),
        suppressed={
            name.removeprefix(SUPPRESSED_PREFIX): n
            for name, n in sorted(lists.items())
            if name.startswith(SUPPRESSED_PREFIX)
        },
        sunset=sum(n for name, n in lists.items() if name.startswith(SUNSET_PREFIX)),
    )


@dataclass(frozen=True)
class EmailKpis:
    program: str
    step: str
    variant: str
    metrics: Mapping[str, int]

    def _get(self, name: str) -> int:
        return int(self.metrics.get(name, 0))

    @property
    def sent(self) -> int:
        return self._get("sent")

    @property
    def delivered(self) -> int:
        return self._get("delivered")

    @property
    def open_rate(self) -> Fraction | None:
        """Emails a person opened (or clicked), over those delivered: each email once,
        machines' opens (scanners, image proxies) left out."""
        return ratio(self._get("unique_human_opens"), self.delivered)

    @property
    def click_rate(self) -> Fraction | None:
        return ratio(self._get("unique_human_clicks"), self.delivered)

    @property
    def click_to_open_rate(self) -> Fraction | None:
        return ratio(self._get("unique_human_clicks"), self._get("unique_human_opens"))

    @property
    def machine_open_rate(self) -> Fraction | None:
        """Emails a machine opened, over those delivered (shown apart, never scored)."""
        return ratio(self._get("unique_machine_opens"), self.delivered)

    @property
    def machine_click_rate(self) -> Fraction | None:
        return ratio(self._get("unique_machine_clicks"), self.delivered)

    @property
    def bounce_rate(self) -> Fraction | None:
        # Over sends, as SES's reputation metrics count them.
        return ratio(self._get("bounces"), self.sent)

    @property
    def complaint_rate(self) -> Fraction | None:
        return ratio(self._get("complaints"), self.sent)

    @property
    def unique_human_clicks(self) -> int:
        return self._get("unique_human_clicks")

    @property
    def uncertain(self) -> int:
        """Sends whose SES answer was lost: they may have gone out (never sent again)."""
        return self._get("uncertain")

    @property
    def unsubscribe_rate(self) -> Fraction | None:
        return ratio(self._get("unsubscribes"), self.delivered)

    def conversions(self, days: int) -> int:
        """Leads that became MQL within ``days`` of this email (one of CONVERSION_DAYS)."""
        if days not in CONVERSION_DAYS:
            raise ValueError(f"conversions are counted within {CONVERSION_DAYS} days")
        return self._get(f"mql_{days}d")

    def conversion_rate(self, days: int) -> Fraction | None:
        return ratio(self.conversions(days), self.sent)


@dataclass
class FunnelTotals:
    """Counter items summed over a period."""

    transitions: Counter[str] = field(default_factory=Counter)
    lists: Counter[str] = field(default_factory=Counter)
    email: dict[tuple[str, str, str], Counter[str]] = field(default_factory=dict)
    # (dimension, value) -> transitions and revenue
    dimensions: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    cycles: dict[str, Counter[int]] = field(default_factory=dict)  # stage -> days -> leads
    revenue: Counter[str] = field(default_factory=Counter)  # deals, amount
    # send-time group (shared.domain.sendtime) -> its emails' counts
    send_times: dict[str, Counter[str]] = field(default_factory=dict)
    events: dict[str, Counter[str]] = field(default_factory=dict)  # event id -> counts
    customers: Counter[str] = field(default_factory=Counter)  # segment moves, revenue

    def add(self, sk: str, metrics: Mapping[str, int]) -> None:
        """Add one counter item (its counter key and its numeric attributes)."""
        name, _, value = sk.partition("#")
        if sk == STAGE_KEY:
            self.transitions.update(metrics)
        elif sk == LIST_KEY:
            self.lists.update(metrics)
        elif sk == REVENUE_KEY:
            self.revenue.update(metrics)
        elif sk == CUSTOMERS_KEY:
            self.customers.update(metrics)
        elif sk.startswith(EMAIL_PREFIX):
            program, _, rest = value.partition("#")
            step, _, variant = rest.partition("#")
            self.email.setdefault((program, step, variant), Counter()).update(metrics)
        elif sk.startswith(SENDTIME_PREFIX):
            self.send_times.setdefault(value, Counter()).update(metrics)
        elif sk.startswith(EVENT_PREFIX):
            self.events.setdefault(value, Counter()).update(metrics)
        elif sk.startswith(CYCLE_PREFIX):
            days = self.cycles.setdefault(value, Counter())
            days.update({int(k[1:]): n for k, n in metrics.items() if k[1:].isdigit()})
        elif name in DIMENSIONS:
            self.dimensions.setdefault((name, value), Counter()).update(metrics)

    def merge(self, other: FunnelTotals) -> None:
        self.transitions.update(other.transitions)
        self.lists.update(other.lists)
        self.revenue.update(other.revenue)
        self.customers.update(other.customers)
        for key, metrics in other.email.items():
            self.email.setdefault(key, Counter()).update(metrics)
        for dim, metrics in other.dimensions.items():
            self.dimensions.setdefault(dim, Counter()).update(metrics)
        for stage, days in other.cycles.items():
            self.cycles.setdefault(stage, Counter()).update(days)
        for group, metrics in other.send_times.items():
            self.send_times.setdefault(group, Counter()).update(metrics)
        for event_id, metrics in other.events.items():
            self.events.setdefault(event_id, Counter()).update(metrics)

    @property
    def stages(self) -> dict[str, int]:
        return stage_counts(self.transitions)

    @property
    def rates(self) -> dict[str, Fraction | None]:
        return conversion_rates(self.stages)

    @property
    def reengagement(self) -> Reengagement:
        return reengagement(self.transitions, self.lists)

    @property
    def list_health(self) -> ListHealth:
        return list_health(self.lists)

    def email_kpis(self) -> list[EmailKpis]:
        return [
            EmailKpis(program, step, variant, dict(metrics))
            for (program, step, variant), metrics in sorted(self.email.items())
        ]

    def breakdown(self, dimension: str) -> list[Segment]:
        """The funnel by one dimension (``source``, ``form``, ``program``), biggest first."""
        found = [
            Segment(value, stage_counts(metrics), metrics.get(REVENUE_KEY, 0))
            for (name, value), metrics in self.dimensions.items()
            if name == dimension
        ]
        return sorted(found, key=lambda s: (-s.stages["lead"], -s.stages["mql"], s.value))

    def cycle(self, stage: str) -> Cycle:
        days = self.cycles.get(stage, Counter())
        return Cycle(stage, sum(days.values()), median(days))

    @property
    def deals(self) -> Deals:
        revenue = self.revenue
        return Deals(revenue.get("deals", 0), revenue.get("amount", 0), revenue.get("customers", 0))


@dataclass(frozen=True)
class Segment:
    """The funnel of the leads of one source, form type or program."""

    value: str
    stages: Mapping[str, int]
    revenue: int

    @property
    def rates(self) -> dict[str, Fraction | None]:
        return conversion_rates(self.stages)


@dataclass(frozen=True)
class Cycle:
    """How long the moves into one stage took in a period."""

    stage: str
    leads: int
    median_days: float | None


@dataclass(frozen=True)
class Deals:
    """Deals won in a period with an amount (yen)."""

    won: int
    amount: int
    customers: int = 0  # the leads whose first deal was won in the period

    @property
    def average(self) -> Fraction | None:
        return ratio(self.amount, self.won)

    @property
    def lifetime_value(self) -> Fraction | None:
        """Revenue per customer: every deal won with a lead adds to its value."""
        return ratio(self.amount, self.customers)


def median(histogram: Mapping[int, int]) -> float | None:
    """The median of values counted in a histogram (value -> how many)."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    middle = [(total - 1) // 2, total // 2]  # 0-based ranks of the middle value(s)
    found: list[int] = []
    seen = 0
    for value in sorted(histogram):
        count = histogram[value]
        found.extend(value for rank in middle if seen <= rank < seen + count)
        seen += count
    return sum(found) / len(found)


# The stages whose cycle is reported, and where each is measured from.
CYCLES = (("mql", "created"), ("sql", "MQL"), ("customer", "SQL"))


def sum_counters(items: Iterable[tuple[str, Mapping[str, int]]]) -> FunnelTotals:
    totals = FunnelTotals()
    for sk, metrics in items:
        totals.add(sk, metrics)
    return totals


def parse_rate(value: str) -> Fraction:
    """A rate as ``0.25``, ``25%`` or ``1/4``; between 0 and 1."""
    text = value.strip()
    try:
        rate = Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"not a rate: {value!r}") from exc
    if not 0 <= rate <= 1:
        raise ValueError(f"a rate is between 0 and 1: {value!r}")
    return rate


def parse_rates(text: str) -> dict[str, Fraction]:
    """``lead_mql=0.2,mql_sql=0.4,sql_won=0.25`` (any subset)."""
    rates: dict[str, Fraction] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in CONVERSIONS:
            raise ValueError(f"expected <{'|'.join(CONVERSIONS)}>=<rate>, got {part!r}")
        rates[name] = parse_rate(value)
    return rates


@dataclass(frozen=True)
class PlanStage:
    stage: str
    needed: int | None  # None: unreachable (a rate after it is zero)
    rate: Fraction | None  # conversion from this stage to the next (None for customers)
    rate_source: str = ""


@dataclass(frozen=True)
class Plan:
    deals: int
    stages: tuple[PlanStage, ...]

    @property
    def reachable(self) -> bool:
        return all(s.needed is not None for s in self.stages)


def plan(
    deals: int, rates: Mapping[str, Fraction], sources: Mapping[str, str] | None = None
) -> Plan:
    """How many leads, MQLs and SQLs it takes to win ``deals``, rounding up each stage.

    A zero rate makes every stage before it unreachable (``needed`` None).
    """
    if deals < 0:
        raise ValueError("deals must not be negative")
    sources = sources or {}
    needed: int | None = deals
    result = [PlanStage("customer", deals, None)]
    for conversion, stage in zip(reversed(CONVERSIONS), reversed(STAGES[:-1]), strict=True):
        rate = rates[conversion]
        if not 0 <= rate <= 1:
            raise ValueError(f"{conversion} must be between 0 and 1, not {float(rate)}")
        if needed is not None and needed > 0 and rate == 0:
            needed = None
        elif needed is not None and needed > 0:
            needed = math.ceil(Fraction(needed) / rate)
        result.append(PlanStage(stage, needed, rate, sources.get(conversion, "")))
    return Plan(deals, tuple(reversed(result)))


def choose_rates(
    given: Mapping[str, Fraction],
    measured: Mapping[str, Fraction | None],
    defaults: Mapping[str, Fraction] = DEFAULT_RATES,
) -> tuple[dict[str, Fraction], dict[str, str]]:
    """Per conversion: the given rate, else a usable measured one, else the default.

    A measured rate is usable when it is above 0 and at most 1 (a period's flow ratio
    can be 0 for lack of data, or above 1 when earlier leads convert in it).
    """
    rates: dict[str, Fraction] = {}
    sources: dict[str, str] = {}
    for name in CONVERSIONS:
        value = measured.get(name)
        if name in given:
            rates[name], sources[name] = given[name], "given"
        elif value is not None and 0 < value <= 1:
            rates[name], sources[name] = value, "measured"
        else:
            rates[name], sources[name] = defaults[name], "default"
    return rates, sources


def percent(rate: Fraction | None, digits: int = 1) -> str:
    """``12.5%``, or ``-`` when the rate is undefined."""
    return "-" if rate is None else f"{float(rate) * 100:.{digits}f}%"

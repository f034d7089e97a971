"""The report counters' names, the rule that counts each change of a lead, and the
funnel maths for reports and planning (pure: no I/O, no AWS).

The daily report counters (``COUNTER#<JST day>`` items, see ``shared.adapters.dynamodb``)
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
  who made them (``shared.machine_engagement``): ``human_opens``, ``machine_clicks``, ...,
  and ``unique_human_opens``, ``unique_machine_clicks``, ...: the emails a person (or a
  machine) opened or clicked at all, each email once. An open or click that later turns
  out a machine's moves from one column to the other.

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
from datetime import date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from shared.leads import Lead

TOKYO = ZoneInfo("Asia/Tokyo")

STAGE_KEY = "stage"
LIST_KEY = "list"
EMAIL_PREFIX = "email#"

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

    day: date
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


def lead_counts(before: Lead | None, after: Lead) -> list[ReportCount]:
    """The counts a change of a lead implies, on the day of the change: its stage
    transition (``new>lead`` for a lead created) and its leaving the mailing list. Every
    change of a lead is counted by this one rule, in the write that makes it."""
    day = business_day(after.updated_at)
    counts: list[ReportCount | None] = []
    source = before.stage.value if before is not None else "new"
    counts.append(transition_count(day, source, after.stage.value))
    if before is None:
        return [c for c in counts if c is not None]
    if after.suppressed and not before.suppressed:
        counts.append(list_count(day, suppression_metric(after.suppression_reason or "")))
    elif after.unsubscribed and not before.unsubscribed:
        counts.append(list_count(day, UNSUBSCRIBED))
    if after.sunset and not before.sunset:
        counts.append(list_count(day, SUNSET_PREFIX + before.stage.value))
    return [c for c in counts if c is not None]


def merged(counts: Iterable[ReportCount | None]) -> list[ReportCount]:
    """One count per counter item (a transaction writes an item once), zeros dropped."""
    totals: dict[tuple[date, str], Counter[str]] = {}
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


@dataclass
class FunnelTotals:
    """Counter items summed over a period."""

    transitions: Counter[str] = field(default_factory=Counter)
    lists: Counter[str] = field(default_factory=Counter)
    email: dict[tuple[str, str, str], Counter[str]] = field(default_factory=dict)

    def add(self, sk: str, metrics: Mapping[str, int]) -> None:
        """Add one counter item (its sort key and its numeric attributes)."""
        if sk == STAGE_KEY:
            self.transitions.update(metrics)
        elif sk == LIST_KEY:
            self.lists.update(metrics)
        elif sk.startswith(EMAIL_PREFIX):
            program, _, rest = sk.removeprefix(EMAIL_PREFIX).partition("#")
            step, _, variant = rest.partition("#")
            self.email.setdefault((program, step, variant), Counter()).update(metrics)

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

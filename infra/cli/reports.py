"""Funnel report, plan and backtest as text tables (the maths is ``shared.domain.funnel`` and
``shared.domain.backtest``)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from shared.domain.backtest import Backtest, History, changed
from shared.domain.customers import CustomerRules
from shared.domain.events import EventCatalog
from shared.domain.experiments import arms, probability_best, sample_needed, seed_of
from shared.domain.funnel import (
    CONVERSIONS,
    CYCLES,
    DIMENSIONS,
    EVENT_MQL_DAYS,
    STAGES,
    EmailKpis,
    FunnelTotals,
    ListHealth,
    Plan,
    Reengagement,
    percent,
    ratio,
    sum_counters,
)
from shared.domain.programs import ProgramCatalog
from shared.domain.sendtime import SendTimeGroup

if TYPE_CHECKING:  # boto3 loads only for the commands that read the table
    from shared.adapters.counters import DynamoCounterReader

# Leads listed by name when a candidate changes who is handed to sales.
CHANGED_SHOWN = 20
STAGE_LABELS = {"lead": "leads", "mql": "MQL", "sql": "SQL", "customer": "customers"}
CONVERSION_LABELS = {
    "lead_mql": "lead → MQL",
    "mql_sql": "MQL → SQL",
    "sql_won": "SQL → customer",
    "lead_won": "lead → customer",
}
DIMENSION_LABELS = {
    "source": ("Funnel by source (the first touch's source or utm_source)", "source"),
    "form": ("Funnel by form type (the first touch)", "form type"),
    "program": ("Funnel by program (the one the lead followed)", "program"),
}


def collect_days(
    reader: DynamoCounterReader,
    start: date,
    end: date,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[date, FunnelTotals]:
    """Each day's counters from ``start`` to ``end`` (one Query a day)."""
    total = (end - start).days + 1
    days: dict[date, FunnelTotals] = {}
    for done in range(total):
        progress(done + 1, total)
        day = start + timedelta(days=done)
        days[day] = sum_counters(reader.day(day))
    return days


def combined(days: Iterable[FunnelTotals]) -> FunnelTotals:
    totals = FunnelTotals()
    for day in days:
        totals.merge(day)
    return totals


def collect(
    reader: DynamoCounterReader,
    start: date,
    end: date,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> FunnelTotals:
    """Sum the counter items of every day from ``start`` to ``end`` (one Query a day)."""
    return combined(collect_days(reader, start, end, progress).values())


def weekly(days: Mapping[date, FunnelTotals]) -> dict[date, FunnelTotals]:
    """The days summed by week (Monday to Sunday), keyed by their Monday."""
    weeks: dict[date, FunnelTotals] = {}
    for day, totals in sorted(days.items()):
        weeks.setdefault(day - timedelta(days=day.weekday()), FunnelTotals()).merge(totals)
    return weeks


@dataclass(frozen=True)
class Table:
    """One table of a report: printed as text, or written as a CSV file named ``name``."""

    name: str
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    right: Collection[int] = ()
    note: str = ""

    def text(self) -> str:
        return table(self.headers, self.rows, self.right)


@dataclass(frozen=True)
class FunnelReport:
    """What ``report funnel`` shows: the period's totals, its weeks, and the period
    before it of the same length (for the buying cycle's trend)."""

    start: date
    end: date
    totals: FunnelTotals
    weeks: Mapping[date, FunnelTotals]
    previous: FunnelTotals
    conversion_days: int = 14


def funnel_tables(report: FunnelReport) -> list[Table]:
    totals = report.totals
    return [
        _stages_table(totals),
        _weekly_table(report.weeks),
        *(_breakdown_table(totals, name) for name in DIMENSIONS),
        _cycle_table(totals, report.previous),
        _deals_table(totals),
        _reengagement_table(totals.reengagement),
        _list_health_table(totals.list_health),
        _email_table(totals, report.conversion_days),
        _send_time_table(totals),
    ]


def _stages_table(totals: FunnelTotals) -> Table:
    stages, rates = totals.stages, totals.rates
    conversions = ["", "lead_mql", "mql_sql", "sql_won"]
    rows = [
        [STAGE_LABELS[stage], str(stages[stage]), CONVERSION_LABELS.get(name, ""), percent(rate)]
        for stage, name, rate in zip(
            stages, conversions, [None, *(rates[c] for c in conversions[1:])], strict=True
        )
    ]
    rows[0][3] = ""
    return Table(
        "funnel",
        "Funnel",
        ["stage", "entered", "conversion", "rate"],
        rows,
        {1, 3},
        f"lead → customer: {percent(rates['lead_won'])}\n"
        "(flows in the period, not cohorts: conversions may come from earlier leads)",
    )


def _funnel_cells(stages: Mapping[str, int], rates: Mapping[str, Fraction | None]) -> list[str]:
    return [
        *(str(stages[s]) for s in STAGES),
        *(percent(rates[c]) for c in CONVERSIONS),
    ]


FUNNEL_HEADERS = ["leads", "MQL", "SQL", "customers", "→MQL", "→SQL", "→customer"]


def _weekly_table(weeks: Mapping[date, FunnelTotals]) -> Table:
    rows = [
        [
            monday.isoformat(),
            *_funnel_cells(w.stages, w.rates),
            str(sum(k.sent for k in w.email_kpis())),
        ]
        for monday, w in sorted(weeks.items())
    ]
    return Table(
        "weekly",
        "Weekly trend (weeks from Monday)",
        ["week", *FUNNEL_HEADERS, "emails sent"],
        rows,
        range(1, 9),
    )


def _breakdown_table(totals: FunnelTotals, dimension: str) -> Table:
    rows = [
        [s.value, *_funnel_cells(s.stages, s.rates), yen(s.revenue)]
        for s in totals.breakdown(dimension)
    ]
    title, header = DIMENSION_LABELS[dimension]
    return Table(
        f"by_{dimension}",
        title,
        [header, *FUNNEL_HEADERS, "revenue"],
        rows,
        range(1, 9),
    )


def _cycle_table(totals: FunnelTotals, previous: FunnelTotals) -> Table:
    rows = []
    for stage, since in CYCLES:
        now, before = totals.cycle(stage), previous.cycle(stage)
        rows.append(
            [
                f"{since} → {STAGE_LABELS[stage]}",
                str(now.leads),
                days(now.median_days),
                days(before.median_days),
                trend(now.median_days, before.median_days),
            ]
        )
    return Table(
        "cycle",
        "Buying cycle (median days)",
        ["move", "leads", "median days", "period before", "trend"],
        rows,
        {1, 2, 3},
        "(the period before: as many days, just before this one)",
    )


def _deals_table(totals: FunnelTotals) -> Table:
    deals = totals.deals
    rows = [
        ["deals won with an amount", str(deals.won)],
        ["revenue", yen(deals.amount)],
        ["average deal value", yen(deals.average)],
        ["customers won (first deal)", str(deals.customers)],
        ["lifetime value (revenue per customer)", yen(deals.lifetime_value)],
    ]
    return Table(
        "deals",
        "Deals (won dispositions with an amount)",
        ["", "value"],
        rows,
        {1},
        "(lifetime value: every deal won with a lead adds to its revenue; flows in the"
        " period, not cohorts)",
    )


def _reengagement_table(numbers: Reengagement) -> Table:
    rows = [
        ["became dormant", str(numbers.dormant)],
        ["won back (to lead or MQL)", str(numbers.reengaged)],
        ["sunset (no answer)", str(numbers.sunset)],
    ]
    return Table(
        "reengagement",
        "Re-engagement",
        ["dormant leads", "count"],
        rows,
        {1},
        f"re-engagement rate: {percent(numbers.rate)} (won back / became dormant)",
    )


def customer_tables(
    days: Mapping[date, FunnelTotals], held: Mapping[str, int], rules: CustomerRules
) -> list[Table]:
    """Customers by RFM segment (customers.yaml's order, then segments no longer there):
    how many are in each now (``held``: the running totals), what they bought in the
    period, and the moves between segments month by month."""
    totals = combined(days.values())
    bought = totals.customers
    named = [s.id for s in rules.segments]
    seen = {k.split(":", 1)[1] for k in bought if ":" in k} | {k for k, n in held.items() if n}
    ids = [*named, *sorted(seen - set(named))]
    everyone = sum(max(n, 0) for n in held.values())
    revenue = sum(n for k, n in bought.items() if k.startswith("revenue:"))
    rows = []
    for segment_id in ids:
        rule = rules.segment(segment_id)
        now, amount = max(held.get(segment_id, 0), 0), bought[f"revenue:{segment_id}"]
        rows.append(
            [
                segment_id,
                f"{rule.name.ja} / {rule.name.en}" if rule else "(not in customers.yaml)",
                str(now),
                percent(ratio(now, everyone)),
                str(bought[f"purchases:{segment_id}"]),
                yen(amount),
                percent(ratio(amount, revenue)),
            ]
        )
    segments = Table(
        "customer_segments",
        "Customer segments (RFM)",
        ["segment", "name", "customers now", "share", "purchases", "revenue", "of revenue"],
        rows,
        {2, 3, 4, 5, 6},
        "customers now: every customer with a purchase, by the segment it is in today; "
        "purchases and revenue in the period, by the segment each purchase put its customer in",
    )
    months: dict[str, Counter[str]] = {}
    for day, totals_of_day in sorted(days.items()):
        moved = {k: n for k, n in totals_of_day.customers.items() if ">" in k}
        months.setdefault(f"{day:%Y-%m}", Counter()).update(moved)
    move_rows = [
        [month, *move.split(">", 1), str(count)]
        for month, moved in sorted(months.items())
        for move, count in sorted(moved.items(), key=lambda item: (-item[1], item[0]))
    ]
    moves = Table(
        "customer_moves",
        "Moves between segments, by month",
        ["month", "from", "to", "customers"],
        move_rows,
        {3},
        "none: no purchase before (a first purchase); a move is counted when it happens: "
        "a purchase, or the review on the day a customer's recency score drops",
    )
    return [segments, moves]


EVENT_COLUMNS = ("registered", "cancelled", "waitlisted", "attended", "walk_ins", "mql")


def events_table(totals: FunnelTotals, events: EventCatalog) -> Table:
    """Per event (in events.yaml's order by start, then events no longer there): what its
    registrants did in the period, and the attendance rate (registrants who came over
    the places held: registered less cancelled)."""
    known = [e.id for e in events.events]
    ids = [*(i for i in known if i in totals.events), *sorted(set(totals.events) - set(known))]
    rows = []
    for event_id in ids:
        counts = totals.events[event_id]
        event = events.get(event_id)
        held = counts["registered"] - counts["cancelled"]
        rows.append(
            [
                event_id,
                event.title.ja if event else "(not in events.yaml)",
                f"{event.start.astimezone(event.zone):%Y-%m-%d}" if event else "-",
                *(str(counts[c]) for c in EVENT_COLUMNS[:4]),
                percent(ratio(counts["attended"], held)),
                *(str(counts[c]) for c in EVENT_COLUMNS[4:]),
            ]
        )
    return Table(
        "events",
        "Events",
        [
            "event",
            "title",
            "date",
            "registered",
            "cancelled",
            "waitlisted",
            "attended",
            "attendance",
            "walk-ins",
            "MQL",
        ],
        rows,
        set(range(3, 10)),
        "attendance: registrants who came / (registered - cancelled); MQL: registrants and "
        f"attendees who became MQL within {EVENT_MQL_DAYS} days of registering",
    )


def _list_health_table(health: ListHealth) -> Table:
    # Bounce and complaint always show: a zero there is worth seeing.
    suppressed = {"bounce": 0, "complaint": 0, **health.suppressed}
    rows = [
        ["unsubscribed", str(health.unsubscribed)],
        *([f"suppressed: {cause}", str(n)] for cause, n in suppressed.items()),
        ["sunset (dormant and lost leads)", str(health.sunset)],
    ]
    return Table(
        "list_health", "List health (leads no longer mailed)", ["reason", "leads"], rows, {1}
    )


def _email_table(totals: FunnelTotals, conversion_days: int) -> Table:
    n = conversion_days
    rows = [
        [
            k.program,
            k.step,
            k.variant,
            str(k.sent),
            str(k.uncertain),
            str(k.delivered),
            percent(k.open_rate),
            percent(k.click_rate),
            percent(k.click_to_open_rate),
            percent(k.unsubscribe_rate, 2),
            str(k.conversions(n)),
            percent(k.conversion_rate(n), 2),
            percent(k.machine_open_rate),
            percent(k.machine_click_rate),
            percent(k.bounce_rate, 2),
            percent(k.complaint_rate, 2),
        ]
        for k in totals.email_kpis()
    ]
    headers = ["program", "step", "variant", "sent", "uncertain", "delivered", "open", "click"]
    headers += ["CTO", "unsubscribe", f"MQL ≤{n}d", "MQL rate", "machine open", "machine click"]
    headers += ["bounce", "complaint"]
    return Table(
        "emails",
        "Email",
        headers,
        rows,
        range(3, 16),
        "(sent and uncertain: counted by the sender; open and click: emails opened and"
        " clicked by people, each once, over delivered; CTO: clicked over opened;"
        " unsubscribe: opt-outs credited to the last email, over delivered; MQL: leads"
        f" qualified within {n} days of the email, over sent; machine: mail scanners and"
        " image proxies, never scored; bounce and complaint rates over sent)",
    )


def experiment_tables(totals: FunnelTotals, catalog: ProgramCatalog) -> list[Table]:
    """One table per step with variants: each variant's sends, clicks and MQLs, and the
    posterior probability that it is best on the step's metric."""
    found = []
    for program in catalog.programs:
        for step in program.steps:
            if step.variants < 2:
                continue
            experiment = step.experiment
            labels = [chr(ord("A") + v) for v in range(step.variants)]
            counts = {
                variant: metrics
                for (program_id, step_id, variant), metrics in totals.email.items()
                if (program_id, step_id) == (program.id, step.id)
            }
            judged = arms(labels, counts, experiment.metric)
            best = probability_best(judged, seed=seed_of(program.id, step.id))
            rows = []
            for label in labels:
                kpis = EmailKpis(program.id, step.id, label, counts.get(label, {}))
                rows.append(
                    [
                        label,
                        str(kpis.sent),
                        str(kpis.unique_human_clicks),
                        percent(ratio(kpis.unique_human_clicks, kpis.sent), 2),
                        str(kpis.conversions(14)),
                        percent(kpis.conversion_rate(14), 2),
                        percent(Fraction(best[label]).limit_denominator(10_000)),
                    ]
                )
            needed = sample_needed(judged)
            sent = min(a.trials for a in judged)
            if experiment.winner is not None:
                status = f"closed: every lead gets {experiment.winner}"
            elif needed is None:
                status = "no difference to tell yet"
            else:
                status = (
                    f"sends per variant to tell the best from the runner-up (95% confidence,"
                    f" 80% power): {needed:,}, still needed: {max(needed - sent, 0):,}"
                )
            how = (
                f"bandit, at least {experiment.min_share:.0%} each"
                if experiment.allocation == "bandit"
                else "even split"
            )
            found.append(
                Table(
                    f"experiment_{program.id}_{step.id}",
                    f"{program.id} / {step.id} ({how}; judged on {experiment.metric})",
                    [
                        *["variant", "sent", "human clicks", "click rate", "MQL ≤14d"],
                        *["MQL rate", f"P(best, {experiment.metric})"],
                    ],
                    rows,
                    range(1, 7),
                    status,
                )
            )
    return found


def _send_time_table(totals: FunnelTotals) -> Table:
    """Emails sent at the lead's best time against the hold-out kept on the program's."""

    def rates(group: str) -> tuple[int, Fraction | None, Fraction | None]:
        metrics = totals.send_times.get(group, Counter())
        sent = metrics.get("sent", 0)
        opens = ratio(metrics.get("unique_human_opens", 0), sent)
        return sent, opens, ratio(metrics.get("unique_human_clicks", 0), sent)

    _, held_opens, held_clicks = rates(SendTimeGroup.HOLDOUT)
    rows = []
    for group in SendTimeGroup:
        sent, opens, clicks = rates(group)
        if not sent:
            continue
        rows.append(
            [
                group.value,
                str(sent),
                percent(opens),
                percent(clicks),
                lift(opens, held_opens) if group is SendTimeGroup.OPTIMISED else "",
                lift(clicks, held_clicks) if group is SendTimeGroup.OPTIMISED else "",
            ]
        )
    return Table(
        "send_time",
        "Send-time optimisation",
        ["group", "sent", "open", "click", "open lift", "click lift"],
        rows,
        range(1, 6),
        "(optimised: sent at the lead's best hour and weekday; default: too few opens and"
        " clicks yet; holdout: kept on the program's time. Opens and clicks by people, each"
        " email once, over sent; lift: optimised over holdout)",
    )


def lift(rate: Fraction | None, baseline: Fraction | None) -> str:
    if rate is None or not baseline:
        return "-"
    return f"{float(rate / baseline - 1):+.1%}"


def print_tables(tables: Sequence[Table], out: TextIO) -> None:
    for item in tables:
        print(f"\n{item.title}", file=out)
        if item.rows:
            print(item.text(), file=out)
        else:
            print("(nothing in the period)", file=out)
        if item.note:
            print(item.note, file=out)


def print_funnel(report: FunnelReport, out: TextIO) -> None:
    count = (report.end - report.start).days + 1
    print(f"Funnel {report.start.isoformat()} .. {report.end.isoformat()} ({count} days)", file=out)
    print_tables(funnel_tables(report), out)


def write_csv(tables: Sequence[Table], folder: Path) -> list[Path]:
    """One CSV file per table, UTF-8 with a byte order mark (Excel then reads the
    Japanese in it as UTF-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in tables:
        path = folder / f"{item.name}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(item.headers)
            writer.writerows(item.rows)
        written.append(path)
    return written


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int]) -> str:
    """A plain text table; the columns at the indexes in ``right`` are right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def yen(amount: Fraction | int | None) -> str:
    return "-" if amount is None else f"¥{round(amount):,}"


def days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def trend(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "-"
    if now < before:
        return f"shorter by {before - now:.1f}"
    if now > before:
        return f"longer by {now - before:.1f}"
    return "same"


def print_plan(result: Plan, out: TextIO) -> None:
    print(f"Plan for {result.deals} deal(s) won", file=out)
    print(file=out)
    rows = [
        [
            STAGE_LABELS[s.stage],
            "unreachable" if s.needed is None else f"{s.needed:,}",
            percent(s.rate) if s.rate is not None else "",
            s.rate_source,
        ]
        for s in result.stages
    ]
    print(table(["stage", "needed", "converts to next", "rate from"], rows, {1, 2}), file=out)
    if not result.reachable:
        print("\nA zero conversion rate makes the earlier stages unreachable.", file=out)


def print_backtest(
    histories: Sequence[History],
    results: Sequence[Backtest],
    start: date,
    end: date,
    out: TextIO,
) -> None:
    outcomes = Counter(h.outcome.disposition for h in histories)
    told = ", ".join(f"{outcomes[k]} {k}" for k in ("won", "lost", "rejected"))
    print(f"Backtest {start.isoformat()} .. {end.isoformat()}: {len(histories)} leads", file=out)
    print(f"with a known outcome ({told})", file=out)
    if not histories:
        return
    print(file=out)
    names = [r.name for r in results]
    rows = [
        ["MQL", *(str(r.mqls) for r in results)],
        ["precision (won of MQL)", *(percent(r.precision) for r in results)],
        ["recall (MQL of won)", *(percent(r.recall) for r in results)],
        [
            "median days MQL → won",
            *(
                "-" if r.median_days_to_won is None else f"{r.median_days_to_won:.1f}"
                for r in results
            ),
        ],
    ]
    print(table(["", *names], rows, range(1, len(names) + 1)), file=out)
    months = sorted({m for r in results for m in r.mqls_per_month})
    if months:
        print("\nMQLs per month (the load on sales)", file=out)
        rows = [[m, *(str(r.mqls_per_month.get(m, 0)) for r in results)] for m in months]
        print(table(["month", *names], rows, range(1, len(names) + 1)), file=out)
    for other in results[1:]:
        moved = changed(results[0], other)
        print(
            f"\nLeads that would change state ({results[0].name} → {other.name}): {len(moved)}",
            file=out,
        )
        rows = [
            [
                mine.lead_id,
                "MQL" if mine.mql else "-",
                "MQL" if theirs.mql else "-",
                "won" if mine.won else "not won",
            ]
            for mine, theirs in moved[:CHANGED_SHOWN]
        ]
        if rows:
            print(table(["lead", results[0].name, other.name, "outcome"], rows, set()), file=out)
        if len(moved) > CHANGED_SHOWN:
            print(f"... and {len(moved) - CHANGED_SHOWN} more", file=out)

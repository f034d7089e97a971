"""Funnel report, plan and backtest as text tables (the maths is ``shared.funnel`` and
``shared.backtest``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, TextIO

from shared.backtest import Backtest, History, changed
from shared.funnel import FunnelTotals, ListHealth, Plan, Reengagement, percent, sum_counters

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


def collect(
    reader: DynamoCounterReader,
    start: date,
    end: date,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> FunnelTotals:
    """Sum the counter items of every day from ``start`` to ``end`` (one Query a day)."""
    total = (end - start).days + 1

    def items() -> Iterator[tuple[str, Mapping[str, int]]]:
        for done in range(total):
            progress(done + 1, total)
            yield from reader.day(start + timedelta(days=done))

    return sum_counters(items())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int]) -> str:
    """A plain text table; the columns at the indexes in ``right`` are right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def print_funnel(totals: FunnelTotals, start: date, end: date, out: TextIO) -> None:
    count = (end - start).days + 1
    print(f"Funnel {start.isoformat()} .. {end.isoformat()} ({count} days)", file=out)
    print(file=out)
    stages = totals.stages
    rates = totals.rates
    conversions = ["", "lead_mql", "mql_sql", "sql_won"]
    rows = [
        [STAGE_LABELS[stage], str(stages[stage]), CONVERSION_LABELS.get(name, ""), percent(rate)]
        for stage, name, rate in zip(
            stages, conversions, [None, *(rates[c] for c in conversions[1:])], strict=True
        )
    ]
    rows[0][3] = ""
    print(table(["stage", "entered", "conversion", "rate"], rows, {1, 3}), file=out)
    print(f"\nlead → customer: {percent(rates['lead_won'])}", file=out)
    print("(flows in the period, not cohorts: conversions may come from earlier leads)", file=out)
    print_reengagement(totals.reengagement, out)
    print_list_health(totals.list_health, out)
    kpis = totals.email_kpis()
    print(file=out)
    if not kpis:
        print("Email: no email events in the period", file=out)
        return
    print("Email", file=out)
    email_rows = [
        [
            k.program,
            k.step,
            k.variant,
            str(k.sent),
            str(k.delivered),
            percent(k.open_rate),
            percent(k.click_rate),
            percent(k.click_to_open_rate),
            percent(k.machine_open_rate),
            percent(k.machine_click_rate),
            percent(k.bounce_rate, 2),
            percent(k.complaint_rate, 2),
        ]
        for k in kpis
    ]
    headers = ["program", "step", "variant", "sent", "delivered", "open", "click", "CTO"]
    headers += ["machine open", "machine click", "bounce", "complaint"]
    print(table(headers, email_rows, range(3, 12)), file=out)
    print(
        "(emails opened and clicked by people, each once, over delivered; CTO: clicked over"
        " opened; machine: mail scanners and image proxies, never scored; bounce and"
        " complaint rates over sent)",
        file=out,
    )


def print_reengagement(numbers: Reengagement, out: TextIO) -> None:
    print("\nRe-engagement", file=out)
    rows = [
        ["became dormant", str(numbers.dormant)],
        ["won back (to lead or MQL)", str(numbers.reengaged)],
        ["sunset (no answer)", str(numbers.sunset)],
    ]
    print(table(["dormant leads", "count"], rows, {1}), file=out)
    print(f"re-engagement rate: {percent(numbers.rate)} (won back / became dormant)", file=out)


def print_list_health(health: ListHealth, out: TextIO) -> None:
    print("\nList health (leads no longer mailed)", file=out)
    # Bounce and complaint always show: a zero there is worth seeing.
    suppressed = {"bounce": 0, "complaint": 0, **health.suppressed}
    rows = [
        ["unsubscribed", str(health.unsubscribed)],
        *([f"suppressed: {cause}", str(n)] for cause, n in suppressed.items()),
        ["sunset (dormant and lost leads)", str(health.sunset)],
    ]
    print(table(["reason", "leads"], rows, {1}), file=out)


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

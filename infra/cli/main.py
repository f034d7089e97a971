"""``lead-nurture``: the operator's command line.

Talks to the leads table with boto3 (``--endpoint-url`` for the local stack's moto
server, normal credentials for AWS) and to the local stack's control endpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from infra.cli import content, local, reports
from infra.cli.importing import file_rows, form_id_for, print_columns, print_summary
from infra.cli.tables import Columns, TableError, parse_mapping, read_table
from shared.domain.clock import Clock, OffsetClock, SystemClock
from shared.domain.funnel import (
    CONVERSION_DAYS,
    CONVERSIONS,
    business_day,
    choose_rates,
    parse_rates,
    percent,
    plan,
    sum_counters,
)
from shared.domain.leads import FormType
from shared.services.list_import import ImportOptions, LeadImport

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from shared.domain.events import Event

LOCAL_TABLE = "lead-nurture-local"  # what `make dev` names the table
DEFAULT_REGION = "ap-northeast-1"
REPORT_DAYS = 30
# An event's registrations come weeks before it and its MQLs after: a longer default.
EVENT_REPORT_DAYS = 90
# Customers buy a few times a year: a year, by month.
CUSTOMER_REPORT_DAYS = 365


class CliError(Exception):
    """A problem the operator can fix: printed without a traceback, exit status 2."""


# -- helpers ------------------------------------------------------------------------------


class Progress:
    """``label 12/50`` (with ``bar``: ``label [#####.....] 12/50``) rewritten in place on
    stderr when it is a terminal. Hand-written: one line of output does not need a
    progress-bar library in the operator's install."""

    WIDTH = 30

    def __init__(self, label: str, *, bar: bool = False) -> None:
        self._label = label
        self._bar = bar

    def line(self, done: int, total: int) -> str:
        if not self._bar:
            return f"{self._label} {done}/{total}"
        filled = self.WIDTH * done // total if total else self.WIDTH
        return f"{self._label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{self.line(done, total)}{end}")
        sys.stderr.flush()


def dynamodb(args: argparse.Namespace) -> DynamoDBClient:
    import boto3  # deferred: only the commands that need the table pay for it

    session = boto3.session.Session()
    kwargs: dict[str, Any] = {"region_name": args.region}
    if args.endpoint_url:
        kwargs["endpoint_url"] = args.endpoint_url
        if session.get_credentials() is None and is_local(args.endpoint_url):
            # moto server takes any credentials; spare the operator from exporting some.
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    return session.client("dynamodb", **kwargs)


def is_local(endpoint_url: str | None) -> bool:
    """An endpoint on this machine: the local stack's moto server."""
    host = urlsplit(endpoint_url).hostname if endpoint_url else None
    return host in ("127.0.0.1", "localhost", "::1")


def table_clock(args: argparse.Namespace) -> Clock:
    """The clock of the system that owns the table: the local stack's own, moved as its
    ``/_local/clock`` says (a ``--state`` run's saved offset included), when the table
    is on this machine; the real one otherwise. What a command writes is then stamped
    as the stack's functions would stamp it."""
    if not is_local(args.endpoint_url):
        return SystemClock()
    offset = float(local.clock(args.api)["offset_s"])
    return OffsetClock(timedelta(seconds=offset))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from exc


def period(args: argparse.Namespace, days: int = REPORT_DAYS) -> tuple[date, date]:
    """``--from``/``--to``, by default the last ``days`` Japanese days to today."""
    end = args.to or business_day(SystemClock().now())
    start = args.from_ or end - timedelta(days=days - 1)
    if start > end:
        raise CliError(f"--from {start} is after --to {end}")
    return start, end


def show_report(
    args: argparse.Namespace,
    title: str,
    start: date,
    end: date,
    tables: Sequence[reports.Table],
    empty: str | None = None,
) -> int:
    """The tables as CSV files (``--csv DIR``: their paths printed), else as text under
    the report's title and period (``empty`` said when there is no table)."""
    if args.csv:
        for path in reports.write_csv(tables, args.csv):
            print(path)
        return 0
    count = (end - start).days + 1
    print(f"{title} {start.isoformat()} .. {end.isoformat()} ({count} days)")
    if not tables and empty:
        print(f"\n{empty}")
    reports.print_tables(tables, sys.stdout)
    return 0


# -- commands -----------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, asset: str | None = None) -> int:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.domain.events import load_events
    from shared.domain.lists import load_columns
    from shared.domain.programs import load_programs
    from shared.domain.scoring import load_scoring
    from shared.services.capture import LeadCapture
    from shared.services.qualification import ScoreKeeper

    path: Path = args.file
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    paths = content.ContentPaths.under(args.content)
    try:
        dictionary = load_columns(paths.import_columns)
    except (OSError, ValueError) as exc:
        raise CliError(f"import columns: {exc}") from exc
    try:
        overrides = parse_mapping(args.map or [])
        table = read_table(path, args.encoding).headed(
            lambda cells: Columns.has_email(cells, overrides, dictionary)
        )
        columns = Columns.of(table.headers, overrides, dictionary)
    except TableError as exc:
        raise CliError(str(exc)) from exc
    config = content.deployment_config()
    options = ImportOptions(
        form_type=FormType(args.form_type),
        source=args.source,
        consent_source=args.consent_source,
        consent_required_for=tuple(FormType(f) for f in config.consent_required_forms),
        dry_run=args.dry_run,
        asset=asset,
    )
    clock = table_clock(args)
    print_columns(path, table, columns, options, sys.stdout)
    client = dynamodb(args)
    repository = DynamoLeadRepository(client, args.table)
    scores = ScoreKeeper(load_scoring(paths.scoring))
    capture = LeadCapture(
        repository,
        load_programs(paths.programs),
        clock,
        consent_version=config.consent_version,
        scores=scores,
        review_after=timedelta(days=config.lifecycle.dormant_after_days),
        events=load_events(paths.events),
    )
    importer = LeadImport(repository, capture, clock, config.consent_version)
    rows = file_rows(table, columns)
    summary = importer.run(rows, options, form_id_for(path), Progress("rows"))
    print_summary(summary, options, sys.stdout)
    return 0 if summary.ok else 1


def cmd_import_purchases(args: argparse.Namespace) -> int:
    from infra.cli.purchases import (
        FIELDS,
        ColumnsError,
        columns_of,
        fits,
        import_purchases,
        print_import,
    )
    from shared.adapters.leads import DynamoLeadRepository
    from shared.domain.customers import load_customers
    from shared.domain.programs import load_programs
    from shared.services.purchases import PurchaseBook

    path: Path = args.file
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    paths = content.ContentPaths.under(args.content)
    try:
        mapping = parse_mapping(args.map or [], FIELDS, {})
        table = read_table(path, args.encoding).headed(lambda cells: fits(cells, mapping))
        columns = columns_of(table.headers, mapping)
    except (TableError, ColumnsError) as exc:
        raise CliError(str(exc)) from exc
    if table.header_row != 1:
        print(f"見出し行 / header row: {table.header_row} (rows above it skipped)")
    for name, index in columns.items():
        print(f"{table.headers[index]} -> {name}")
    repository = DynamoLeadRepository(dynamodb(args), args.table)
    book = None
    if not args.dry_run:
        book = PurchaseBook(
            repository,
            _loaded(load_programs, paths.programs),
            _loaded(load_customers, paths.customers),
            table_clock(args),
        )
    result = import_purchases(table, columns, repository, book, Progress("rows"))
    print_import(result, args.dry_run, sys.stdout)
    return 0 if result.ok else 1


T = TypeVar("T")


def _loaded(load: Callable[[Path], T], path: Path) -> T:
    """A content file, loaded; what is wrong with it, as the command's error."""
    try:
        return load(path)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _event(args: argparse.Namespace) -> Event:
    from shared.domain.events import load_events

    paths = content.ContentPaths.under(args.content)
    events = _loaded(load_events, paths.events)
    event = events.get(args.event)
    if event is None:
        known = ", ".join(e.id for e in events.events) or "none"
        raise CliError(f"no event {args.event!r} in {paths.events} (events: {known})")
    return event


def cmd_attendance(args: argparse.Namespace) -> int:
    """An attendee list (a webinar's attendee report, the venue's sign-in sheet) imported
    as check-ins of the event: the import path, each row a ``seminar_attendance`` form."""
    event = _event(args)
    args.form_type = FormType.SEMINAR_ATTENDANCE.value
    args.source = args.source or f"event:{event.id}"
    return cmd_import(args, asset=event.id)


def cmd_cancel(args: argparse.Namespace) -> int:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.domain.programs import load_programs
    from shared.ports import UnknownLead
    from shared.services.registration import EventDesk

    event = _event(args)
    repository = DynamoLeadRepository(dynamodb(args), args.table)
    lead_id: str | None = args.lead
    if "@" in args.lead:
        lead_id, _ = repository.lead_of(args.lead)
    if lead_id is None:
        raise CliError(f"no lead with the address {args.lead} in table {args.table}")
    programs = _loaded(load_programs, content.ContentPaths.under(args.content).programs)
    desk = EventDesk(repository, programs, SystemClock())
    try:
        done = desk.cancel(event, lead_id)
    except UnknownLead as exc:
        raise CliError(f"no lead {lead_id} in table {args.table}") from exc
    print("cancelled" if done.cancelled else "nothing to cancel: no place or turn held")
    for promoted in done.promoted:
        print(f"place given to {promoted} (waited longest)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    result = content.validate(content.ContentPaths.under(args.content), content.sender_profile())
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    if result.errors:
        print(f"{len(result.errors)} problem(s) found", file=sys.stderr)
        return 1
    print(
        f"ok: scoring rules, {result.programs} programs, {result.steps} steps, "
        f"{result.renders} renders (both locales; full, blank and hostile sample leads)"
    )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from jinja2 import TemplateError

    from shared.domain.email import EmailRenderer, load_assets
    from shared.domain.events import load_events
    from shared.domain.programs import load_programs

    paths = content.ContentPaths.under(args.content)
    catalog = _loaded(load_programs, paths.programs)
    if args.lead_id:
        from shared.adapters.leads import DynamoLeadRepository

        lead = DynamoLeadRepository(dynamodb(args), args.table).get(args.lead_id)
        if lead is None:
            raise CliError(f"no lead {args.lead_id} in table {args.table}")
        if args.locale:
            lead = lead.model_copy(update={"locale": args.locale})
    else:
        lead = content.sample_lead(args.locale or "ja")
    events = _loaded(load_events, paths.events)
    event = events.get(args.event)
    if args.event and event is None:
        raise CliError(f"no event {args.event!r} in {paths.events}")
    renderer = EmailRenderer(
        content.sender_profile(), paths.email, load_assets(paths.assets), events
    )
    try:
        rendered = content.render_step(
            catalog, renderer, lead, args.program, args.step, args.variant, event
        )
    except (content.PreviewError, TemplateError) as exc:
        raise CliError(str(exc)) from exc
    if args.out:
        for written in content.write_preview(rendered, args.step, args.out):
            print(written)
        return 0
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    return 0


def cmd_report_funnel(args: argparse.Namespace) -> int:
    from shared.adapters.counters import DynamoCounterReader

    start, end = period(args)
    reader = DynamoCounterReader(dynamodb(args), args.table)
    # The period before, as long as this one: is the buying cycle getting shorter?
    before = start - timedelta(days=1)
    previous = before - (end - start)
    days = reports.collect_days(reader, previous, end, Progress("days"))
    report = reports.FunnelReport(
        start,
        end,
        reports.combined(t for d, t in days.items() if d >= start),
        reports.weekly({d: t for d, t in days.items() if d >= start}),
        reports.combined(t for d, t in days.items() if d < start),
        args.conversion_days,
    )
    if args.csv:
        for path in reports.write_csv(reports.funnel_tables(report), args.csv):
            print(path)
        return 0
    reports.print_funnel(report, sys.stdout)
    return 0


def cmd_report_experiments(args: argparse.Namespace) -> int:
    from shared.adapters.counters import DynamoCounterReader
    from shared.domain.programs import load_programs

    catalog = _loaded(load_programs, content.ContentPaths.under(args.content).programs)
    start, end = period(args)
    reader = DynamoCounterReader(dynamodb(args), args.table)
    totals = reports.collect(reader, start, end, Progress("days"))
    tables = reports.experiment_tables(totals, catalog)
    return show_report(
        args, "Experiments", start, end, tables, empty="No step has more than one variant."
    )


def cmd_report_events(args: argparse.Namespace) -> int:
    from shared.adapters.counters import DynamoCounterReader
    from shared.domain.events import load_events

    events = _loaded(load_events, content.ContentPaths.under(args.content).events)
    start, end = period(args, EVENT_REPORT_DAYS)
    reader = DynamoCounterReader(dynamodb(args), args.table)
    totals = reports.collect(reader, start, end, Progress("days"))
    return show_report(args, "Events", start, end, [reports.events_table(totals, events)])


def cmd_report_customers(args: argparse.Namespace) -> int:
    from shared.adapters.counters import DynamoCounterReader
    from shared.domain.customers import load_customers

    rules = _loaded(load_customers, content.ContentPaths.under(args.content).customers)
    start, end = period(args, CUSTOMER_REPORT_DAYS)
    reader = DynamoCounterReader(dynamodb(args), args.table)
    days = reports.collect_days(reader, start, end, Progress("days"))
    held = dict(sum_counters(reader.day(None)).customers)
    return show_report(args, "Customers", start, end, reports.customer_tables(days, held, rules))


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        given = parse_rates(args.rates or "")
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    measured: dict[str, Any] = {}
    if any(name not in given for name in CONVERSIONS):
        from shared.adapters.counters import DynamoCounterReader

        start, end = period(args)
        reader = DynamoCounterReader(dynamodb(args), args.table)
        measured = reports.collect(reader, start, end, Progress("days")).rates
        print(f"Measured over {start.isoformat()} .. {end.isoformat()}", file=sys.stdout)
    rates, sources = choose_rates(given, measured)
    reports.print_plan(plan(args.deals, rates, sources), sys.stdout)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    import yaml

    from shared.adapters.leads import DynamoLeadRepository
    from shared.domain import backtest
    from shared.domain.scoring import load_scoring

    paths = content.ContentPaths.under(args.content)
    if args.suggest and args.out is None:
        raise CliError("--suggest needs --out FILE for the candidate rules")
    try:
        today = load_scoring(paths.scoring)
        candidate = load_scoring(args.rules) if args.rules else None
    except (OSError, ValueError) as exc:
        raise CliError(f"scoring rules: {exc}") from exc
    start, end = args.from_ or date(2000, 1, 1), args.to or date.today()
    if start > end:
        raise CliError(f"--from {start} is after --to {end}")
    repository = DynamoLeadRepository(dynamodb(args), args.table)
    histories = backtest.load_histories(
        repository, repository, start, end, Progress("timelines", bar=True)
    )
    results = [backtest.run("today", histories, today)]
    if args.suggest:
        try:
            suggestion = backtest.suggest(histories, today)
        except ValueError as exc:
            raise CliError(f"cannot suggest points: {exc}") from exc
        notes = backtest.explanation(suggestion, today)
        header = "".join(f"# {line}\n" for line in notes)
        body = yaml.safe_dump(backtest.as_content(suggestion), allow_unicode=True, sort_keys=False)
        args.out.write_text(header + body, encoding="utf-8")
        print("\n".join(notes), file=sys.stdout)
        print(f"Written to {args.out}\n", file=sys.stdout)
        results.append(backtest.run("suggested", histories, suggestion.rules))
    if candidate is not None:
        results.append(backtest.run("candidate", histories, candidate))
    reports.print_backtest(histories, results, start, end, sys.stdout)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from shared.adapters.leads import DynamoLeadRepository
    from shared.domain.leads import is_lead_id
    from shared.domain.scoring import load_scoring
    from shared.services.disclosure import LeadDisclosure, as_json

    try:
        rules = load_scoring(content.ContentPaths.under(args.content).scoring)
    except (OSError, ValueError) as exc:
        raise CliError(f"scoring rules: {exc}") from exc
    repository = DynamoLeadRepository(dynamodb(args), args.table)
    lead_id: str = args.lead
    if "@" in lead_id:
        owner, erased = repository.lead_of(lead_id)
        if owner is None:
            kept = " (erased: only a hash of the address is kept)" if erased else ""
            raise CliError(f"no lead with the address {lead_id} in table {args.table}{kept}")
        lead_id = owner
    elif not is_lead_id(lead_id):
        raise CliError(f"not a lead id (32 characters of 0-9 and a-f) or an address: {lead_id}")
    document = LeadDisclosure(repository, rules, SystemClock()).export(lead_id)
    if document is None:
        raise CliError(f"no lead {lead_id} in table {args.table} (unknown, or erased)")
    data = as_json(document).encode("utf-8")
    if args.out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    # A person's data: readable by the operator alone, wherever the file is put.
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that was there keeps its mode otherwise
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    print(args.out)
    return 0


def _show(answer: Any) -> None:
    print(json.dumps(answer, ensure_ascii=False, indent=2))


def cmd_clock(args: argparse.Namespace) -> int:
    if args.duration:
        _show(local.advance(args.api, args.duration))
    else:
        _show(local.clock(args.api))
    return 0


def cmd_sending(args: argparse.Namespace) -> int:
    from shared.adapters.guard import DynamoSendingSwitch
    from shared.domain.guard import baseline, reputation

    switch = DynamoSendingSwitch(dynamodb(args), args.table)
    now = SystemClock().now()
    today = business_day(now)
    days = switch.counts([today - timedelta(days=1), today])
    if args.action == "pause":
        paused = switch.pause(args.reason or "paused by an operator", now, args.by)
        print("paused" if paused else "already paused")
    elif args.action == "resume":
        # From now on the guard counts only what happens after this resume.
        switch.resume(now, args.by, baseline(days))
        print("resumed: send jobs are queued again from the next tick, earliest due first")
    state = switch.state()
    found = reputation(days, state)
    print(f"sending: {'PAUSED' if state.paused else 'on'}")
    if state.changed_at is not None:
        print(f"since {state.changed_at.isoformat()} by {state.by or '-'}: {state.reason or '-'}")
    print(
        f"since the last resume (today and yesterday): {found.sent} sent,"
        f" bounce rate {percent(found.bounce_rate, 2)}, complaint rate"
        f" {percent(found.complaint_rate, 3)}"
    )
    return 0


def cmd_tick(args: argparse.Namespace) -> int:
    _show(local.tick(args.api))
    return 0


# -- parser -------------------------------------------------------------------------------


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    table = argparse.ArgumentParser(add_help=False)
    group = table.add_argument_group("table")
    group.add_argument(
        "--table",
        default=os.environ.get("TABLE_NAME", LOCAL_TABLE),
        help="the leads table (default: $TABLE_NAME, else %(default)s)",
    )
    group.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="DynamoDB endpoint, e.g. the local stack's http://127.0.0.1:5000 "
        "(default: $AWS_ENDPOINT_URL; none: AWS)",
    )
    group.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION),
        help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, else %(default)s)",
    )
    content_dir = argparse.ArgumentParser(add_help=False)
    content_dir.add_argument(
        "--content",
        type=Path,
        default=Path(os.environ["LEAD_NURTURE_CONTENT"])
        if os.environ.get("LEAD_NURTURE_CONTENT")
        else None,
        metavar="DIR",
        help="content directory with programs/, email/ and scoring.yaml "
        "(default: $LEAD_NURTURE_CONTENT, else the shipped shared/content)",
    )
    dates = argparse.ArgumentParser(add_help=False)
    dates.add_argument("--from", dest="from_", type=_day, metavar="DATE", help="first day")
    dates.add_argument("--to", type=_day, metavar="DATE", help="last day (default: today in Japan)")
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument(
        "--api",
        default=os.environ.get("LOCAL_API_URL", local.DEFAULT_API),
        help="the local stack's API (default: $LOCAL_API_URL, else %(default)s)",
    )

    parser = argparse.ArgumentParser(
        prog="lead-nurture",
        description="Operate lead nurture: import lead lists, check content, report, "
        "export a lead's data.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "import",
        parents=[table, content_dir, api],
        help="import leads from a .csv or .xlsx file",
        description="Import a lead list through the web form's validation, dedupe and "
        "consent records. Columns are read through the column dictionary "
        "(import_columns.yaml: Sansan and Eight card exports, badge scans, Japanese and "
        "English headers); how each column is read is printed before anything is written. "
        "Into the local stack (a local --endpoint-url), rows are stamped with the stack's "
        "own clock, read from --api. Exit status 1 when rows were rejected.",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument(
        "--form-type",
        choices=[f.value for f in FormType],
        default=FormType.SEMINAR_REGISTRATION.value,
        help="what the list is (default %(default)s; business cards: contact)",
    )
    p.add_argument("--source", help="where the leads came from, e.g. exhibition-2026-tokyo")
    p.add_argument(
        "--consent-source",
        metavar="VERSION",
        help="the leads opted in to email under this consent wording version "
        "(without it, no consent is recorded)",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="HEADER=FIELD",
        help="map a column to a field (repeatable); HEADER=- ignores the column",
    )
    p.add_argument("--encoding", help="CSV encoding (default: detect UTF-8 or CP932)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read every row, report the columns and what would happen; write nothing",
    )
    p.set_defaults(run=cmd_import)

    p = commands.add_parser(
        "import-purchases",
        parents=[table, content_dir],
        help="import purchases (.csv or .xlsx) from a sales or order system's export",
        description="One purchase per row: the lead (an email or lead_id column), the "
        "date, the amount in yen, the product, and the order number where there is one "
        "(受注番号, order_id, ...). Each purchase is recorded once, however often the file "
        "is imported (by its order number, else by its day, product and amount); a lead "
        "that was not a customer becomes one. Exit status 1 when rows were rejected.",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument(
        "--map",
        action="append",
        metavar="HEADER=FIELD",
        help="read a column as lead_id, email, purchase_id, date, amount or product",
    )
    p.add_argument("--encoding", help="CSV encoding (default: detect UTF-8 or CP932)")
    p.add_argument("--dry-run", action="store_true", help="check every row; write nothing")
    p.set_defaults(run=cmd_import_purchases)

    p = commands.add_parser(
        "attendance",
        parents=[table, content_dir],
        help="import an event's attendee list (.csv or .xlsx): each row checked in",
        description="Each row is a check-in of the event (form type seminar_attendance), "
        "through the import's validation, dedupe and consent records: registrants are "
        "marked attended (their follow-up then offers the materials and a meeting, not "
        "the recording) and score the attendance points; others are walk-ins. Import it "
        "before the event program's follow-up time. Exit status 1 when rows were rejected.",
    )
    p.add_argument("event", metavar="EVENT", help="the event's id in events.yaml")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--source", help="where the list came from (default: event:<EVENT>)")
    p.add_argument(
        "--consent-source",
        metavar="VERSION",
        help="the attendees opted in to email under this consent wording version",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="HEADER=FIELD",
        help="map a column to a field (repeatable); HEADER=- ignores the column",
    )
    p.add_argument("--encoding", help="CSV encoding (default: detect UTF-8 or CP932)")
    p.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    p.set_defaults(run=cmd_attendance)

    p = commands.add_parser(
        "cancel",
        parents=[table, content_dir],
        help="cancel a lead's registration for an event; a waiting lead gets the place",
        description="The lead's place (or its turn on the waiting list) is given up and its "
        "event emails stop; each free place goes to the lead that has waited longest, whose "
        "confirmation says the place came free. Running it again gives out any place "
        "still free.",
    )
    p.add_argument("event", metavar="EVENT", help="the event's id in events.yaml")
    p.add_argument("lead", metavar="LEAD", help="a lead id, or the lead's email address")
    p.set_defaults(run=cmd_cancel)

    p = commands.add_parser(
        "validate",
        parents=[content_dir],
        help="check programs, scoring rules and every template",
    )
    p.set_defaults(run=cmd_validate)

    p = commands.add_parser(
        "preview", parents=[table, content_dir], help="render one step of a program"
    )
    p.add_argument("--program", required=True)
    p.add_argument("--step", required=True)
    p.add_argument("--locale", choices=["ja", "en"])
    p.add_argument("--variant", type=_non_negative, default=0, help="A/B subject (default 0)")
    p.add_argument(
        "--event", help="an event program's step for this event of events.yaml (default: a sample)"
    )
    p.add_argument("--lead-id", help="render for this stored lead (default: a sample lead)")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write <step>.<locale>.html and .txt here (default: print the text part)",
    )
    p.set_defaults(run=cmd_preview)

    p = commands.add_parser(
        "export",
        parents=[table, content_dir],
        help="everything held about one lead, as JSON (disclosure requests, 開示請求)",
        description="The profile, consent records, whole timeline, score and its reasons, "
        "send and email records, hand-offs and every other record of the lead, as the "
        "admin API's GET /leads/{id}/export answers it. Erased leads are not found.",
    )
    p.add_argument("lead", metavar="LEAD", help="a lead id, or the lead's email address")
    p.add_argument(
        "--out", type=Path, metavar="FILE", help="write it here (default: standard output)"
    )
    p.set_defaults(run=cmd_export)

    p = commands.add_parser(
        "sending",
        parents=[table],
        help="the sending guard: status, pause, or resume after a pause",
        description="The scheduler pauses nurture email by itself when the bounce or "
        "complaint rate reaches cdk.json's reputation limits; only resume starts it again.",
    )
    p.add_argument("action", choices=["status", "pause", "resume"])
    p.add_argument("--by", default=os.environ.get("USER", "operator"), help="who you are")
    p.add_argument("--reason", help="why (pause)")
    p.set_defaults(run=cmd_sending)

    p = commands.add_parser("report", help="reports from the daily counters")
    kinds = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    k = kinds.add_parser(
        "funnel",
        parents=[table, dates],
        help="stage counts and conversion rates (in total, by week, source, form type and "
        "program), the buying cycle, deals, re-engagement, list health and email KPIs "
        "(default: the last 30 days)",
    )
    k.add_argument(
        "--conversion-days",
        type=int,
        choices=CONVERSION_DAYS,
        default=14,
        help="credit an email with the MQLs within this many days of it (default %(default)s)",
    )
    k.add_argument(
        "--csv",
        type=Path,
        metavar="DIR",
        help="write each table as <DIR>/<table>.csv (UTF-8 with BOM, for Excel) instead",
    )
    k.set_defaults(run=cmd_report_funnel)
    k = kinds.add_parser(
        "experiments",
        parents=[table, content_dir, dates],
        help="per step with variants: each variant's sends, human clicks and MQLs, the "
        "probability that it is best, and the sends still needed (default: the last 30 days)",
    )
    k.add_argument("--csv", type=Path, metavar="DIR", help="write each table as a CSV file")
    k.set_defaults(run=cmd_report_experiments)
    k = kinds.add_parser(
        "events",
        parents=[table, content_dir, dates],
        help="per event: registrations, cancellations, the waiting list, attendance rate, "
        "walk-ins and MQLs (default: the last 90 days)",
    )
    k.add_argument("--csv", type=Path, metavar="DIR", help="write the table as a CSV file")
    k.set_defaults(run=cmd_report_events)
    k = kinds.add_parser(
        "customers",
        parents=[table, content_dir, dates],
        help="customers by RFM segment: how many are in each now, their purchases and "
        "revenue, and the moves between segments by month (default: the last 365 days)",
    )
    k.add_argument("--csv", type=Path, metavar="DIR", help="write each table as a CSV file")
    k.set_defaults(run=cmd_report_customers)

    p = commands.add_parser(
        "plan",
        parents=[table, dates],
        help="leads needed at each stage to win N deals",
        description="Rates not given come from the measured funnel over --from/--to, "
        "else from typical B2B rates.",
    )
    p.add_argument("--deals", type=_non_negative, required=True)
    p.add_argument(
        "--rates",
        metavar="lead_mql=R,mql_sql=R,sql_won=R",
        help="conversion rates (0.2, 20%% or 1/5); any subset",
    )
    p.set_defaults(run=cmd_plan)

    p = commands.add_parser(
        "backtest",
        parents=[table, content_dir, dates],
        help="replay leads with a known outcome through today's scoring rules and a candidate",
        description="Leads whose outcome sales recorded (won, lost, rejected) from --from to "
        "--to (default: all) are replayed through today's scoring.yaml and, side by side, "
        "a candidate file: MQLs per month, precision and recall of MQL against won, median "
        "days from MQL to won, and the leads whose state would change.",
    )
    p.add_argument("--rules", type=Path, metavar="FILE", help="candidate scoring rules (YAML)")
    p.add_argument(
        "--suggest",
        action="store_true",
        help="fit point values to the history (logistic regression) and write them to --out",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="where --suggest writes its rules")
    p.set_defaults(run=cmd_backtest)

    p = commands.add_parser(
        "clock", parents=[api], help="the local stack's clock: show it, or advance DURATION"
    )
    p.add_argument("action", nargs="?", choices=["show", "advance"], default="show")
    p.add_argument("duration", nargs="?", help="ISO-8601 duration: PT1H, P1D, P1W")
    p.set_defaults(run=cmd_clock)

    p = commands.add_parser("tick", parents=[api], help="run the local stack's schedules now")
    p.set_defaults(run=cmd_tick)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "clock":
        if args.action == "advance" and not args.duration:
            parser.error("clock advance needs a DURATION, e.g. P1D")
        if args.action == "show":
            args.duration = None
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (CliError, local.LocalStackError) as exc:
        print(f"lead-nurture: error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"lead-nurture: AWS error: {exc}", file=sys.stderr)
        return 2

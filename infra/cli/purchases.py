"""``lead-nurture import-purchases``: a sales or order system's export (CSV or .xlsx),
one purchase per row, recorded through ``shared.services.purchases`` (once per order, however
often the file is imported)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TextIO

from pydantic import TypeAdapter, ValidationError

from infra.cli.tables import Table, blank
from shared.domain.customers import FutureDate, Purchase
from shared.domain.leads import is_lead_id
from shared.domain.lists import header_key
from shared.ports import LeadRepository, UnknownLead
from shared.services.purchases import PurchaseBook
from shared.web.submission import Email

# The headers each field is read from (compared as ``header_key`` compares them:
# NFKC, case, spaces and brackets aside); ``--map HEADER=FIELD`` adds to them.
HEADERS: Mapping[str, tuple[str, ...]] = {
    "lead_id": ("lead_id", "リードID"),
    "email": ("email", "e-mail", "メールアドレス", "メール", "Eメール"),
    "purchase_id": (
        "purchase_id",
        "order_id",
        "order number",
        "受注番号",
        "注文番号",
        "伝票番号",
        "受注ID",
        "契約番号",
    ),
    "date": (
        "date",
        "order date",
        "purchase date",
        "購入日",
        "受注日",
        "注文日",
        "売上日",
        "契約日",
    ),
    "amount": (
        "amount",
        "total",
        "金額",
        "購入金額",
        "受注金額",
        "売上金額",
        "合計金額",
        "契約金額",
    ),
    "product": ("product", "product name", "item", "商品", "商品名", "製品", "製品名", "プラン"),
}
FIELDS = tuple(HEADERS)
PURCHASE_FIELDS = ("purchase_id", "date", "amount", "product")


class ColumnsError(Exception):
    """The file's headers do not name what a purchase needs."""


def columns_of(headers: tuple[str, ...], mapping: Mapping[str, str]) -> dict[str, int]:
    """Field -> column index; ``mapping`` is ``--map`` (header key -> field)."""
    lookup = {header_key(h): f for f, names in HEADERS.items() for h in names}
    lookup.update(mapping)
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = lookup.get(header_key(header))
        if name in FIELDS and name not in found:
            found[name] = index
    missing = [f for f in ("date", "amount", "product") if f not in found]
    if "lead_id" not in found and "email" not in found:
        missing.insert(0, "email or lead_id")
    if missing:
        raise ColumnsError(
            f"no column for {', '.join(missing)} (headers: {', '.join(headers)}); "
            "name one with --map 'HEADER=FIELD'"
        )
    return found


def fits(headers: Sequence[str], mapping: Mapping[str, str]) -> bool:
    """True if ``headers`` name every column a purchase needs (a header row)."""
    try:
        columns_of(tuple(headers), mapping)
    except ColumnsError:
        return False
    return True


@dataclass
class PurchaseImport:
    rows: int = 0  # rows read (blank ones skipped)
    recorded: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    customers: Counter[str] = field(default_factory=Counter)  # segment after the row

    @property
    def ok(self) -> bool:
        return not self.problems


def import_purchases(
    table: Table,
    columns: Mapping[str, int],
    leads: LeadRepository,
    book: PurchaseBook | None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> PurchaseImport:
    """Each row's purchase, recorded for the lead its ``lead_id`` or address names;
    ``book`` None checks every row and writes nothing (a dry run)."""
    result = PurchaseImport()
    rows = [(n, cells) for n, cells in table.rows if not blank(cells)]
    result.rows = len(rows)
    for done, (number, cells) in enumerate(rows, start=1):
        progress(done, len(rows))

        def cell(name: str, cells: tuple[str, ...] = cells) -> str | None:
            index = columns.get(name)
            value = cells[index].strip() if index is not None and index < len(cells) else ""
            return value or None

        try:
            purchase = Purchase.model_validate(
                {k: v for k in PURCHASE_FIELDS if (v := cell(k)) is not None}
            )
        except ValidationError as exc:
            wrong = ", ".join(f"{'.'.join(map(str, e['loc']))} ({e['type']})" for e in exc.errors())
            result.problems.append(f"row {number}: {wrong}")
            continue
        lead_id = cell("lead_id")
        if lead_id is None or not is_lead_id(lead_id):
            address = cell("email")
            lead_id = leads.lead_of(_as_captured(address))[0] if address else None
            if lead_id is None:
                result.problems.append(f"row {number}: no lead with the address {address or '-'}")
                continue
        if book is None:
            continue
        try:
            recorded = book.record(lead_id, purchase)
        except UnknownLead:
            result.problems.append(f"row {number}: no lead {lead_id}")
            continue
        except FutureDate as exc:
            result.problems.append(f"row {number}: date ({exc})")
            continue
        if recorded.duplicate:
            result.duplicates += 1
        else:
            result.recorded += 1
            if recorded.lead.rank is not None:
                result.customers[recorded.lead.rank.segment] += 1
    return result


def print_import(result: PurchaseImport, dry_run: bool, out: TextIO) -> None:
    if dry_run:
        print(f"{result.rows} rows checked (dry run: nothing written)", file=out)
    else:
        print(
            f"{result.recorded} purchases recorded, {result.duplicates} recorded before "
            "(the same order number, or the same day, product and amount)",
            file=out,
        )
        if result.customers:
            after = ", ".join(f"{s} {n}" for s, n in sorted(result.customers.items()))
            print(f"customer segments after their rows: {after}", file=out)
    for problem in result.problems:
        print(f"rejected {problem}", file=out)


@cache
def _addresses() -> TypeAdapter[str]:
    return TypeAdapter(Email)


def _as_captured(address: str) -> str:
    """The address as a form post stores it (full-width letters, the domain's case), so
    an order finds the lead its owner became; as written where it is no address."""
    try:
        return _addresses().validate_python(address)
    except ValidationError:
        return address

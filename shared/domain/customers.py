"""Customers by what they buy: purchases, RFM scores, named segments and CPM labels
(pure: no I/O, no AWS).

``shared/content/customers.yaml`` says how recency (days since the last purchase),
frequency (purchases) and monetary value (yen in all) score 1 to 5, which scores make
which segment (優良顧客, 安定顧客, 新規顧客, 離反懸念, 休眠顧客: the first rule that holds),
and the yearly spend a company of each size could reach, against which the last twelve
months' spend gives the CPM label (current value against the maximum: the potential
left). A customer's ``Rank`` is kept on the lead: computed when a purchase is recorded,
when the sender next decides for the lead, and by the review on the day it changes
without a purchase (``Rank.changes_on``), so rules and reports read it without a clock.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, time
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.domain.events import Localized
from shared.domain.leads import Activity, ActivityType, Lead, Purchases, Rank, Stage
from shared.domain.normalize import JAPAN, NormalisationError, clean_line, nfkc, parse_local_time
from shared.domain.nurture import start
from shared.domain.programs import ProgramCatalog
from shared.yamlfile import read_yaml

CUSTOMERS_FILE = Path(__file__).parents[1] / "content" / "customers.yaml"
MONTHS_KEPT = 12  # the CPM's current value: the last twelve months' spend
MAX_PRODUCTS = 100  # products owned kept on the lead (the oldest give way)
SEGMENT_ID = r"^[a-z0-9][a-z0-9_]{0,39}$"


# -- a purchase as recorded --------------------------------------------------------------


def _day(value: Any) -> Any:
    """A purchase day as APIs and sales systems' exports write it (2026-11-30,
    2026/11/30, 2026年11月30日, an ISO time with its offset): the Japanese day."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=JAPAN)
        return moment.astimezone(JAPAN).date()
    if isinstance(value, str):
        try:
            return parse_local_time(value).astimezone(JAPAN).date()
        except NormalisationError as exc:
            raise PydanticCustomError(
                "invalid_date", "not a date: {value}", {"value": value}
            ) from exc
    return value


# Yen have no fraction: "1200000.00" is read, "1200.50" is not an amount.
_YEN = re.compile(r"(?i)(?:jpy|[¥\\])?(\d+)(?:\.0+)?(?:円|jpy)?")


def _yen(value: Any) -> Any:
    """An amount as exports write it (1,200,000, ¥1,200,000, 1200000円, JPY 1,200,000,
    1200000.00, full-width digits;
    a CP932 file's yen sign is the byte of the backslash, which Japanese fonts show as ¥)."""
    if isinstance(value, str):
        found = _YEN.fullmatch(nfkc(value).replace(",", "").replace(" ", ""))
        if found is None:
            raise PydanticCustomError(
                "invalid_amount", "not an amount in yen: {value}", {"value": value}
            )
        return int(found.group(1))
    return value


def _text(limit: int) -> BeforeValidator:
    def clean(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return clean_line(value, limit)
        except NormalisationError as exc:
            raise PydanticCustomError(exc.code, exc.code) from exc

    return BeforeValidator(clean)


class Purchase(BaseModel):
    """One purchase: the body of ``POST /leads/{id}/purchases`` or a row of an import."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The order's number in the sales system: what makes a purchase recorded twice (a
    # retried request, a file imported again) count once. Without it, the day, product
    # and amount are the purchase's identity.
    purchase_id: Annotated[str, _text(100), Field(min_length=1, max_length=100)] | None = None
    amount: Annotated[int, BeforeValidator(_yen), Field(ge=0, le=10**12)]  # yen
    date: Annotated[date, BeforeValidator(_day)]
    product: Annotated[str, _text(100), Field(min_length=1, max_length=100)]

    @property
    def key(self) -> str:
        """What identifies the purchase on its lead (its dedupe marker)."""
        if self.purchase_id is not None:
            return "id:" + self.purchase_id
        digest = hashlib.sha256(f"{self.date}|{self.product}|{self.amount}".encode())
        return "sum:" + digest.hexdigest()[:24]


class FutureDate(ValueError):
    """A purchase dated after today (in Japan)."""


def month_of(day: date) -> str:
    return f"{day:%Y-%m}"


def _months_back(day: date, months: int) -> str:
    index = day.year * 12 + day.month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def adding(purchases: Purchases | None, purchase: Purchase, today: date) -> Purchases:
    """The summary with ``purchase`` added (the months before the last twelve dropped)."""
    if purchase.date > today:
        raise FutureDate(f"the purchase is dated {purchase.date}, after today ({today})")
    month = month_of(purchase.date)
    oldest = _months_back(today, MONTHS_KEPT - 1)
    if purchases is None:
        by_month = {month: purchase.amount} if month >= oldest else {}
        products = (purchase.product,)
        return Purchases(
            count=1,
            total=purchase.amount,
            first_on=purchase.date,
            last_on=purchase.date,
            products=products,
            by_month=by_month,
        )
    by_month = {m: yen for m, yen in purchases.by_month.items() if m >= oldest}
    if month >= oldest:
        by_month[month] = by_month.get(month, 0) + purchase.amount
    owned = purchases.products
    if purchase.product not in owned:
        owned = tuple(sorted((*owned, purchase.product)))[-MAX_PRODUCTS:]
    return purchases.model_copy(
        update={
            "count": purchases.count + 1,
            "total": purchases.total + purchase.amount,
            "first_on": min(purchases.first_on, purchase.date),
            "last_on": max(purchases.last_on, purchase.date),
            "products": owned,
            "by_month": dict(sorted(by_month.items())),
        }
    )


# -- the rules ---------------------------------------------------------------------------


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Score = Annotated[int, Field(ge=1, le=5)]


def _ascending(values: tuple[int, ...]) -> tuple[int, ...]:
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"four ascending boundaries (scores 1 to 5), got {list(values)}")
    return values


Boundaries = Annotated[tuple[int, ...], Field(min_length=4, max_length=4)]


class SegmentRule(_Content):
    """A named segment: the scores it takes (each key given must hold; none: any)."""

    id: str = Field(pattern=SEGMENT_ID)
    name: Localized
    r: tuple[Score, ...] = ()
    f: tuple[Score, ...] = ()
    m: tuple[Score, ...] = ()

    @property
    def unconditional(self) -> bool:
        return not (self.r or self.f or self.m)

    def holds(self, r: int, f: int, m: int) -> bool:
        scores = ((self.r, r), (self.f, f), (self.m, m))
        return all(not rule or score in rule for rule, score in scores)


class CpmLabel(_Content):
    id: str = Field(pattern=SEGMENT_ID)
    name: Localized
    min_share: float = Field(ge=0, le=1)


class CustomerRules(_Content):
    recency_days: Boundaries
    frequency: Boundaries
    monetary_yen: Boundaries
    segments: tuple[SegmentRule, ...] = Field(min_length=1)
    potential_yen: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    cpm: tuple[CpmLabel, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> CustomerRules:
        for name in ("recency_days", "frequency", "monetary_yen"):
            try:
                _ascending(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        ids = [s.id for s in self.segments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"segment ids must be unique: {ids}")
        if not self.segments[-1].unconditional:
            raise ValueError(f"the last segment ({ids[-1]}) takes every customer: no r, f or m")
        unreachable = [s.id for s in self.segments[:-1] if s.unconditional]
        if unreachable:
            raise ValueError(f"only the last segment may have no r, f or m: {unreachable}")
        shares = [label.min_share for label in self.cpm]
        if self.cpm and (shares != sorted(shares, reverse=True) or shares[-1] != 0):
            raise ValueError("cpm: min_share from highest to lowest, the last 0")
        if self.potential_yen and not self.cpm:
            raise ValueError("potential_yen needs cpm labels")
        return self

    @property
    def segment_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.segments)

    def segment(self, segment_id: str) -> SegmentRule | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    def label(self, label_id: str) -> CpmLabel | None:
        return next((c for c in self.cpm if c.id == label_id), None)

    def rank(self, purchases: Purchases, company_size: str | None, today: date) -> Rank:
        """The customer's scores, segment and CPM label on ``today``."""
        days = (today - purchases.last_on).days
        r = 5 - sum(days > limit for limit in self.recency_days)
        f = 1 + sum(purchases.count >= limit for limit in self.frequency)
        m = 1 + sum(purchases.total >= limit for limit in self.monetary_yen)
        segment = next(s.id for s in self.segments if s.holds(r, f, m))
        return Rank(
            r=r,
            f=f,
            m=m,
            segment=segment,
            cpm=self._cpm(purchases, company_size, today),
            on=today,
            changes_on=self._changes_on(purchases, company_size, today),
        )

    def _year_spend(self, purchases: Purchases, today: date) -> int:
        oldest = _months_back(today, MONTHS_KEPT - 1)
        latest = month_of(today)
        return sum(yen for month, yen in purchases.by_month.items() if oldest <= month <= latest)

    def _cpm(self, purchases: Purchases, company_size: str | None, today: date) -> str | None:
        maximum = self.potential_yen.get(company_size or "")
        if maximum is None:
            return None  # no fit to measure the potential by
        share = self._year_spend(purchases, today) / maximum
        return next(label.id for label in self.cpm if share >= label.min_share)

    def _changes_on(
        self, purchases: Purchases, company_size: str | None, today: date
    ) -> date | None:
        """The first day after ``today`` on which the rank changes with no purchase: the
        recency score drops, or (with a CPM label) a month of spend leaves the year."""
        days = (today - purchases.last_on).days
        found = [
            date.fromordinal(purchases.last_on.toordinal() + limit + 1)
            for limit in self.recency_days
            if limit >= days
        ]
        if company_size in self.potential_yen:
            oldest = _months_back(today, MONTHS_KEPT - 1)
            months = [m for m, yen in purchases.by_month.items() if m >= oldest and yen]
            if months:
                year, month = (int(p) for p in min(months).split("-"))
                found.append(date(year + 1, month, 1))  # that month is then a year ago
        return min(found, default=None)


def load_customers(path: Path = CUSTOMERS_FILE) -> CustomerRules:
    try:
        return CustomerRules.model_validate(read_yaml(path))
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


# -- on the lead ---------------------------------------------------------------------------


def current_rank(lead: Lead, rules: CustomerRules, today: date) -> Rank | None:
    """The lead's rank on ``today``: the one kept until the day it changes (None: no
    purchases)."""
    kept = lead.rank
    if lead.purchases is None:
        return None
    if kept is not None and kept.on <= today and today < (kept.changes_on or date.max):
        return kept
    return rules.rank(lead.purchases, lead.company_size, today)


def reranked(
    lead: Lead, rank: Rank | None, programs: ProgramCatalog, now: datetime
) -> tuple[dict[str, Any], list[Activity]]:
    """What a customer's new rank changes (every path that ranks a lead outside a send
    applies this): the rank; a ``segment_changed`` activity when the segment moves, and a
    customer outside any program that moves enters the program for its new segment
    (``program_for_segment``); the review on the day the rank next changes, while no
    program runs."""
    was = lead.rank.segment if lead.rank is not None else None
    changes: dict[str, Any] = {"rank": rank}
    activities: list[Activity] = []
    running = lead.enrolment is not None and lead.enrolment.completed_at is None
    if rank is not None and rank.segment != was:
        program = None
        if not running and lead.mailable and lead.stage is Stage.CUSTOMER:
            program = programs.program_for_segment(lead.model_copy(update=changes))
        if program is not None:
            changes["enrolment"] = start(program, now)
            running = True
        details = {"from": was, "to": rank.segment, "program_id": program.id if program else None}
        activities.append(
            Activity(
                lead_id=lead.lead_id, type=ActivityType.SEGMENT_CHANGED, at=now, details=details
            )
        )
    if lead.stage is Stage.CUSTOMER:  # a lead's review_at is its dormancy review
        changes["review_at"] = None if running else review_time(rank)
    return changes, activities


def review_time(rank: Rank | None) -> datetime | None:
    """When the review computes the rank again: early on the day it changes."""
    if rank is None or rank.changes_on is None:
        return None
    return datetime.combine(rank.changes_on, time(0, 5), tzinfo=JAPAN)

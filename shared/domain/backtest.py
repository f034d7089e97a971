"""Scoring backtest: would these rules have picked the leads that bought? (pure)

The leads whose outcome sales recorded (won, lost, rejected: ``Outcome``) are replayed
through a set of scoring rules: each person's open and click, form post, website page
read (grouped and timed by each set of rules' own ``pages``), opt-out and permanent
bounce on the stored timeline earns what the rules give it (daily caps, decay), and
the lead becomes an MQL the first time, before its outcome, that its score and its fit
grade meet the qualification rule or it posts a high-intent form. What is
reported, for today's rules and a candidate side by side: MQLs per month (the load on
sales), precision and recall of MQL against won, the median days from MQL to won, and
the leads whose state would change.

The replay asks only whether the rules pick the lead: it ignores the stage history the
lead really had (cool-downs, sales' earlier rejections) and grades the fit on today's
profile. Machine opens and clicks (``verdict: machine``) never count, as in production.

``suggest`` fits point values to the history: a logistic regression of won against the
behaviour counts (a behaviour that does not raise the odds gets no points), its weights
scaled so that the qualification score is where a lead becomes more likely won than not.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from shared.domain.leads import Activity, ActivityType, FormType, Lead, Outcome
from shared.domain.scoring import FORM_SIGNALS, Points, ScoringRules, Signal
from shared.ports import LeadRepository, OutcomeList

TOKYO = ZoneInfo("Asia/Tokyo")
WON = "won"
# Behaviours whose fitted points may be below zero: the ones that end a conversation.
COSTS = frozenset({Signal.UNSUBSCRIBE.value, Signal.BOUNCE.value})


@dataclass(frozen=True)
class Behaviour:
    """One thing on a timeline that scoring rules can give points for."""

    at: datetime
    signal: Signal
    link_tags: tuple[str, ...] = ()
    form_type: FormType | None = None
    # A page view: its path and time on page; each set of rules finds the page's group.
    path: str | None = None
    seconds: int = 0

    def tags(self, rules: ScoringRules) -> tuple[str, ...] | None:
        """What ``points_for`` is asked about under ``rules`` (a page's group, if the
        page was read long enough), or None for a page those rules do not track."""
        if self.signal is not Signal.PAGE_VIEW:
            return self.link_tags
        pages = rules.pages
        if self.path is None or pages.ignored(self.path):
            return None
        group = pages.group_of(self.path)
        return (group,) if group and self.seconds >= pages.min_seconds else ()

    def features(self, rules: ScoringRules) -> list[str]:
        """What ``suggest`` counts: the signal, each tag of a clicked link, the group of
        a page read."""
        if self.signal is Signal.PAGE_VIEW:
            return [f"page:{group}" for group in self.tags(rules) or ()]
        names = [self.signal.value]
        if self.signal is Signal.CLICK:
            names.extend(f"link:{tag}" for tag in self.link_tags)
        return names


def behaviours(timeline: Iterable[Activity]) -> list[Behaviour]:
    """The scoring behaviours of a timeline, oldest first (a machine's left out)."""
    found: list[Behaviour] = []
    for activity in sorted(timeline, key=lambda a: (a.at, a.activity_id)):
        details = activity.details
        if details.get("verdict") == "machine":
            continue
        kind = activity.type
        if kind is ActivityType.EMAIL_OPENED:
            found.append(Behaviour(activity.at, Signal.OPEN))
        elif kind is ActivityType.EMAIL_CLICKED:
            tags = tuple(str(t) for t in details.get("link_tags") or ())
            found.append(Behaviour(activity.at, Signal.CLICK, tags))
        elif kind is ActivityType.FORM_SUBMITTED:
            try:
                form = FormType(str(details.get("form_type")))
            except ValueError:
                continue
            found.append(Behaviour(activity.at, FORM_SIGNALS[form], form_type=form))
        elif kind is ActivityType.UNSUBSCRIBED:
            found.append(Behaviour(activity.at, Signal.UNSUBSCRIBE))
        elif kind is ActivityType.EMAIL_BOUNCED and details.get("bounce_type") == "Permanent":
            found.append(Behaviour(activity.at, Signal.BOUNCE))
        elif kind is ActivityType.PAGE_VIEWED and details.get("url"):
            path = urlsplit(str(details["url"])).path or "/"
            seconds = int(details.get("seconds") or 0)
            found.append(Behaviour(activity.at, Signal.PAGE_VIEW, path=path, seconds=seconds))
    return found


@dataclass(frozen=True)
class History:
    """A lead with a known outcome, and what it did before."""

    lead: Lead
    outcome: Outcome
    behaviours: tuple[Behaviour, ...]

    @property
    def won(self) -> bool:
        return self.outcome.disposition == WON

    def before_outcome(self) -> list[Behaviour]:
        return [b for b in self.behaviours if b.at <= self.outcome.at]


def latest_outcomes(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Each lead's last recorded outcome (a rejected lead may be won later)."""
    latest: dict[str, Outcome] = {}
    for outcome in outcomes:
        known = latest.get(outcome.lead_id)
        if known is None or outcome.at > known.at:
            latest[outcome.lead_id] = outcome
    return sorted(latest.values(), key=lambda o: (o.at, o.lead_id))


@dataclass(frozen=True)
class Replay:
    lead_id: str
    won: bool
    outcome_at: datetime
    mql_at: datetime | None
    reason: str | None  # "score" or "high_intent"

    @property
    def mql(self) -> bool:
        return self.mql_at is not None


def replay(history: History, rules: ScoringRules) -> Replay:
    """When, if ever before its outcome, ``rules`` would have made the lead an MQL."""
    grade = rules.grade(history.lead)
    units = Decimal(0)
    used: Counter[tuple[str, str]] = Counter()  # (rule, JST day) -> points given
    for behaviour in history.before_outcome():
        if behaviour.form_type is not None and behaviour.form_type in rules.high_intent:
            return _mql(history, behaviour.at, "high_intent")
        tags = behaviour.tags(rules)
        if tags is None:
            continue
        day = behaviour.at.astimezone(TOKYO).date().isoformat()
        earned = 0
        for name, rule in rules.points_for(behaviour.signal, tags):
            if _capped(rule, used[(name, day)]):
                continue  # as in production: a rule without room for its points gives none
            used[(name, day)] += rule.points
            units += rules.units(rule.points, behaviour.at)
            earned += rule.points
        if earned > 0 and rules.qualifies(rules.score(units, behaviour.at), grade):
            return _mql(history, behaviour.at, "score")
    return Replay(history.lead.lead_id, history.won, history.outcome.at, None, None)


def _capped(rule: Points, used: int) -> bool:
    return rule.points > 0 and rule.daily_cap is not None and used + rule.points > rule.daily_cap


def _mql(history: History, at: datetime, reason: str) -> Replay:
    return Replay(history.lead.lead_id, history.won, history.outcome.at, at, reason)


@dataclass(frozen=True)
class Backtest:
    """One set of rules replayed over the histories."""

    name: str
    replays: tuple[Replay, ...]

    @property
    def mqls(self) -> int:
        return sum(r.mql for r in self.replays)

    @property
    def won(self) -> int:
        return sum(r.won for r in self.replays)

    @property
    def mql_won(self) -> int:
        return sum(r.mql and r.won for r in self.replays)

    @property
    def precision(self) -> Fraction | None:
        """Of the leads the rules hand to sales, the share that were won."""
        return Fraction(self.mql_won, self.mqls) if self.mqls else None

    @property
    def recall(self) -> Fraction | None:
        """Of the leads that were won, the share the rules would have handed over."""
        return Fraction(self.mql_won, self.won) if self.won else None

    @property
    def mqls_per_month(self) -> dict[str, int]:
        months = Counter(
            r.mql_at.astimezone(TOKYO).strftime("%Y-%m") for r in self.replays if r.mql_at
        )
        return dict(sorted(months.items()))

    @property
    def median_days_to_won(self) -> float | None:
        days = [
            (r.outcome_at - r.mql_at).total_seconds() / 86400
            for r in self.replays
            if r.won and r.mql_at is not None
        ]
        return statistics.median(days) if days else None

    def by_lead(self) -> dict[str, Replay]:
        return {r.lead_id: r for r in self.replays}


def load_histories(
    outcomes: OutcomeList,
    leads: LeadRepository,
    start: date,
    end: date,
    progress: Callable[[int, int], None] | None = None,
) -> list[History]:
    """The leads with an outcome recorded from ``start`` to ``end`` and their timelines:
    the outcome list by month, then one timeline Query per lead (no Scan). Erased leads
    are left out."""
    listed = latest_outcomes(outcomes.outcomes(start, end))
    histories = []
    for done, outcome in enumerate(listed, start=1):
        lead = leads.get(outcome.lead_id)
        if lead is not None:
            found = tuple(behaviours(leads.history(outcome.lead_id)))
            histories.append(History(lead, outcome, found))
        if progress is not None:
            progress(done, len(listed))
    return histories


def run(name: str, histories: Sequence[History], rules: ScoringRules) -> Backtest:
    return Backtest(name, tuple(replay(h, rules) for h in histories))


def changed(current: Backtest, candidate: Backtest) -> list[tuple[Replay, Replay]]:
    """The leads that one set of rules hands to sales and the other does not."""
    theirs = candidate.by_lead()
    return [
        (mine, theirs[mine.lead_id])
        for mine in current.replays
        if mine.lead_id in theirs and mine.mql != theirs[mine.lead_id].mql
    ]


# -- fitting points to the history ---------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    rules: ScoringRules
    weights: dict[str, float]  # feature -> logistic weight (log-odds per occurrence)
    intercept: float
    points: dict[str, int]  # feature -> suggested points
    leads: int
    won: int
    notes: list[str] = field(default_factory=list)


def feature_counts(history: History, rules: ScoringRules) -> Counter[str]:
    counts: Counter[str] = Counter()
    for behaviour in history.before_outcome():
        counts.update(behaviour.features(rules))
    return counts


def suggest(histories: Sequence[History], rules: ScoringRules, *, ridge: float = 1.0) -> Suggestion:
    """Points fitted to the history: a ridge-regularised logistic regression of won on the
    behaviour counts before the outcome, its weights scaled so that the qualification
    score stands where a lead's odds of being won pass even. Behaviours the history never
    shows keep their points. Raises ValueError when the history cannot support a fit.
    """
    rows = [feature_counts(h, rules) for h in histories]
    names = sorted({name for row in rows for name in row})
    won = sum(h.won for h in histories)
    if not names or won == 0 or won == len(histories):
        raise ValueError(
            "the history needs both won and not-won leads with some behaviour to fit points"
        )
    y = [1.0 if h.won else 0.0 for h in histories]
    # Points only add up: a behaviour that does not raise the odds of a win gets none
    # (refitted without it); only opting out and bouncing may cost points.
    fitted = names
    while True:
        x = [[float(row.get(name, 0)) for name in fitted] for row in rows]
        found, intercept = _logistic(x, y, ridge)
        weights = dict(zip(fitted, found, strict=True))
        negative = {n for n, w in weights.items() if w < 0 and n not in COSTS}
        if not negative:
            break
        fitted = [n for n in fitted if n not in negative]
        if not fitted:
            raise ValueError("no behaviour in the history raises the odds of a win")
    if intercept >= -1e-6:
        raise ValueError(
            "most leads are won with no behaviour at all: the history cannot say what "
            "makes a lead more likely to buy"
        )
    weights = {name: weights.get(name, 0.0) for name in names}
    # Score >= threshold  <=>  sum(w * count) >= -intercept  <=>  odds of won >= 1.
    scale = rules.qualification.min_score / -intercept
    points = {name: round(w * scale) for name, w in weights.items()}
    behaviour = dict(rules.behaviour)
    link_tags = dict(rules.link_tags)
    groups = dict(rules.pages.groups)
    for name, value in points.items():
        if name.startswith("link:"):
            tag = name.removeprefix("link:")
            kept = link_tags.get(tag)
            link_tags[tag] = Points(points=value, daily_cap=_cap(kept, value))
        elif name.startswith("page:"):
            group = groups[name.removeprefix("page:")]
            cap = _cap(group, value)
            groups[name.removeprefix("page:")] = group.model_copy(
                update={"points": value, "daily_cap": cap}
            )
        else:
            kept = behaviour.get(Signal(name))
            behaviour[Signal(name)] = Points(points=value, daily_cap=_cap(kept, value))
    pages = rules.pages.model_copy(update={"groups": groups})
    candidate = rules.model_copy(
        update={"behaviour": behaviour, "link_tags": link_tags, "pages": pages}
    )
    return Suggestion(
        rules=ScoringRules.model_validate(candidate.model_dump()),
        weights=weights,
        intercept=intercept,
        points=points,
        leads=len(histories),
        won=won,
    )


def _cap(kept: Points | None, points: int) -> int | None:
    """The daily cap scaled with the points (a cap of three opens stays three opens)."""
    if kept is None or kept.daily_cap is None or points <= 0:
        return None
    if kept.points <= 0:
        return kept.daily_cap
    return max(points, round(kept.daily_cap * points / kept.points))


def _logistic(
    x: Sequence[Sequence[float]], y: Sequence[float], ridge: float
) -> tuple[list[float], float]:
    """Newton's method on the ridge-penalised log-likelihood (the intercept unpenalised).

    Written by hand: a few dozen features and a few thousand leads at most, which a
    dependency-free solver handles in well under a second; numpy or scikit-learn would
    add tens of megabytes to the operator's command line for these forty lines.
    """
    n_features = len(x[0]) + 1
    rows = [[1.0, *row] for row in x]
    beta = [0.0] * n_features
    for _ in range(50):
        gradient = [0.0] * n_features
        hessian = [[0.0] * n_features for _ in range(n_features)]
        for row, target in zip(rows, y, strict=True):
            p = _sigmoid(sum(b * v for b, v in zip(beta, row, strict=True)))
            weight = p * (1 - p)
            for i, vi in enumerate(row):
                gradient[i] += (target - p) * vi
                if vi:
                    for j, vj in enumerate(row):
                        hessian[i][j] += weight * vi * vj
        for i in range(1, n_features):
            gradient[i] -= ridge * beta[i]
            hessian[i][i] += ridge
        step = _solve(hessian, gradient)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-9:
            break
    return beta[1:], beta[0]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def _solve(matrix: Sequence[Sequence[float]], vector: Sequence[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the system is small and positive
    definite thanks to the ridge term)."""
    size = len(vector)
    a = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            continue
        for r in range(col + 1, size):
            factor = a[r][col] / a[col][col]
            if factor:
                for c in range(col, size + 1):
                    a[r][c] -= factor * a[col][c]
    solution = [0.0] * size
    for r in reversed(range(size)):
        if abs(a[r][r]) < 1e-12:
            continue
        total = a[r][size] - sum(a[r][c] * solution[c] for c in range(r + 1, size))
        solution[r] = total / a[r][r]
    return solution


def as_content(suggestion: Suggestion) -> dict[str, Any]:
    """The candidate as ``scoring.yaml`` holds it."""
    document: dict[str, Any] = suggestion.rules.model_dump(mode="json")
    return document


def explanation(suggestion: Suggestion, current: ScoringRules) -> list[str]:
    """Why each point value: the comment block at the top of a suggested rules file."""
    lines = [
        "Suggested by `lead-nurture backtest --suggest`: review before use; nothing is applied.",
        f"Fitted to {suggestion.leads} leads with a known outcome ({suggestion.won} won):",
        "a logistic regression of won on each behaviour's count before the outcome",
        "(decay and daily caps not modelled), scaled so that the qualification score",
        f"({current.qualification.min_score:g}) is where a lead becomes more likely won than not.",
        "behaviour: log-odds per occurrence -> points (today's points)",
    ]
    for name, weight in sorted(suggestion.weights.items(), key=lambda kv: -abs(kv[1])):
        now = _current_points(current, name)
        was = "-" if now is None else str(now)
        lines.append(f"  {name}: {weight:+.3f} -> {suggestion.points[name]} ({was})")
    return lines


def _current_points(rules: ScoringRules, name: str) -> int | None:
    found: Points | None
    if name.startswith("link:"):
        found = rules.link_tags.get(name.removeprefix("link:"))
    elif name.startswith("page:"):
        found = rules.pages.groups.get(name.removeprefix("page:"))
    else:
        found = rules.behaviour.get(Signal(name))
    return found.points if found is not None else None

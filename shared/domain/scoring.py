"""Lead scoring as content: behaviour score with decay, fit grade, temperature, MQL rule.

The rules are ``shared/content/scoring.yaml``, edited by marketing and validated here.

The behaviour score decays with a half-life. To keep it exact under concurrent events
without a nightly job, the stored quantity is in "score units": an event worth ``p``
points at time ``t`` adds ``p * 2 ** ((t - EPOCH) / half_life)``. The score at any time
``now`` is ``units / 2 ** ((now - EPOCH) / half_life)``: decay is applied on read, and
each event is one atomic ADD, so no concurrent event can lose a point.
"""

from __future__ import annotations

import decimal
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.domain.leads import FormType, Lead
from shared.domain.normalize import nfkc
from shared.yamlfile import read_yaml

SCORING_FILE = Path(__file__).parents[1] / "content" / "scoring.yaml"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# 20 significant digits: sums of two such numbers stay within DynamoDB's 38-digit precision.
_CONTEXT = decimal.Context(prec=20)


class Signal(StrEnum):
    """Behaviour that earns (or costs) points."""

    OPEN = "open"
    CLICK = "click"
    DOWNLOAD = "download"
    SEMINAR_REGISTRATION = "seminar_registration"
    SEMINAR_ATTENDANCE = "seminar_attendance"
    INQUIRY = "inquiry"
    TRIAL = "trial"
    CONTACT = "contact"
    NEWSLETTER = "newsletter"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    # A page of the website read (the tracking snippet); points per page group.
    PAGE_VIEW = "page_view"


FORM_SIGNALS: dict[FormType, Signal] = {
    FormType.DOWNLOAD: Signal.DOWNLOAD,
    FormType.SEMINAR_REGISTRATION: Signal.SEMINAR_REGISTRATION,
    FormType.SEMINAR_ATTENDANCE: Signal.SEMINAR_ATTENDANCE,
    FormType.INQUIRY: Signal.INQUIRY,
    FormType.TRIAL: Signal.TRIAL,
    FormType.CONTACT: Signal.CONTACT,
    FormType.NEWSLETTER: Signal.NEWSLETTER,
}


class Grade(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def rank(self) -> int:
        return "DCBA".index(self.value)


class Temperature(StrEnum):
    HOT = "hot"  # 今すぐ客
    WARM = "warm"  # お悩み客
    COLD = "cold"  # そのうち客


@dataclass(frozen=True)
class LeadScore:
    score: float
    grade: Grade
    fit: tuple[tuple[str, int], ...]  # the fit rules met, with their points


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Points(_Content):
    points: int
    # At most this many points a day from this rule (JST day); None: no cap.
    daily_cap: int | None = Field(default=None, ge=0)


class TitleRule(_Content):
    keywords: tuple[str, ...] = Field(min_length=1)
    # A title that also has one of these is not this rule's: 社長秘書 is a secretary, not
    # the 社長, and 部長代理 is a deputy. The next rules then get their turn.
    unless: tuple[str, ...] = ()
    points: int

    @field_validator("keywords", "unless")
    @classmethod
    def _normalised(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        # Titles are NFKC when captured; the content must be too, or ＣＥＯ typed in the
        # YAML would be a Japanese-style substring keyword that never meets "CEO".
        return tuple(nfkc(word).strip() for word in words)

    @model_validator(mode="after")
    def _words_usable(self) -> TitleRule:
        name = f"job title rule [{', '.join(self.keywords)}]"
        for kind, words in (("keyword", self.keywords), ("unless word", self.unless)):
            if "" in words:
                raise ValueError(f"{name}: one {kind} is blank")
            folded = [word.casefold() for word in words]
            for word, fold in zip(words, folded, strict=True):
                if folded.count(fold) > 1:
                    raise ValueError(f"{name}: {kind} {word} is listed twice")
        for word in self.unless:
            for keyword in self.keywords:
                # Every title with such a keyword also has the word, so the keyword is dead.
                if _title_has(keyword, word):
                    where = "is" if word.casefold() == keyword.casefold() else "is part of"
                    raise ValueError(
                        f"{name}: unless word {word} {where} the keyword {keyword},"
                        " which could then never match"
                    )
        return self

    def matched(self, title: str) -> str | None:
        """The keyword that makes ``title`` this rule's (the grade's reason), if any."""
        if any(_title_has(title, word) for word in self.unless):
            return None
        return next((k for k in self.keywords if _title_has(title, k)), None)


class FitRules(_Content):
    industries: dict[str, int] = Field(default_factory=dict)
    company_sizes: dict[str, int] = Field(default_factory=dict)
    # The first rule that the job title meets wins; list the most senior first.
    job_titles: tuple[TitleRule, ...] = ()
    # Minimum fit points for each grade; below C is D.
    grades: dict[Grade, int]

    @model_validator(mode="after")
    def _grades_ordered(self) -> FitRules:
        needed = {Grade.A, Grade.B, Grade.C}
        if set(self.grades) != needed:
            raise ValueError("fit.grades needs thresholds for A, B and C")
        if not self.grades[Grade.A] > self.grades[Grade.B] > self.grades[Grade.C]:
            raise ValueError("fit.grades must be A > B > C")
        return self


class Threshold(_Content):
    min_score: float = 0
    min_grade: Grade = Grade.D

    def met(self, score: float, grade: Grade) -> bool:
        return score >= self.min_score and grade.rank >= self.min_grade.rank


_GROUP = re.compile(r"^[a-z0-9_]{1,40}$")


class PageGroup(Points):
    """Pages of the website that mean the same interest (pricing, product, case studies).

    ``paths`` are shell-style patterns on the URL's path (``*/pricing``, where ``*`` also
    matches ``/``, so the site may live under any base path); the first group
    whose pattern matches is the page's. ``high_intent``: a lead already with sales who
    comes back to such a page is reported to sales (``revisit``).
    """

    paths: tuple[str, ...] = Field(min_length=1)
    high_intent: bool = False

    @field_validator("paths")
    @classmethod
    def _absolute(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if not path.startswith(("/", "*/")):
                raise ValueError(f"a page pattern starts with / or */: {path!r}")
        return paths


class PageRules(_Content):
    """Which website pages score, how much, and which are not tracked at all."""

    # A page read for less than this earns no points (it is still on the timeline).
    min_seconds: int = Field(default=10, ge=0, le=3600)
    groups: dict[str, PageGroup] = Field(default_factory=dict)
    # Pages never recorded (careers, the privacy policy): matched before the groups.
    ignore: tuple[str, ...] = ()

    @field_validator("groups")
    @classmethod
    def _names(cls, groups: dict[str, PageGroup]) -> dict[str, PageGroup]:
        for name in groups:
            if not _GROUP.match(name):
                raise ValueError(f"page group {name!r}: lowercase letters, digits and _ only")
        return groups

    def ignored(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.ignore)

    def group_of(self, path: str) -> str | None:
        """The page group of a URL path (None: a page of no group, scored nothing)."""
        for name, group in self.groups.items():
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in group.paths):
                return name
        return None

    def high_intent(self, group: str | None) -> bool:
        return group is not None and group in self.groups and self.groups[group].high_intent


class ScoringRules(_Content):
    half_life_days: float = Field(gt=0)
    behaviour: dict[Signal, Points]
    # Extra points for a click on a link tagged ``link:<name>`` in a template.
    link_tags: dict[str, Points] = Field(default_factory=dict)
    # Website pages read (the tracking snippet): groups, points, caps, pages ignored.
    pages: PageRules = PageRules()
    fit: FitRules
    hot: Threshold
    warm: Threshold
    qualification: Threshold
    # Form posts that make a lead an MQL at once, whatever its score.
    high_intent: tuple[FormType, ...] = (FormType.INQUIRY, FormType.TRIAL)

    @property
    def half_life(self) -> timedelta:
        return timedelta(days=self.half_life_days)

    # -- behaviour score ------------------------------------------------------------------

    def weight(self, at: datetime) -> Decimal:
        exponent = Decimal((at - EPOCH).total_seconds()) / Decimal(self.half_life.total_seconds())
        return _CONTEXT.power(Decimal(2), exponent)

    def units(self, points: int, at: datetime) -> Decimal:
        return _CONTEXT.multiply(Decimal(points), self.weight(at))

    def score(self, units: Decimal, at: datetime) -> float:
        """The decayed score at ``at`` of the stored units, to one decimal."""
        return round(float(_CONTEXT.divide(units, self.weight(at))), 1)

    # -- fit grade ------------------------------------------------------------------------

    def fit_points(self, lead: Lead) -> list[tuple[str, int]]:
        """The fit rules the profile meets, with their points (the grade's reasons)."""
        reasons: list[tuple[str, int]] = []
        if lead.industry and lead.industry in self.fit.industries:
            reasons.append((f"industry:{lead.industry}", self.fit.industries[lead.industry]))
        if lead.company_size and lead.company_size in self.fit.company_sizes:
            points = self.fit.company_sizes[lead.company_size]
            reasons.append((f"company_size:{lead.company_size}", points))
        title = nfkc(lead.job_title or "")
        for rule in self.fit.job_titles:
            keyword = rule.matched(title)
            if keyword:
                reasons.append((f"job_title:{keyword}", rule.points))
                break
        return reasons

    def grade(self, lead: Lead) -> Grade:
        return self._grade_of(self.fit_points(lead))

    def _grade_of(self, fit: Sequence[tuple[str, int]]) -> Grade:
        total = sum(points for _, points in fit)
        for grade in (Grade.A, Grade.B, Grade.C):
            if total >= self.fit.grades[grade]:
                return grade
        return Grade.D

    def evaluate(self, lead: Lead, at: datetime) -> LeadScore:
        fit = tuple(self.fit_points(lead))
        return LeadScore(score=self.score(lead.score_units, at), grade=self._grade_of(fit), fit=fit)

    # -- segments -------------------------------------------------------------------------

    def temperature(self, score: float, grade: Grade) -> Temperature:
        if self.hot.met(score, grade):
            return Temperature.HOT
        if self.warm.met(score, grade):
            return Temperature.WARM
        return Temperature.COLD

    def qualifies(self, score: float, grade: Grade) -> bool:
        return self.qualification.met(score, grade)

    def points_for(self, signal: Signal, link_tags: Iterable[str] = ()) -> list[tuple[str, Points]]:
        """The rules an event meets: its signal, plus tagged links for a click, or the
        page group (passed as the tag) for a page view."""
        rules: list[tuple[str, Points]] = []
        if signal is Signal.PAGE_VIEW:
            groups = self.pages.groups
            return [(f"page:{g}", groups[g]) for g in link_tags if g in groups]
        if signal in self.behaviour:
            rules.append((signal.value, self.behaviour[signal]))
        if signal is Signal.CLICK:
            rules.extend((f"link:{t}", self.link_tags[t]) for t in link_tags if t in self.link_tags)
        return rules


def _title_has(title: str, keyword: str) -> bool:
    """Japanese keywords match inside the title (営業部長); English ones as whole words,
    so CTO is not found in Director nor COO in Coordinator."""
    if keyword.isascii():
        return re.search(rf"\b{re.escape(keyword)}\b", title, re.IGNORECASE) is not None
    return keyword.casefold() in title.casefold()


def load_scoring(path: Path = SCORING_FILE) -> ScoringRules:
    try:
        return ScoringRules.model_validate(read_yaml(path))
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc

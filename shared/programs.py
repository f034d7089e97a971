"""Nurture programs as content: which program serves which segment.

Programs are YAML files under ``shared/content/programs``; marketers edit them and
the tests validate them. This module decides enrolment; the program engine that
walks the steps builds on the same models.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from shared.leads import FormType, Lead, Stage

CONTENT_DIR = Path(__file__).parent / "content"
PROGRAMS_DIR = CONTENT_DIR / "programs"


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntryRule(_Content):
    """Which leads a program serves; an empty list means "any"."""

    stages: tuple[Stage, ...] = (Stage.LEAD,)
    form_types: tuple[FormType, ...] = ()
    industries: tuple[str, ...] = ()
    company_sizes: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()

    def matches(self, lead: Lead, form_type: FormType | None) -> bool:
        def allowed(rule: Sequence[object], value: object) -> bool:
            return not rule or value in rule

        return (
            allowed(self.stages, lead.stage)
            and allowed(self.form_types, form_type)
            and allowed(self.industries, lead.industry)
            and allowed(self.company_sizes, lead.company_size)
            and allowed(self.locales, lead.locale)
            and (not self.interests or bool(set(self.interests) & set(lead.interests)))
        )


class Program(_Content):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    description: str = ""
    # Lower runs first when several programs' entry rules match the same lead.
    priority: int = 100
    entry: EntryRule


class ProgramCatalog:
    def __init__(self, programs: Iterable[Program]) -> None:
        self.programs = tuple(sorted(programs, key=lambda p: (p.priority, p.id)))

    def get(self, program_id: str) -> Program | None:
        return next((p for p in self.programs if p.id == program_id), None)

    def program_for(self, lead: Lead, form_type: FormType | None = None) -> Program | None:
        """The default program for the lead's segment, or None if none serves it."""
        return next((p for p in self.programs if p.entry.matches(lead, form_type)), None)


def load_programs(directory: Path = PROGRAMS_DIR) -> ProgramCatalog:
    programs = []
    for path in sorted(directory.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        programs.append(Program.model_validate(document))
    ids = [p.id for p in programs]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate program ids: {sorted(duplicates)}")
    return ProgramCatalog(programs)

"""Program entry rules can target the temperature segment (hot/warm/cold)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.leads import FormType, Lead
from shared.domain.programs import EntryRule, Program, ProgramCatalog
from shared.domain.scoring import Temperature
from tests.builders import a_lead

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def lead() -> Lead:
    return a_lead(at=T0, lead_id="a" * 32, email="a@example.co.jp")


def program(program_id: str, priority: int, temperatures: list[str]) -> Program:
    return Program.model_validate(
        {
            "id": program_id,
            "name": program_id,
            "priority": priority,
            "entry": {"stages": ["lead"], "temperatures": temperatures},
            "steps": [
                {
                    "id": "first",
                    "template": "welcome",
                    "content_type": "welcome",
                    "subject": {"ja": ["件名"], "en": ["Subject"]},
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [(Temperature.HOT, True), (Temperature.WARM, False), (None, False)],
)
def test_a_temperature_rule_matches_only_that_segment(
    temperature: Temperature | None, expected: bool
) -> None:
    rule = EntryRule(temperatures=(Temperature.HOT,))

    assert rule.matches(lead(), FormType.DOWNLOAD, temperature) is expected


@pytest.mark.parametrize(
    ("temperature", "chosen"),
    [(Temperature.HOT, "hot_fast_track"), (Temperature.COLD, "general")],
)
def test_hot_leads_get_their_own_program_and_others_the_general_one(
    temperature: Temperature, chosen: str
) -> None:
    catalog = ProgramCatalog([program("general", 50, []), program("hot_fast_track", 10, ["hot"])])

    found = catalog.program_for(lead(), FormType.DOWNLOAD, temperature)

    assert found is not None
    assert found.id == chosen


def test_an_unknown_temperature_in_a_program_file_is_rejected() -> None:
    with pytest.raises(ValueError, match="temperatures"):
        program("broken", 10, ["lukewarm"])


# -- website page groups -------------------------------------------------------------------


def test_an_entry_rule_on_page_groups_needs_any_one_of_them_read() -> None:
    rule = EntryRule(pages=("pricing", "case_study"))
    reader = lead().model_copy(update={"page_groups": ("product", "case_study")})
    assert rule.matches(reader, FormType.DOWNLOAD)
    assert not rule.matches(reader.model_copy(update={"page_groups": ("product",)}), None)
    assert not rule.matches(lead(), FormType.DOWNLOAD)  # nothing read yet


def test_a_step_is_skipped_or_kept_by_the_pages_read() -> None:
    from shared.domain.nurture import skip_reason
    from shared.domain.programs import Step

    step = Step.model_validate(
        {
            "id": "pricing_offer",
            "template": "free_trial",
            "content_type": "free_trial",
            "subject": {"ja": ["件名"], "en": ["Subject"]},
            "skip_if": {"pages": ["pricing"]},
        }
    )
    priced = lead().model_copy(update={"page_groups": ("pricing",)})
    assert skip_reason(priced, step) == "skip_if:page:pricing"
    assert skip_reason(lead(), step) is None
    keep = step.model_copy(update={"skip_if": None, "only_if": step.skip_if})
    assert skip_reason(lead(), keep) == "only_if:page"
    assert skip_reason(priced, keep) is None


def test_a_program_names_its_page_groups_for_validation() -> None:
    named = Program.model_validate(
        {
            "id": "p",
            "name": "p",
            "entry": {"stages": ["lead"], "pages": ["pricing"]},
            "steps": [
                {
                    "id": "first",
                    "template": "welcome",
                    "content_type": "welcome",
                    "subject": {"ja": ["件名"], "en": ["Subject"]},
                    "only_if": {"pages": ["case_study"]},
                }
            ],
        }
    )
    assert named.page_groups() == {"pricing", "case_study"}


def test_the_shipped_programs_name_only_page_groups_the_scoring_rules_define() -> None:
    from shared.domain.programs import load_programs
    from shared.domain.scoring import load_scoring

    groups = set(load_scoring().pages.groups)
    for shipped in load_programs().programs:
        assert shipped.page_groups() <= groups, shipped.id

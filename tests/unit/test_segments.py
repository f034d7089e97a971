"""Program entry rules can target the temperature segment (hot/warm/cold)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.leads import FormType, Lead, Touch
from shared.programs import EntryRule, Program, ProgramCatalog
from shared.scoring import Temperature

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def lead() -> Lead:
    touch = Touch(at=T0, form_type=FormType.DOWNLOAD)
    return Lead(
        lead_id="a" * 32,
        email="a@example.co.jp",
        first_touch=touch,
        last_touch=touch,
        created_at=T0,
        updated_at=T0,
    )


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

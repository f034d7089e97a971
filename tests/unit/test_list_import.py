"""What of a list row is left out and what refuses it (shared.services.list_import.parse_row)."""

from __future__ import annotations

import pytest

from shared.domain.leads import FormType
from shared.services.list_import import ImportOptions, parse_row, row_fields
from shared.web.submission import InvalidSubmission

OPTIONS = ImportOptions(form_type=FormType.CONTACT, source="expo-2026")


def row(**cells: str) -> dict[str, list[str]]:
    fields = {"email": ["taro@example.co.jp"], **{k: [v] for k, v in cells.items()}}
    return row_fields(fields, OPTIONS, "import:cards.csv")


def refusal(fields: dict[str, list[str]]) -> dict[str, str]:
    with pytest.raises(InvalidSubmission) as caught:
        parse_row(fields, OPTIONS)
    return {e.field: e.code for e in caught.value.errors}


def test_a_field_that_cannot_be_read_is_left_out_and_said() -> None:
    submission, dropped = parse_row(row(phone="TELなし", postcode="810-00", company="A社"), OPTIONS)

    assert (submission.phone, submission.postcode, submission.company) == (None, None, "A社")
    assert {e.field: e.code for e in dropped} == {
        "phone": "invalid_phone",
        "postcode": "invalid_postcode",
    }


@pytest.mark.parametrize(
    ("cells", "refused"),
    [
        pytest.param({"company": "<b>A社</b>"}, {"company": "markup"}, id="markup in text"),
        pytest.param({"phone": "<script>1</script>"}, {"phone": "markup"}, id="markup as phone"),
        pytest.param({"phone": "03\u202e1234"}, {"phone": "control_char"}, id="bidi override"),
        pytest.param({"touched_at": "＜img src=x＞"}, {"touched_at": "markup"}, id="full-width"),
    ],
)
def test_markup_or_control_characters_in_any_field_refuse_the_row(
    cells: dict[str, str], refused: dict[str, str]
) -> None:
    assert refusal(row(**cells)) == refused


def test_what_the_options_say_of_every_row_is_essential() -> None:
    fields = row()
    fields["source"] = ["x" * 101]  # --source longer than a source may be

    assert refusal(fields) == {"source": "too_long"}

"""Every kind of form post is a scoring signal with a rule in the shipped scoring file."""

from __future__ import annotations

import pytest

from shared.domain.leads import FormType
from shared.domain.scoring import FORM_SIGNALS, Signal, load_scoring


@pytest.mark.parametrize("form_type", list(FormType))
def test_each_form_type_scores_by_its_own_rule(form_type: FormType) -> None:
    rules = load_scoring()

    signal = FORM_SIGNALS[form_type]

    assert signal.value == form_type.value
    assert signal in rules.behaviour


def test_attending_a_seminar_counts_more_than_registering() -> None:
    rules = load_scoring()

    attended = rules.behaviour[Signal.SEMINAR_ATTENDANCE].points
    registered = rules.behaviour[Signal.SEMINAR_REGISTRATION].points

    assert attended > registered > 0

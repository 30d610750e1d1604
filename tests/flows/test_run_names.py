"""Which run names are Prefect's own (replaced by the campaign's) and which a person typed (kept)."""

from __future__ import annotations

import pytest

from flows.campaign import looks_generated


@pytest.mark.parametrize("name", ["omicron-komchen-vector", "epsilon2-jerido-kiwi", "lambdaq7-kabah-river"])
def test_the_ui_forms_prefilled_names_are_generated(name: str) -> None:
    assert looks_generated(name)


def test_prefects_own_two_word_names_are_generated() -> None:
    assert looks_generated("crafty-gecko")


@pytest.mark.parametrize("name", ["oer screening, week 2", "oer-week-2", "ada's rerun", "campaign-oer", "nightly"])
def test_typed_names_are_kept(name: str) -> None:
    assert not looks_generated(name)

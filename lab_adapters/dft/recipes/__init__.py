"""Calculation recipes: GPAW (runs here), Quantum ESPRESSO and VASP (inputs and parsers)."""

from __future__ import annotations

from lab_adapters.dft.recipes.base import PreparedJob, Recipe
from lab_adapters.dft.recipes.gpaw import GPAWRecipe
from lab_adapters.dft.recipes.qe import QERecipe
from lab_adapters.dft.recipes.vasp import VASPRecipe

RECIPES: dict[str, Recipe] = {"gpaw": GPAWRecipe(), "qe": QERecipe(), "vasp": VASPRecipe()}


def get_recipe(code: str) -> Recipe:
    try:
        return RECIPES[code]
    except KeyError:
        raise ValueError(f"unknown DFT code {code!r}; known: {sorted(RECIPES)}") from None


__all__ = ["GPAWRecipe", "PreparedJob", "QERecipe", "RECIPES", "Recipe", "VASPRecipe", "get_recipe"]

"""Hand-made crystals for the crystal tests."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

DATA = Path(__file__).parent / "data"
REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "agent" / "templates"


def make_perovskite(a: str = "Sr", b: str = "Ti", x: str = "O", lattice: float = 3.9) -> Structure:
    """Cubic ABX3: A at the corner, B at the body centre, X on the face centres."""
    return Structure(
        Lattice.cubic(lattice),
        [a, b, x, x, x],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


@pytest.fixture
def perovskite() -> Callable[..., Structure]:
    return make_perovskite


@pytest.fixture(autouse=True)
def _quiet_pymatgen() -> None:
    warnings.filterwarnings("ignore", module="pymatgen")
    warnings.filterwarnings("ignore", module="spglib")

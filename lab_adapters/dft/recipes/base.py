"""What a calculation recipe is: inputs and a command for one job directory.

Every recipe's job leaves ``result.json`` in its directory, in one schema
(:data:`RESULT_KEYS`), so the adapters read results the same way for every code:
``status`` ("ok" or "failed"), ``failure`` (a kind from :mod:`lab_adapters.dft.failures`
when failed), ``message``, ``energy`` (eV per cell), ``natoms``, ``formula``,
``band_gap`` (eV or null), ``references`` (element -> eV/atom, when the job computed
them) and ``final_structure`` (plain atoms, after a relaxation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pymatgen.core import Structure

from lab_adapters.dft.settings import RecipeSettings

RESULT_KEYS = ("status", "failure", "message", "energy", "natoms", "formula", "band_gap", "references",
               "final_structure")


@dataclass(frozen=True)
class PreparedJob:
    """The files of one attempt directory and the shell lines that run it (in that directory)."""

    files: dict[str, str]
    command: str


class Recipe(Protocol):
    """Turns a structure and settings into a runnable job directory."""

    code: str
    #: the code's own default density-mixing factor (what a retry makes smaller)
    default_mixing_beta: float

    def check(self, structure: Structure, settings: RecipeSettings, properties: list[str]) -> None:
        """Raise ``ValueError`` naming the setting when this job cannot be set up."""
        ...

    def prepare(
        self, structure: Structure, settings: RecipeSettings, properties: list[str], reference_cache: str
    ) -> PreparedJob: ...

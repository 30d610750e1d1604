"""GPAW recipe: plane-wave PAW calculations run by the job script :mod:`gpaw_job` (copied as ``run_gpaw.py``)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pymatgen.core import Structure

from lab_adapters.dft.recipes.base import PreparedJob
from lab_adapters.dft.settings import RecipeSettings
from lab_adapters.dft.structure import plain_atoms, structure_from_dict

JOB_SCRIPT = Path(__file__).with_name("gpaw_job.py")


class GPAWRecipe:
    code = "gpaw"
    default_mixing_beta = 0.05  # GPAW's Mixer default for periodic systems

    def check(self, structure: Structure, settings: RecipeSettings, properties: list[str]) -> None:
        if settings.code != "gpaw":
            raise ValueError(f"GPAW recipe got settings for code {settings.code!r}")
        for element, data in settings.reference_structures.items():
            ref = structure_from_dict(data, where=f"recipe.reference_structures.{element}")
            if {str(e) for e in ref.composition.elements} != {element}:
                raise ValueError(f"recipe.reference_structures.{element} is {ref.composition}, not pure {element}")

    def prepare(
        self, structure: Structure, settings: RecipeSettings, properties: list[str], reference_cache: str
    ) -> PreparedJob:
        job_input = {
            "structure": plain_atoms(structure),
            "settings": settings.model_dump(mode="json"),
            "properties": list(properties),
            "reference_cache": reference_cache,
            "reference_structures": {
                el: plain_atoms(structure_from_dict(d)) for el, d in settings.reference_structures.items()
            },
        }
        files = {
            "job_input.json": json.dumps(job_input, indent=1, sort_keys=True),
            "run_gpaw.py": JOB_SCRIPT.read_text(),
        }
        return PreparedJob(files=files, command=f"{shlex.quote(settings.python)} run_gpaw.py > gpaw.out 2>&1")

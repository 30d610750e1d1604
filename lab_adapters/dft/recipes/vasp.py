"""VASP recipe: POSCAR, INCAR, KPOINTS, and a POTCAR assembled on the cluster from settings; parsed by :mod:`vasp_output`.

POTCARs are licensed and live on the cluster, so the job script concatenates them
from ``potcar_dir/<name>/POTCAR`` in POSCAR's species order instead of shipping them.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pymatgen.core import Structure
from pymatgen.io.vasp import Poscar

from lab_adapters.dft.recipes.base import PreparedJob
from lab_adapters.dft.settings import RecipeSettings
from lab_adapters.dft.structure import kpoint_grid

HERE = Path(__file__).parent
_ISMEAR = {"fermi-dirac": -1, "methfessel-paxton": 1}


class VASPRecipe:
    code = "vasp"
    default_mixing_beta = 0.4  # VASP's AMIX default

    def check(self, structure: Structure, settings: RecipeSettings, properties: list[str]) -> None:
        if not settings.potcar_dir:
            raise ValueError("recipe.potcar_dir is required for code 'vasp' (directory holding <name>/POTCAR)")
        if settings.smearing.kind not in _ISMEAR:
            raise ValueError(
                f"recipe.smearing.kind {settings.smearing.kind!r} has no VASP ISMEAR; use {sorted(_ISMEAR)}"
            )
        elements = sorted({site.specie.symbol for site in structure})
        if "formation_energy" in properties:
            lacking = [e for e in elements if e not in settings.reference_energies]
            if lacking:
                raise ValueError(
                    f"formation_energy with code 'vasp' needs recipe.reference_energies for {lacking} "
                    "(eV/atom, computed with these same settings)"
                )

    def incar(self, structure: Structure, settings: RecipeSettings) -> str:
        tags: dict[str, object] = {
            "SYSTEM": structure.composition.reduced_formula,
            "PREC": "Accurate",
            "ENCUT": f"{settings.ecut:g}",
            "ISMEAR": _ISMEAR[settings.smearing.kind],
            "SIGMA": f"{settings.smearing.width:g}",
            "EDIFF": f"{settings.scf_energy_tolerance:g}",
            "NELM": settings.max_scf_iterations,
            "AMIX": f"{settings.mixing_beta or self.default_mixing_beta:g}",
            "ISPIN": 2 if settings.spin else 1,
            "LWAVE": ".FALSE.",
            "LCHARG": ".FALSE.",
        }
        if settings.xc.upper() != "PBE":
            tags["GGA"] = settings.xc
        if settings.spin:
            tags["MAGMOM"] = f"{len(structure)}*1.0"
        if settings.task == "relax":
            tags.update(IBRION=2, NSW=settings.max_relax_steps, ISIF=3 if settings.relax_cell else 2,
                        EDIFFG=f"{-settings.fmax:g}")
        else:
            tags.update(IBRION=-1, NSW=0)
        return "\n".join(f"{k} = {v}" for k, v in tags.items()) + "\n"

    def kpoints(self, structure: Structure, settings: RecipeSettings) -> str:
        kx, ky, kz = kpoint_grid(structure.lattice, settings.kpoint_density)
        return f"Gamma-centred grid (matloop, density {settings.kpoint_density:g}/Å⁻¹)\n0\nGamma\n{kx} {ky} {kz}\n0 0 0\n"

    def potcar_script(self, structure: Structure, settings: RecipeSettings) -> str:
        poscar = Poscar(structure)
        paths = [f"{settings.potcar_dir}/{settings.potcars.get(el, el)}/POTCAR" for el in poscar.site_symbols]
        return "cat " + " ".join(shlex.quote(p) for p in paths) + " > POTCAR"

    def prepare(
        self, structure: Structure, settings: RecipeSettings, properties: list[str], reference_cache: str
    ) -> PreparedJob:
        structure = structure.get_sorted_structure()
        files = {
            "POSCAR": Poscar(structure).get_str(significant_figures=10),
            "INCAR": self.incar(structure, settings),
            "KPOINTS": self.kpoints(structure, settings),
            "parse_output.py": (HERE / "vasp_output.py").read_text(),
            "bandgap.py": (HERE / "bandgap.py").read_text(),
        }
        nsw = settings.max_relax_steps if settings.task == "relax" else 0
        vasp = settings.command or "vasp_std"
        command = (
            f"{self.potcar_script(structure, settings)} || exit 2\n"
            f"{vasp} > vasp.out 2> vasp.err; python3 parse_output.py OUTCAR {nsw}"
        )
        return PreparedJob(files=files, command=command)

"""Quantum ESPRESSO recipe: a ``pw.x`` input with pseudopotentials from settings; parsed by :mod:`qe_output`."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Element, Structure

from lab_adapters.dft.recipes.base import PreparedJob
from lab_adapters.dft.settings import RecipeSettings
from lab_adapters.dft.structure import kpoint_grid

RY = 13.605693122994  # eV
BOHR = 0.529177210903  # Å
_SMEARING = {"fermi-dirac": "fermi-dirac", "marzari-vanderbilt": "marzari-vanderbilt",
             "methfessel-paxton": "methfessel-paxton"}
HERE = Path(__file__).parent


def _q(text: str) -> str:
    return "'" + text.replace("'", "") + "'"


class QERecipe:
    code = "qe"
    default_mixing_beta = 0.7  # pw.x default

    def check(self, structure: Structure, settings: RecipeSettings, properties: list[str]) -> None:
        elements = sorted({site.specie.symbol for site in structure})
        if not settings.pseudo_dir:
            raise ValueError("recipe.pseudo_dir is required for code 'qe' (the directory of the UPF files)")
        missing = [e for e in elements if e not in settings.pseudopotentials]
        if missing:
            raise ValueError(f"recipe.pseudopotentials has no UPF file for {missing} (element -> file name)")
        if "formation_energy" in properties:
            lacking = [e for e in elements if e not in settings.reference_energies]
            if lacking:
                raise ValueError(
                    f"formation_energy with code 'qe' needs recipe.reference_energies for {lacking} "
                    "(eV/atom, computed with these same settings)"
                )

    def pw_input(self, structure: Structure, settings: RecipeSettings) -> str:
        """The ``pw.x`` input file (Rydberg units where QE wants them)."""
        species = sorted({site.specie.symbol for site in structure})
        relax = settings.task == "relax"
        calculation = ("vc-relax" if settings.relax_cell else "relax") if relax else "scf"
        control = [
            f"  calculation = {_q(calculation)}",
            "  prefix = 'matloop'",
            "  outdir = './tmp'",
            f"  pseudo_dir = {_q(settings.pseudo_dir or '.')}",
            "  tprnfor = .true.",
            "  tstress = .true.",
        ]
        if relax:
            control += [
                f"  nstep = {settings.max_relax_steps}",
                f"  forc_conv_thr = {settings.fmax / (RY / BOHR):.6e}",
            ]
        system = [
            "  ibrav = 0",
            f"  nat = {len(structure)}",
            f"  ntyp = {len(species)}",
            f"  ecutwfc = {settings.ecut / RY:.6f}",
            "  occupations = 'smearing'",
            f"  smearing = {_q(_SMEARING[settings.smearing.kind])}",
            f"  degauss = {settings.smearing.width / RY:.6e}",
        ]
        if settings.xc.upper() != "PBE":
            system.append(f"  input_dft = {_q(settings.xc)}")
        if settings.spin:
            system.append("  nspin = 2")
            system += [f"  starting_magnetization({i + 1}) = 0.5" for i in range(len(species))]
        electrons = [
            f"  conv_thr = {settings.scf_energy_tolerance / RY:.6e}",
            f"  electron_maxstep = {settings.max_scf_iterations}",
            f"  mixing_beta = {settings.mixing_beta or self.default_mixing_beta}",
        ]
        lines = ["&CONTROL", *control, "/", "&SYSTEM", *system, "/", "&ELECTRONS", *electrons, "/"]
        if relax:
            lines += ["&IONS", "/"]
            if settings.relax_cell:
                lines += ["&CELL", "  cell_dofree = 'all'", "/"]
        lines.append("ATOMIC_SPECIES")
        for el in species:
            mass = float(Element(el).atomic_mass)
            lines.append(f"  {el} {mass:.4f} {settings.pseudopotentials[el]}")
        lines.append("CELL_PARAMETERS angstrom")
        lines += [f"  {a:.10f} {b:.10f} {c:.10f}" for a, b, c in structure.lattice.matrix]
        lines.append("ATOMIC_POSITIONS crystal")
        lines += [f"  {site.specie.symbol} {x:.10f} {y:.10f} {z:.10f}" for site in structure
                  for x, y, z in [site.frac_coords]]
        kx, ky, kz = kpoint_grid(structure.lattice, settings.kpoint_density)
        lines += ["K_POINTS automatic", f"  {kx} {ky} {kz} 0 0 0", ""]
        return "\n".join(lines)

    def prepare(
        self, structure: Structure, settings: RecipeSettings, properties: list[str], reference_cache: str
    ) -> PreparedJob:
        files = {
            "pw.in": self.pw_input(structure, settings),
            "parse_output.py": (HERE / "qe_output.py").read_text(),
            "bandgap.py": (HERE / "bandgap.py").read_text(),
        }
        pw = settings.command or "pw.x"
        command = f"{pw} -in pw.in > pw.out 2> pw.err; python3 parse_output.py pw.out"
        return PreparedJob(files=files, command=command)

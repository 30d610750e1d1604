"""GPAW job script: copied into each job directory as ``run_gpaw.py`` and run there.

It runs on the compute node with the Python that has GPAW (Debian's
``/usr/bin/python3``), so it uses only the standard library, ASE and GPAW; never
import matloop here.  Input: ``job_input.json``; output: ``result.json`` (schema in
``lab_adapters/dft/recipes/base.py``).  Exit status 0 when the result is usable, 3
when the calculation failed (the reason is in ``result.json``).

Elemental references (for formation energies) are computed with exactly the
job's settings and cached per settings hash in a shared directory; a lock per
element makes concurrent jobs wait for, rather than repeat, the same reference.
"""

import fcntl
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

MOLECULAR = {"H", "N", "O", "F", "Cl"}  # elements whose standard state is a diatomic gas
BULK_LATTICES = {"fcc", "bcc", "hcp", "diamond", "sc"}


def write_json(path, data):
    tmp = Path(f"{path}.{os.getpid()}.tmp")  # per process: concurrent writers never share a temporary file
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def kpoint_grid(cell, density):
    """Same formula as lab_adapters.dft.structure.kpoint_grid: n = max(1, ceil(2π|b|·density))."""
    recip = cell.reciprocal()
    return [max(1, math.ceil(2 * math.pi * float((b**2).sum()) ** 0.5 * density - 1e-9)) for b in recip]


def make_atoms(plain):
    from ase import Atoms

    return Atoms(plain["symbols"], cell=plain["cell"], positions=plain["positions"], pbc=plain["pbc"])


def plain(atoms):
    return {
        "symbols": atoms.get_chemical_symbols(),
        "cell": atoms.cell.array.tolist(),
        "positions": atoms.positions.tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
    }


def calculator(s, kpts, txt):
    from gpaw import GPAW, PW, Mixer, MixerSum

    kwargs = dict(
        mode=PW(s["ecut"]),
        xc=s["xc"],
        kpts={"size": kpts, "gamma": True},
        occupations={"name": s["smearing"]["kind"], "width": s["smearing"]["width"]},
        nbands=-int(s["empty_bands"]) if s["empty_bands"] else None,
        convergence={"energy": s["scf_energy_tolerance"]},
        maxiter=s["max_scf_iterations"],
        setups=s["gpaw_setups"],
        spinpol=bool(s["spin"]),
        txt=txt,
    )
    if s.get("mixing_beta"):
        kwargs["mixer"] = (MixerSum if s["spin"] else Mixer)(beta=s["mixing_beta"], nmaxold=5, weight=50.0)
    return GPAW(**kwargs)


def run_calculation(atoms, s, label, molecule=False):
    """Static or relaxed energy (eV per cell) of ``atoms``; returns (energy, atoms, calc)."""
    kpts = [1, 1, 1] if molecule else kpoint_grid(atoms.cell, s["kpoint_density"])
    if s["spin"]:
        atoms.set_initial_magnetic_moments([1.0] * len(atoms))
    atoms.calc = calculator(s, kpts, f"{label}.txt")
    if s["task"] == "relax":
        from ase.optimize import BFGS

        target = atoms
        if s["relax_cell"] and not molecule:
            from ase.constraints import ExpCellFilter

            target = ExpCellFilter(atoms)
        converged = BFGS(target, logfile=f"{label}.relax.log").run(fmax=s["fmax"], steps=s["max_relax_steps"])
        if not converged:
            raise RelaxNotConverged(f"{label}: relaxation did not reach fmax={s['fmax']} eV/Å "
                                    f"in {s['max_relax_steps']} steps")
    energy = atoms.get_potential_energy()
    return float(energy), atoms, atoms.calc, kpts


class RelaxNotConverged(RuntimeError):
    pass


def reference_atoms(element, custom):
    """The standard-state structure of an element: given, ASE's bulk reference, or a dimer in a box."""
    from ase.build import bulk, molecule
    from ase.data import atomic_numbers, reference_states

    if element in custom:
        return make_atoms(custom[element]), False
    if element in MOLECULAR:
        atoms = molecule(element + "2")
        atoms.center(vacuum=3.5)
        atoms.pbc = True
        return atoms, True
    state = reference_states[atomic_numbers[element]] or {}
    if state.get("symmetry") in BULK_LATTICES:
        return bulk(element), False
    raise ValueError(
        f"no built-in reference structure for {element} (ASE's reference state is "
        f"{state.get('symmetry')!r}); give one in settings.recipe.reference_structures.{element}"
    )


def reference_energy(element, s, cache_dir, custom):
    """eV/atom of ``element`` with settings ``s``; computed once per settings hash, then read from the cache."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{element}.json"
    with open(cache / f"{element}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second job waits here instead of computing it again
        if path.exists():
            return json.loads(path.read_text())
        atoms, is_molecule = reference_atoms(element, custom)
        t0 = time.time()
        energy, atoms, _, kpts = run_calculation(atoms, s, f"ref-{element}", molecule=is_molecule)
        entry = {
            "element": element,
            "energy_per_atom": energy / len(atoms),
            "structure": plain(atoms),
            "molecule": is_molecule,
            "kpts": kpts,
            "settings": s,
            "seconds": round(time.time() - t0, 2),
        }
        write_json(path, entry)
        return entry


def main():
    inp = json.loads(Path("job_input.json").read_text())
    s = inp["settings"]
    props = inp["properties"]
    result = {"status": "ok", "failure": None, "message": ""}
    try:
        import gpaw
        from gpaw import KohnShamConvergenceError

        result["code_version"] = f"gpaw {gpaw.__version__}"
    except Exception as exc:  # GPAW missing on this node is an error of the set-up, not of the material
        result.update(status="failed", failure="error", message=f"cannot import GPAW with {sys.executable}: {exc}")
        write_json("result.json", result)
        return 3
    try:
        atoms = make_atoms(inp["structure"])
        energy, atoms, calc, kpts = run_calculation(atoms, s, "calc")
        result.update(energy=energy, natoms=len(atoms), formula=atoms.get_chemical_formula(), kpts=kpts,
                      final_structure=plain(atoms))
        if "band_gap" in props:
            from ase.dft.bandgap import bandgap

            result["band_gap"] = float(bandgap(calc, output=None)[0])
        if "formation_energy" in props:
            refs = {}
            for element in sorted(set(atoms.get_chemical_symbols())):
                if element in s.get("reference_energies", {}):
                    continue  # given in the settings; the adapter uses that value
                entry = reference_energy(element, s, inp["reference_cache"], inp.get("reference_structures", {}))
                refs[element] = entry["energy_per_atom"]
            result["references"] = refs
    except KohnShamConvergenceError as exc:
        result.update(status="failed", failure="scf_not_converged",
                      message=f"SCF did not converge in {s['max_scf_iterations']} iterations: {exc}")
    except RelaxNotConverged as exc:
        result.update(status="failed", failure="relax_not_converged", message=str(exc))
    except Exception as exc:
        tb = traceback.format_exc(limit=4)
        result.update(status="failed", failure="error", message=f"{type(exc).__name__}: {exc}\n{tb[-1500:]}")
    write_json("result.json", result)
    return 0 if result["status"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())

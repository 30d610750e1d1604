"""Compute the ``xtb_*`` pools: GFN2-xTB HOMO-LUMO gaps of small aromatics, three substituent sites each.

A molecular-design problem of the kind organic-electronics screens run: three substituent sites of a ring, each
one of ten groups (1,000 labellings; a labelling that repeats an earlier one's molecule is left out), and the
property to minimise is the HOMO-LUMO gap. Each molecule is embedded by RDKit (ETKDG, seed 0), relaxed with MMFF94,
then optimised and evaluated with GFN2-xTB (Bannwarth, Ehlert and Grimme, JCTC 2019), xtb's default convergence.
Computed for this repository, so no one had tuned to them. Two scaffolds, registered in ``benchmarks/problems.py``:

- ``benzenes``: 1,2,4-trisubstituted benzenes (874 molecules), held out from tuning;
- ``thiophenes``: 2,3,5-trisubstituted thiophenes (955 molecules), a development problem: the benzenes' kind of
  space (purely categorical) on the side where changes are decided.

Not part of the package or the tests: it needs ``xtb`` (Debian's ``xtb`` 6.5.1) and ``rdkit`` (pip), and takes
about 3 minutes per scaffold on one core::

    apt-get install xtb && pip install rdkit pandas
    OMP_NUM_THREADS=1 python benchmarks/data/make_xtb_gaps.py benzenes benchmarks/data/xtb_benzenes.csv
    OMP_NUM_THREADS=1 python benchmarks/data/make_xtb_gaps.py thiophenes benchmarks/data/xtb_thiophenes.csv
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from rdkit import Chem
from rdkit.Chem import AllChem

#: group name -> SMILES of the group bonded to a ring carbon ("" is hydrogen)
GROUPS = {"H": "", "F": "F", "Cl": "Cl", "CH3": "C", "OH": "O", "NH2": "N", "NO2": "[N+](=O)[O-]", "CN": "C#N",
          "CHO": "C=O", "OCH3": "OC"}
GAP = re.compile(r"HOMO-LUMO GAP\s+(-?[0-9.]+) eV")


def _site(group: str) -> str:
    return f"({GROUPS[group]})" if GROUPS[group] else ""


def benzene(r1: str, r2: str, r4: str) -> str:
    """Benzene with ``r1`` at C1, ``r2`` at C2 and ``r4`` at C4."""
    return Chem.CanonSmiles(f"c1{_site(r1)}c{_site(r2)}cc{_site(r4)}cc1")


def thiophene(r2: str, r3: str, r5: str) -> str:
    """Thiophene with ``r2`` at C2, ``r3`` at C3 and ``r5`` at C5 (the sulfur is atom 1)."""
    return Chem.CanonSmiles(f"s1c{_site(r2)}c{_site(r3)}cc1{_site(r5)}")


#: scaffold -> (its sites' column names, the molecule of one labelling)
SCAFFOLDS: dict[str, tuple[tuple[str, str, str], Callable[[str, str, str], str]]] = {
    "benzenes": (("r1", "r2", "r4"), benzene),
    "thiophenes": (("r2", "r3", "r5"), thiophene),
}


def gap(smi: str) -> float:
    """GFN2-xTB HOMO-LUMO gap (eV) at the xtb-optimised geometry, from an MMFF-relaxed ETKDG embedding."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smi))
    if AllChem.EmbedMolecule(mol, randomSeed=0) != 0:
        raise RuntimeError(f"RDKit could not embed {smi}")
    AllChem.MMFFOptimizeMolecule(mol)
    charge = Chem.GetFormalCharge(mol)
    with tempfile.TemporaryDirectory() as work:
        Chem.MolToXYZFile(mol, f"{work}/m.xyz")
        done = subprocess.run(["xtb", "m.xyz", "--gfn", "2", "--opt", "--chrg", str(charge)], cwd=work,
                              capture_output=True, text=True, timeout=600)
    found = GAP.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"xtb failed on {smi}: {done.stderr.strip()[-200:]}")
    return float(found[-1])


def main(scaffold: str, out: str) -> int:
    if scaffold not in SCAFFOLDS:
        print(f"unknown scaffold {scaffold!r}: expected one of {sorted(SCAFFOLDS)}", file=sys.stderr)
        return 2
    sites, molecule = SCAFFOLDS[scaffold]
    rows, seen = [], set()
    combos = list(itertools.product(GROUPS, repeat=3))
    for i, labels in enumerate(combos):
        smi = molecule(*labels)
        if smi in seen:  # the same molecule by another labelling of the sites (e.g. one F at C1 or at C4)
            continue
        seen.add(smi)
        rows.append({**dict(zip(sites, labels, strict=True)), "smiles": smi, "gap_ev": gap(smi)})
        if i % 50 == 0:
            print(f"{i}/{len(combos)} {smi} {rows[-1]['gap_ev']:.4f}", flush=True)
    pd.DataFrame(rows).to_csv(Path(out), index=False, float_format="%.6f")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1], sys.argv[2]))

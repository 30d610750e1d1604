"""Cubic ABX3 perovskites (perov5: Castelli et al. 2012 via CDVAE): crystal structure → DFT values.

A candidate structure that matches a crystal of the data (pymatgen
``StructureMatcher``, tolerant to volume and to the small distortions of the
DFT-relaxed cells) returns that crystal's DFT heat of formation and band gaps;
anything else fails as out of domain, naming its formula and why.  This is a
lookup-table lab: nothing is invented for structures the data do not cover.

It imports only shared types and third-party libraries (DESIGN.md), so the
lookup is written here rather than borrowed from ``generators``.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Step
from matloop.data import dataset_path

DATASET = "perov5/perov5_val.csv"

#: data column -> (property name, units, description)
COLUMNS = {
    "heat_all": ("heat_of_formation", "eV/atom", "DFT heat of formation (Castelli's heat_all)"),
    "heat_ref": ("heat_of_formation_ref", "eV/atom", "heat of formation against fitted references (heat_ref)"),
    "dir_gap": ("dir_gap", "eV", "direct band gap (GLLB-SC)"),
    "ind_gap": ("ind_gap", "eV", "indirect band gap (GLLB-SC)"),
}


class Perov5:
    name = "perov5"
    description = "cubic ABX3 perovskites (perov5 data): crystal structure → DFT heat of formation and band gaps"
    properties = {prop: PropertySpec(units, desc) for prop, units, desc in COLUMNS.values()}
    steps = (Step("DFT relaxation and band structure", "dft_cluster", 4.0),)
    noise = NoiseModel()  # a lookup of computed values: exact, std 0

    def __init__(self) -> None:
        self._path = dataset_path(DATASET)
        frame = pd.read_csv(self._path)
        missing = [c for c in ["cif", "formula", *COLUMNS] if c not in frame.columns]
        if missing:
            raise ValueError(f"{self._path} lacks columns {missing}")
        self._rows: dict[str, list[int]] = defaultdict(list)
        for i, formula in enumerate(frame["formula"]):
            self._rows[Composition(formula).reduced_formula].append(i)
        self._frame = frame
        self._parsed: dict[int, Structure] = {}
        self._matches: dict[str, int | str] = {}  # structure JSON -> row, or the reason it has none
        self._lock = threading.Lock()
        # Loose on purpose: DFT-relaxed cells are distorted versions of the ideal prototype.
        self._matcher = StructureMatcher(
            ltol=0.3, stol=0.6, angle_tol=10, primitive_cell=True, scale=True, attempt_supercell=True
        )

    def _structure_row(self, inputs: Mapping[str, Any]) -> int | str:
        """The matching data row, or a sentence saying why there is none."""
        data = inputs.get("structure")
        if not isinstance(data, Mapping):
            return f"this scenario takes {{'structure': <pymatgen Structure dict>}}, got inputs {sorted(inputs)}"
        key = json.dumps(data, sort_keys=True, default=str)
        with self._lock:
            if key in self._matches:
                return self._matches[key]
        try:
            structure = Structure.from_dict(dict(data))
        except Exception as exc:
            result: int | str = f"input 'structure' is not a readable pymatgen Structure ({type(exc).__name__}: {exc})"
        else:
            result = self._lookup(structure)
        with self._lock:
            self._matches[key] = result
        return result

    def _lookup(self, structure: Structure) -> int | str:
        formula = structure.composition.reduced_formula
        rows = self._rows.get(formula, [])
        if not rows:
            return (f"structure {formula} is outside the perov5 domain: no crystal of that formula among the "
                    f"{len(self._frame)} in {self._path.name}")
        for row in rows:
            if row not in self._parsed:
                self._parsed[row] = Structure.from_str(self._frame.at[row, "cif"], fmt="cif")
            if self._matcher.fit(self._parsed[row], structure):
                return row
        return (f"structure {formula} is outside the perov5 domain: the data hold {len(rows)} crystal(s) of that "
                "formula but none matches it (e.g. A and B sites swapped, or another anion ordering)")

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None:
        result = self._structure_row(inputs)
        return result if isinstance(result, str) else None

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome:
        result = self._structure_row(inputs)
        if isinstance(result, str):
            return Outcome.failed(result)
        row = self._frame.iloc[result]
        values = {}
        for column, (prop, units, _) in COLUMNS.items():
            reading = self.noise.measure(float(row[column]), rng, noise_scale)
            reading.units = units
            values[prop] = reading
        return Outcome(values=values, raw={"source": f"{self._path.name} row {result + 1}",
                                           "material_id": int(row["material_id"]), "formula": str(row["formula"])})

    def info(self) -> dict[str, Any]:
        return {
            "inputs": {"structure": {"type": "structure", "description": "pymatgen Structure.as_dict()"}},
            "crystals": len(self._frame),
            "formulas": len(self._rows),
            "matcher": {"ltol": 0.3, "stol": 0.6, "angle_tol": 10},
        }

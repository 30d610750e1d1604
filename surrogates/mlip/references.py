"""Elemental reference energies computed with the same potential as the candidates.

Formation energies only mean something when compounds and elements are computed
with one potential.  We have no database of elemental ground states offline, so
each element is relaxed from a few simple trial structures (fcc, bcc, hcp,
diamond; a dimer in a box for the molecular elements) and the lowest energy
per atom is kept.  That is a standard shortcut and an approximation (e.g.
alpha-Mn or black P are not tried) — the results are cached on disk per
potential so each element is paid for once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Element, Lattice, Structure

from surrogates.mlip.relax import Relaxer, relax_all

_COVALENT = CovalentRadius.radius
MOLECULAR = frozenset({"H", "N", "O", "F", "Cl", "Br", "I"})


def default_cache_dir() -> Path:
    env = os.environ.get("MATLOOP_MLIP_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("matloop")) / "mlip"


def trial_structures(symbol: str) -> dict[str, Structure]:
    """Starting points for an element's ground state, sized from its atomic radius."""
    el = Element(symbol)
    r = float(el.atomic_radius or el.atomic_radius_calculated or 1.5)
    d = 2 * r  # nearest-neighbour distance
    if symbol in MOLECULAR:
        bond = 2 * _COVALENT.get(symbol, r)  # near the real bond length (O2: 1.32 vs 1.21 Å)
        return {"dimer": Structure(Lattice.cubic(10.0), [symbol, symbol], [[0, 0, 0], [bond / 10.0, 0, 0]],
                                   coords_are_cartesian=False)}
    a_fcc = d * math.sqrt(2)
    return {
        "fcc": Structure(Lattice.cubic(a_fcc), [symbol] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        .get_primitive_structure(),
        "bcc": Structure(Lattice.cubic(2 * d / math.sqrt(3)), [symbol] * 2, [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "hcp": Structure(Lattice.hexagonal(d, 1.633 * d), [symbol] * 2, [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
        "diamond": Structure(Lattice.cubic(4 * d / math.sqrt(3)), [symbol] * 8,
                             [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
                              [0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]])
        .get_primitive_structure(),
    }


class ElementalReferences:
    """Lowest energy per atom of each element under one potential, cached in a JSON file."""

    def __init__(self, relaxer: Relaxer, cache_dir: str | Path | None = None) -> None:
        self.relaxer = relaxer
        self.path = Path(cache_dir or default_cache_dir()) / f"elements-{relaxer.name}.json"
        try:
            self._energies: dict[str, dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._energies = {}

    def energy_per_atom(self, symbol: str) -> float:
        if symbol not in self._energies:
            self._energies[symbol] = self._compute(symbol)
            self._save()
        return float(self._energies[symbol]["energy_per_atom"])

    def _compute(self, symbol: str) -> dict:
        best: dict | None = None
        errors = []
        trials = trial_structures(symbol)
        bulk = [label for label in trials if label != "dimer"]  # cell and positions, relaxed as one batch
        results = dict(zip(bulk, relax_all(self.relaxer, [trials[label] for label in bulk]), strict=True))
        if "dimer" in trials:  # a molecule in a fixed box
            results["dimer"] = self.relaxer.relax(trials["dimer"], relax_cell=False)
        for label, res in results.items():
            if not res.ok:
                errors.append(f"{label}: {res.error}")
                continue
            assert res.energy_per_atom is not None
            if best is None or res.energy_per_atom < best["energy_per_atom"]:
                best = {"energy_per_atom": res.energy_per_atom, "trial": label}
        if best is None:
            raise RuntimeError(f"no reference structure of {symbol} relaxed with {self.relaxer.name}: {errors}")
        return best

    def _save(self) -> None:
        """Write atomically so concurrent campaigns never read half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._energies, indent=1, sort_keys=True))
        tmp.replace(self.path)

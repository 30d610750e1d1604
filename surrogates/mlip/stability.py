"""Formation energy and energy above the hull from MLIP energies, via pymatgen's ``PhaseDiagram``.

The hull is built from the elemental references and every compound relaxed with
the same potential (the batch itself plus any earlier entries the caller keeps),
so it is a *consistent* estimate, not a Materials Project one: with few
competing phases the hull is high and ``e_above_hull`` optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Structure

from surrogates.mlip.references import ElementalReferences


@dataclass(frozen=True)
class StabilityEstimate:
    energy_per_atom: float
    formation_energy_per_atom: float
    e_above_hull: float


def estimate_stability(
    items: Sequence[tuple[Structure, float]],
    references: ElementalReferences,
    competing: Sequence[PDEntry] = (),
) -> list[StabilityEstimate]:
    """For ``(structure, energy_per_atom)`` pairs: formation energy and e_above_hull (eV/atom)."""
    if not items:
        return []
    elements = sorted({el.symbol for s, _ in items for el in s.composition.elements}
                      | {el.symbol for e in competing for el in e.composition.elements})
    entries = [PDEntry(Composition(el), references.energy_per_atom(el)) for el in elements]
    mine = [PDEntry(s.composition, e * s.num_sites) for s, e in items]
    diagram = PhaseDiagram(entries + list(competing) + mine)
    out = []
    for entry, (_, e) in zip(mine, items, strict=True):
        out.append(
            StabilityEstimate(
                energy_per_atom=e,
                formation_energy_per_atom=float(diagram.get_form_energy_per_atom(entry)),
                e_above_hull=float(diagram.get_e_above_hull(entry) or 0.0),
            )
        )
    return out

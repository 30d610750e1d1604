"""Volume rescaling by pymatgen's data-mined lattice scaling (DLS), vectorised per template.

``DLSVolumePredictor`` scales a cell so that its tightest bond matches the
data-mined bond length ``r_A + r_B`` (with an electronegativity-spread
correction).  Called on each of 10,000 decorations it spends most of its time
re-finding the same neighbour pairs, yet every decoration of one template has the
same pairs: only the species on them change.  So the pairs are found once per
template and each decoration costs a few array operations.

Unlike the pymatgen default we do not clip the volume change to [0.5, 1.5] of
the prototype's volume: CsPbI3 really is four times the volume of SrTiO3, and
a cell squeezed by the clip would only fail the distance check later.
"""

from __future__ import annotations

import math

import numpy as np
from pymatgen.analysis.structure_prediction.volume_predictor import bond_params
from pymatgen.core import Element, Structure

from generators.crystal.prototypes import Template

#: Neighbour pairs within this distance (Å, in the prototype cell) are candidate bonds.
CUTOFF = 6.0


class TemplateVolumes:
    """Predicted volumes of decorations of one template (same rule as pymatgen's DLS)."""

    def __init__(self, template: Template) -> None:
        ref = Structure(template.lattice, ["H"] * template.num_sites, template.frac_coords)
        centers, points, _, distances = ref.get_neighbor_list(CUTOFF)
        keep = distances > 1e-8
        self._i, self._j, self._d = centers[keep], points[keep], distances[keep]
        self._volume = float(template.lattice.volume)

    def predict(self, species: list[str]) -> float:
        """Volume (Å^3) of the template decorated with ``species`` (element symbols, in site order)."""
        electronegativity = [_x(s) for s in species]
        std_x = float(np.std(electronegativity))
        radius = np.array([_bond_radius(s, std_x) for s in species])
        ratio = self._d / (radius[self._i] + radius[self._j])
        return self._volume / float(ratio.min()) ** 3


def _x(symbol: str) -> float:
    x = Element(symbol).X
    return 0.0 if math.isnan(x) else float(x)


def _bond_radius(symbol: str, std_x: float) -> float:
    params = bond_params.get(symbol)
    if params is not None:
        return float(params["r"]) + float(params["k"]) * std_x
    return float(Element(symbol).atomic_radius or 1.5)  # DLS falls back to atomic radii too

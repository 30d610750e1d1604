"""Named crystal prototypes and seed structures as decoratable templates.

A template is a structure whose sites are grouped into labelled sublattices
(``A``, ``B``, ``X`` for the named prototypes; the element symbol for a seed CIF).
Decorating a template means choosing what occupies each sublattice.  Each
sublattice also carries its *reference species* (e.g. Sr2+, Ti4+, O2- for the
perovskite), which is what pymatgen's substitution probabilities are measured
against: "how likely is Ba2+ to sit where Sr2+ sits".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from pymatgen.core import Lattice, Species, Structure


@dataclass(frozen=True)
class Template:
    """A structure with labelled sublattices, ready to be decorated."""

    name: str
    lattice: Lattice
    frac_coords: np.ndarray  # (n_sites, 3)
    site_labels: tuple[str, ...]  # sublattice label of each site
    reference_species: dict[str, Species]  # sublattice label -> species it holds in the prototype

    @property
    def labels(self) -> list[str]:
        """Sublattice labels in first-appearance order."""
        return list(dict.fromkeys(self.site_labels))

    def multiplicity(self, label: str) -> int:
        return self.site_labels.count(label)

    @property
    def num_sites(self) -> int:
        return len(self.site_labels)

    def decorate(self, fillings: dict[str, list[str]]) -> Structure:
        """Put ``fillings[label][i]`` on the i-th site of each sublattice (lattice is the prototype's)."""
        cursor = dict.fromkeys(fillings, 0)
        species = []
        for label in self.site_labels:
            species.append(fillings[label][cursor[label]])
            cursor[label] += 1
        return Structure(self.lattice, species, self.frac_coords)


def _from_spacegroup(
    name: str, sg: str, lattice: Lattice, refs: dict[str, str], coords: dict[str, list[float]]
) -> Template:
    """Build the primitive cell of a prototype from its Wyckoff positions, labelling the sublattices."""
    labels = list(refs)
    placeholders = [Species.from_str(refs[lb]) for lb in labels]
    conventional = Structure.from_spacegroup(sg, lattice, placeholders, [coords[lb] for lb in labels])
    primitive = conventional.get_primitive_structure()
    by_species = {str(sp): lb for sp, lb in zip(placeholders, labels, strict=True)}
    order = sorted(range(len(primitive)), key=lambda i: labels.index(by_species[str(primitive[i].specie)]))
    return Template(
        name=name,
        lattice=primitive.lattice,
        frac_coords=np.array([primitive[i].frac_coords for i in order]),
        site_labels=tuple(by_species[str(primitive[i].specie)] for i in order),
        reference_species={lb: sp for lb, sp in zip(labels, placeholders, strict=True)},
    )


def _perovskite() -> Template:
    return _from_spacegroup(
        "perovskite", "Pm-3m", Lattice.cubic(3.9), {"A": "Sr2+", "B": "Ti4+", "X": "O2-"},
        {"A": [0, 0, 0], "B": [0.5, 0.5, 0.5], "X": [0.5, 0.5, 0]},
    )


def _rocksalt() -> Template:
    return _from_spacegroup(
        "rocksalt", "Fm-3m", Lattice.cubic(5.64), {"A": "Na+", "X": "Cl-"}, {"A": [0, 0, 0], "X": [0.5, 0.5, 0.5]}
    )


def _zincblende() -> Template:
    return _from_spacegroup(
        "zincblende", "F-43m", Lattice.cubic(5.41), {"A": "Zn2+", "X": "S2-"},
        {"A": [0, 0, 0], "X": [0.25, 0.25, 0.25]},
    )


def _wurtzite() -> Template:
    return _from_spacegroup(
        "wurtzite", "P6_3mc", Lattice.hexagonal(3.25, 5.21), {"A": "Zn2+", "X": "O2-"},
        {"A": [1 / 3, 2 / 3, 0], "X": [1 / 3, 2 / 3, 0.382]},
    )


def _spinel() -> Template:
    # Fd-3m origin choice 1 (pymatgen's setting): A on 8a, B on 16d, X on 32e.
    return _from_spacegroup(
        "spinel", "Fd-3m", Lattice.cubic(8.08), {"A": "Mg2+", "B": "Al3+", "X": "O2-"},
        {"A": [0, 0, 0], "B": [5 / 8, 5 / 8, 5 / 8], "X": [0.3874, 0.3874, 0.3874]},
    )


def _cesium_chloride() -> Template:
    return _from_spacegroup(
        "cesium_chloride", "Pm-3m", Lattice.cubic(4.12), {"A": "Cs+", "X": "Cl-"},
        {"A": [0, 0, 0], "X": [0.5, 0.5, 0.5]},
    )


PROTOTYPES: dict[str, Callable[[], Template]] = {
    "perovskite": _perovskite,
    "rocksalt": _rocksalt,
    "zincblende": _zincblende,
    "wurtzite": _wurtzite,
    "spinel": _spinel,
    "cesium_chloride": _cesium_chloride,
}


@cache
def named_prototype(name: str) -> Template:
    """The template of a named prototype; unknown names raise ``KeyError`` listing the known ones."""
    try:
        return PROTOTYPES[name]()
    except KeyError:
        raise KeyError(f"unknown prototype {name!r}; known prototypes: {sorted(PROTOTYPES)}") from None


def template_from_structure(name: str, structure: Structure) -> Template:
    """A seed structure as a template: every element's sites form one sublattice labelled by the element.

    The reference species carry the oxidation states pymatgen guesses for the seed
    (falling back to neutral species), so substitution probabilities apply.
    """
    if not structure.is_ordered:
        disordered = next(i for i, site in enumerate(structure) if not site.is_ordered)
        raise ValueError(f"seed {name}: site {disordered + 1} is partially occupied; give an ordered structure")
    guesses = structure.composition.oxi_state_guesses(max_sites=-1)
    oxi = guesses[0] if guesses else {}
    refs: dict[str, Species] = {}
    for site in structure:
        el = site.specie.element.symbol if hasattr(site.specie, "element") else str(site.specie)
        if el not in refs:
            refs[el] = Species(el, int(round(oxi.get(el, 0))))
    labels = tuple(site.specie.element.symbol if hasattr(site.specie, "element") else str(site.specie)
                   for site in structure)
    order = sorted(range(len(structure)), key=lambda i: list(refs).index(labels[i]))
    return Template(
        name=name,
        lattice=structure.lattice,
        frac_coords=np.array([structure[i].frac_coords for i in order]),
        site_labels=tuple(labels[i] for i in order),
        reference_species=refs,
    )

"""Featurizers: from a candidate's content (a point, a composition, a structure) to a double tensor.

The surrogates see only tensors; these classes are the one place that knows how a
design space becomes numbers, so the generator, the controller and the models all
agree on the columns. Every featurizer exposes ``dim`` and ``feature_names`` and a
``transform(list) -> Tensor (n, dim)``; bad input raises ``ValueError`` naming the row.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from matloop.space import (
    CategoricalParameter,
    CompositionSpace,
    CrystalSpace,
    IntegerParameter,
    MicrostructureSpace,
    ParametricSpace,
    SimplexGroup,
)
from matloop.types import Candidate


@runtime_checkable
class Featurizer(Protocol):
    """Anything that turns a list of candidate contents into an ``(n, dim)`` double tensor."""

    dim: int
    feature_names: list[str]

    def transform(self, items: Sequence[Any]) -> Tensor: ...


def _content(item: Any, field: str, index: int) -> Any:
    """A candidate's representation (``params``/``composition``/``structure``), or the item itself."""
    if isinstance(item, Candidate):
        value = getattr(item, field)
        if value is None:
            raise ValueError(f"candidate {index} is a {item.kind.value} candidate and has no {field}")
        return value
    return item


# --------------------------------------------------------------------------- parametric


class ParametricFeaturizer:
    """Points of a :class:`ParametricSpace` → unit-cube numbers, categoricals one-hot or by descriptors.

    Numeric parameters are scaled by their bounds to ``[0, 1]`` so that a GP's
    lengthscale priors (which assume the unit cube) mean the same for every campaign.
    Categoricals become one-hot bits, or — when the campaign gives descriptors — the
    descriptors min-max scaled over the options, so the model can generalise from one
    option to a similar one (the hybrid-perovskite data ships such descriptors).
    ``categorical="auto"`` uses descriptors when a parameter has them and they tell
    every option apart, one-hot otherwise (recorded in ``notes``): descriptors that
    give two options the same vector would make them one candidate to the model.

    A gridded mixture (a simplex group with a ``step``) whose components may be absent also gets one
    *presence* bit per such component (``ni_load>0``), and its fractions become one feature group, its
    presence bits another (``presence=True``, the default). Adding 10 % of an element to a catalyst or an
    alloy changes its chemistry in kind, not by degree; a stationary kernel over the fractions alone sees
    0 → 0.1 as the same small step as 0.5 → 0.6, so it smooths over exactly the compositions where a new
    element makes the difference. With the bits, ``kernel: auto`` sums a kernel over the fractions, one over
    which elements are present, and one over both (see ``surrogates/gp.py``). In the OER plates' pool replay
    matloop then found the isolated best compositions of plates 3851 and 3860 within 150 experiments in 14 and
    15 of 30 runs, against 6 and 8 without the bits (benchmarks/RESULTS-selection.md).
    A group with ``absence_matters: false`` gets no bits: where 0 is just the smallest amount (a blend of
    solvents or of two phases whose property varies smoothly), the bits' kernel terms spend early experiments on
    which components to combine; on a smooth six-part mixture without them matloop needed 17 experiments to the
    best instead of 21 (simplex_hartmann6, q=4, 10 seeds, RESULTS-selection.md's seventh round).
    The bits are not affine in the parameters; that is fine because the loop selects from pools (a Sobol pool
    for continuous parameters), never by gradients over the parameters.
    """

    def __init__(self, space: ParametricSpace, categorical: str = "auto", presence: bool = True) -> None:
        if categorical not in {"auto", "onehot", "descriptors"}:
            raise ValueError(f"categorical={categorical!r}: expected 'auto', 'onehot' or 'descriptors'")
        self.space = space
        self.categorical = categorical
        self.feature_names: list[str] = []
        self.categorical_dims: list[int] = []  # one-hot columns (for a mixed-kernel GP)
        self.feature_groups: list[list[int]] = []  # each parameter's columns (for the GP's additive kernel)
        self.notes: list[str] = []  # encoding decisions a person should know about
        self._encoders: list[tuple[str, Callable[[Any], list[float]]]] = []
        for p in space.parameters:
            if isinstance(p, CategoricalParameter):
                use_descriptors = categorical == "descriptors" or (categorical == "auto" and p.descriptors)
                if use_descriptors and not p.descriptors:
                    raise ValueError(f"parameter {p.name!r} has no descriptors; use categorical='onehot' or 'auto'")
                clash = _indistinct_options(p) if use_descriptors else []
                if clash and categorical == "descriptors":
                    raise ValueError(f"parameter {p.name!r}: options {clash} have identical descriptors")
                if clash:
                    self.notes.append(f"{p.name}: options {clash} have identical descriptors; one-hot used instead")
                    use_descriptors = False
                if use_descriptors:
                    self._add_descriptors(p)
                else:
                    self._add_onehot(p)
            else:
                self._add_numeric(p.name, float(p.bounds[0]), float(p.bounds[1]), isinstance(p, IntegerParameter))
        if presence:
            for group in space.simplex:
                self._add_presence(space, group)
        self.dim = len(self.feature_names)

    def _group(self, start: int) -> None:
        """Record the columns added since ``start`` as one parameter's group."""
        self.feature_groups.append(list(range(start, len(self.feature_names))))

    def _add_presence(self, space: ParametricSpace, group: SimplexGroup) -> None:
        """Presence bits for a gridded mixture's optional components; its fractions become one group."""
        optional = [n for n in group.parameters if float(space.parameter(n).bounds[0]) <= 0.0]
        if group.step is None or not optional or not group.absence_matters:
            # off the grid "absent" is not an exact value; a component that is always there tells nothing; and a
            # campaign that says 0 is just the smallest amount (a smooth blend) pays for the bits without gain
            return
        half_step = group.step / 2
        fractions = [self.feature_names.index(n) for n in group.parameters]
        merged = [g for g in self.feature_groups if not set(g) <= set(fractions)]
        self.feature_groups = sorted([*merged, sorted(fractions)], key=min)
        start = len(self.feature_names)
        for name in optional:
            self.feature_names.append(f"{name}>0")
            self._encoders.append((name, lambda v, half=half_step: [1.0 if float(v) > half else 0.0]))
        self._group(start)

    def _add_numeric(self, name: str, low: float, high: float, integer: bool) -> None:
        span = high - low

        def encode(v: Any) -> list[float]:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{v!r} is not a number")
            x = float(v)
            if not math.isfinite(x):
                raise TypeError(f"{v!r} is not a finite number")
            return [(x - low) / span]

        self.feature_names.append(name)
        self._group(len(self.feature_names) - 1)
        self._encoders.append((name, encode))

    def _add_onehot(self, p: CategoricalParameter) -> None:
        index = {o: i for i, o in enumerate(p.options)}

        def encode(v: Any) -> list[float]:
            if v not in index:
                raise TypeError(f"{v!r} is not one of {p.options}")
            bits = [0.0] * len(index)
            bits[index[v]] = 1.0
            return bits

        start = len(self.feature_names)
        self.feature_names.extend(f"{p.name}={o}" for o in p.options)
        self.categorical_dims.extend(range(start, start + len(p.options)))
        self._group(start)
        self._encoders.append((p.name, encode))

    def _add_descriptors(self, p: CategoricalParameter) -> None:
        assert p.descriptors is not None
        names = sorted(next(iter(p.descriptors.values())))
        raw = np.array([[p.descriptors[o][d] for d in names] for o in p.options], dtype=float)
        low, high = raw.min(axis=0), raw.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        table = {o: list(((raw[i] - low) / span).tolist()) for i, o in enumerate(p.options)}

        def encode(v: Any) -> list[float]:
            if v not in table:
                raise TypeError(f"{v!r} is not one of {p.options}")
            return table[v]

        start = len(self.feature_names)
        self.feature_names.extend(f"{p.name}:{d}" for d in names)
        self._group(start)
        self._encoders.append((p.name, encode))

    def transform(self, points: Sequence[dict[str, Any] | Candidate]) -> Tensor:
        rows: list[list[float]] = []
        for i, item in enumerate(points):
            point = _content(item, "params", i)
            row: list[float] = []
            for name, encode in self._encoders:
                if name not in point:
                    raise ValueError(f"point {i} has no value for parameter {name!r}")
                try:
                    row.extend(encode(point[name]))
                except TypeError as exc:
                    raise ValueError(f"point {i}, parameter {name!r}: {exc}") from None
            rows.append(row)
        return torch.tensor(rows, dtype=torch.double).reshape(len(rows), self.dim)


def _indistinct_options(p: CategoricalParameter) -> list[str]:
    """Options whose descriptor vectors equal another option's (empty when all are distinct)."""
    assert p.descriptors is not None
    seen: dict[tuple[float, ...], str] = {}
    clash: list[str] = []
    for option in p.options:
        key = tuple(float(v) for _, v in sorted(p.descriptors[option].items()))
        if key in seen:
            clash += [o for o in (seen[key], option) if o not in clash]
        seen.setdefault(key, option)
    return clash


# --------------------------------------------------------------------------- compositions

#: Element properties summarised over a composition (Magpie-style, from pymatgen's own tables).
ELEMENT_PROPERTIES = (
    "Z",
    "atomic_mass",
    "electronegativity",
    "atomic_radius",
    "row",
    "group",
    "mendeleev_no",
    "valence_electrons",
)
STATISTICS = ("mean", "std", "min", "max")


def _valence_electrons(el: Any) -> float:
    """Electrons outside the noble-gas core, not counting filled d10/f14 sub-shells."""
    shells = el.full_electronic_structure
    n_max = max(n for n, _, _ in shells)
    total = 0
    for n, orbital, count in shells:
        if n == n_max or (orbital == "d" and n == n_max - 1 and count < 10) or (
            orbital == "f" and n == n_max - 2 and count < 14
        ):
            total += count
    return float(total)


@cache
def element_properties(symbol: str) -> tuple[float, ...]:
    """The :data:`ELEMENT_PROPERTIES` of one element (pymatgen data, no download).

    Noble gases have no Pauling electronegativity and a few elements lack an atomic
    radius; those fall back to 0 and the covalent/van-der-Waals-free estimate
    ``atomic_radius_calculated`` respectively, so every element gives finite numbers.
    """
    from pymatgen.core.periodic_table import Element

    if not Element.is_valid_symbol(symbol):
        raise ValueError(f"unknown element symbol {symbol!r}")
    el = Element(symbol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = float(el.X)
        radius = el.atomic_radius if el.atomic_radius is not None else el.atomic_radius_calculated
    return (
        float(el.Z),
        float(el.atomic_mass),
        x if math.isfinite(x) else 0.0,
        float(radius) if radius is not None else 0.0,
        float(el.row),
        float(el.group),
        float(el.mendeleev_no or 0.0),
        _valence_electrons(el),
    )


def composition_statistics(amounts: dict[str, float]) -> np.ndarray:
    """Fraction-weighted mean and std, and min and max, of each element property."""
    if not amounts:
        raise ValueError("empty composition")
    symbols = list(amounts)
    weights = np.array([float(amounts[s]) for s in symbols])
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"amounts must be finite, non-negative and not all zero: {amounts}")
    present = weights > 0
    weights = weights[present] / weights[present].sum()
    props = np.array([element_properties(s) for s, keep in zip(symbols, present, strict=True) if keep])
    mean = weights @ props
    std = np.sqrt(np.maximum(weights @ (props - mean) ** 2, 0.0))
    return np.concatenate([mean, std, props.min(axis=0), props.max(axis=0)])


class CompositionFeaturizer:
    """Compositions (element → amount) → element-property statistics, plus the number of elements."""

    def __init__(self, space: CompositionSpace | None = None) -> None:
        self.space = space
        self.feature_names = [f"{stat}_{prop}" for stat in STATISTICS for prop in ELEMENT_PROPERTIES]
        self.feature_names.append("n_elements")
        self.dim = len(self.feature_names)

    def transform(self, compositions: Sequence[dict[str, float] | Candidate]) -> Tensor:
        rows = []
        for i, item in enumerate(compositions):
            comp = _content(item, "composition", i)
            try:
                stats = composition_statistics(comp)
            except ValueError as exc:
                raise ValueError(f"composition {i}: {exc}") from None
            rows.append(np.append(stats, float(sum(1 for v in comp.values() if v > 0))))
        return torch.tensor(np.array(rows), dtype=torch.double).reshape(len(rows), self.dim)


# --------------------------------------------------------------------------- structures

STRUCTURE_FEATURES = (
    "density",
    "volume_per_atom",
    "spacegroup_number",
    "packing_fraction",
    "mean_coordination",
    "mean_nn_distance",
    "min_nn_distance",
)


def structure_descriptors(structure: Any, symprec: float = 0.1) -> list[float]:
    """Density, volume per atom, space group, packing fraction and a neighbour-shell coordination.

    Coordination is counted as neighbours within 1.2x each site's nearest-neighbour
    distance: a cheap, parameter-free stand-in for CrystalNN (which costs ~100x more).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    n = len(structure)
    volume = float(structure.volume)
    atom_volume = sum(4.0 / 3.0 * math.pi * element_properties(site.specie.symbol)[3] ** 3 for site in structure)
    try:
        spg = float(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number())
    except Exception:  # spglib gives up on badly distorted cells: P1 is then the honest answer
        spg = 1.0
    cutoff = max(6.0, 2.0 * volume ** (1 / 3) / max(n, 1) ** (1 / 3))
    neighbours = structure.get_all_neighbors(cutoff)
    nn, cn = [], []
    for site_nbrs in neighbours:
        if not site_nbrs:
            continue
        dists = np.array([nb.nn_distance for nb in site_nbrs])
        d0 = float(dists.min())
        nn.append(d0)
        cn.append(float(np.sum(dists <= 1.2 * d0)))
    return [
        float(structure.density),
        volume / n,
        spg,
        atom_volume / volume,
        float(np.mean(cn)) if cn else 0.0,
        float(np.mean(nn)) if nn else cutoff,
        float(np.min(nn)) if nn else cutoff,
    ]


class StructureFeaturizer:
    """Crystal structures (``Structure.as_dict()`` or ``Structure``) → composition + structure features.

    ``embedder``, if given, maps a pymatgen ``Structure`` to a fixed-length vector (for
    example a pretrained MLIP's pooled node features) appended to the features; it is
    a plain callable so this module needs no MLIP import.
    """

    def __init__(
        self,
        space: CrystalSpace | None = None,
        embedder: Callable[[Any], Sequence[float]] | None = None,
        embedding_dim: int = 0,
        symprec: float = 0.1,
    ) -> None:
        if embedder is not None and embedding_dim <= 0:
            raise ValueError("embedding_dim must be given (> 0) with an embedder")
        self.space = space
        self.embedder = embedder
        self.symprec = symprec
        self._composition = CompositionFeaturizer()
        self.feature_names = [*self._composition.feature_names, *STRUCTURE_FEATURES]
        self.feature_names += [f"embedding_{k}" for k in range(embedding_dim if embedder else 0)]
        self.dim = len(self.feature_names)

    def transform(self, structures: Sequence[Any]) -> Tensor:
        from pymatgen.core import Structure

        rows = []
        for i, entry in enumerate(structures):
            item = _content(entry, "structure", i)
            try:
                s = item if isinstance(item, Structure) else Structure.from_dict(item)
            except Exception as exc:
                raise ValueError(f"structure {i} is not a pymatgen Structure dict: {exc}") from None
            amounts = {el.symbol: amt for el, amt in s.composition.element_composition.items()}
            row = list(self._composition.transform([amounts])[0].tolist())
            row += structure_descriptors(s, self.symprec)
            if self.embedder is not None:
                emb = [float(v) for v in self.embedder(s)]
                if len(emb) != self.dim - len(row):
                    raise ValueError(f"structure {i}: embedder gave {len(emb)} numbers, expected {self.dim - len(row)}")
                row += emb
            rows.append(row)
        return torch.tensor(rows, dtype=torch.double).reshape(len(rows), self.dim)


# --------------------------------------------------------------------------- microstructure images

IMAGE_FEATURES = ["volume_fraction", "interface_x", "interface_y", "row_fraction_std", "column_fraction_std"]


class ImageFeaturizer:
    """Two-phase images → a few morphology statistics a GP can model with tens of measurements.

    Volume fraction sets an effective property between the series and parallel bounds;
    interface density along each axis (share of neighbouring pixel pairs that differ)
    measures feature size and anisotropy; the spread of row and column phase fractions
    tells layers along the heat flow from layers across it.  Raw pixels (4096 columns
    for 64×64) would leave a GP with no usable distance after a dozen measurements.
    """

    def __init__(self, space: MicrostructureSpace | None = None) -> None:
        self.space = space
        self.feature_names = list(IMAGE_FEATURES)
        self.dim = len(self.feature_names)

    def transform(self, images: Sequence[Any]) -> Tensor:
        rows = []
        for i, entry in enumerate(images):
            arr = np.asarray(_content(entry, "image", i), dtype=float)
            if arr.ndim != 2 or min(arr.shape) < 2:
                raise ValueError(f"image {i} is not a 2-D array of at least 2×2 pixels (shape {arr.shape})")
            if self.space is not None and arr.shape != (self.space.size, self.space.size):
                raise ValueError(f"image {i} is {arr.shape[0]}×{arr.shape[1]}, the space says {self.space.size}²")
            phase = arr > 0.5
            rows.append([
                float(phase.mean()),
                float((phase[:, 1:] != phase[:, :-1]).mean()),
                float((phase[1:, :] != phase[:-1, :]).mean()),
                float(phase.mean(axis=1).std()),
                float(phase.mean(axis=0).std()),
            ])
        return torch.tensor(rows, dtype=torch.double).reshape(len(rows), self.dim)


def featurizer_for(
    space: ParametricSpace | CompositionSpace | CrystalSpace | MicrostructureSpace, **kwargs: Any
) -> Featurizer:
    """The featurizer that fits a design space's kind."""
    if isinstance(space, ParametricSpace):
        return ParametricFeaturizer(space, **kwargs)
    if isinstance(space, CompositionSpace):
        return CompositionFeaturizer(space)
    if isinstance(space, CrystalSpace):
        return StructureFeaturizer(space, **kwargs)
    if isinstance(space, MicrostructureSpace):
        return ImageFeaturizer(space)
    raise TypeError(f"no featurizer for a space of type {type(space).__name__}")

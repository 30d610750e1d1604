"""Pool generators for parametric spaces: ``grid``, ``sobol`` and ``dataset``.

A pool is the discrete set the acquisition scores.  For a gridded space (the
OER plate's six fractions on a 10 % grid: 3003 points) the honest pool is the
grid itself; for a continuous space a scrambled Sobol sequence that respects
simplex groups and linear constraints; for a campaign whose candidates are a
fixed library, the rows of a CSV file.  Every generator is deterministic in
``context.seed`` so a resumed campaign regenerates the same pool.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from generators.base import GenerationContext, resolve_path
from generators.config import DEFAULT_MAX_GRID
from matloop.space import CategoricalParameter, ContinuousParameter, IntegerParameter, ParametricSpace
from matloop.types import Candidate


class PoolError(ValueError):
    """A pool cannot be built for this space with these settings; the message says why and what to change."""


def _require_parametric(space: Any, generator: str) -> ParametricSpace:
    if not isinstance(space, ParametricSpace):
        kind = getattr(space, "type", type(space).__name__)
        raise PoolError(f"the {generator!r} generator needs a parametric space, not a {kind!r} space")
    return space


def _levels(param: ContinuousParameter | IntegerParameter | CategoricalParameter, levels: int | None) -> list[Any]:
    """The values one free (non-simplex) parameter takes on the grid."""
    if isinstance(param, CategoricalParameter):
        return list(param.options)
    low, high = param.bounds
    if isinstance(param, IntegerParameter):
        return list(range(int(low), int(high) + 1))
    if param.step is not None:
        count = int(math.floor((high - low) / param.step + 1e-9)) + 1
        return [round(low + k * param.step, 10) for k in range(count)]
    if levels is None:
        raise PoolError(
            f"parameter {param.name!r} is continuous without a 'step'; give it a step, or set "
            "generator.levels (points per continuous parameter), or use the 'sobol' generator"
        )
    return [round(float(v), 10) for v in np.linspace(low, high, levels)]


def _simplex_points(n_parts: int, units: int) -> Iterator[tuple[int, ...]]:
    """All ways to split ``units`` grid steps among ``n_parts`` parts (stars and bars)."""
    for bars in itertools.combinations(range(units + n_parts - 1), n_parts - 1):
        previous = -1
        parts = []
        for b in bars:
            parts.append(b - previous - 1)
            previous = b
        parts.append(units + n_parts - 1 - previous - 1)
        yield tuple(parts)


def _axes(space: ParametricSpace, levels: int | None) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
    """The grid as independent axes: each simplex group is one axis, each free parameter another."""
    in_simplex: set[str] = set()
    axes: list[tuple[list[str], list[tuple[Any, ...]]]] = []
    for i, group in enumerate(space.simplex):
        if group.step is None:
            raise PoolError(f"simplex[{i}] has no 'step'; a grid needs one (or use the 'sobol' generator)")
        units = int(round(group.total / group.step))
        values = [
            tuple(round(k * group.step, 10) for k in parts) for parts in _simplex_points(len(group.parameters), units)
        ]
        in_simplex.update(group.parameters)
        axes.append((list(group.parameters), values))
    for p in space.parameters:
        if p.name not in in_simplex:
            axes.append(([p.name], [(v,) for v in _levels(p, levels)]))
    return axes


def _grid_size(axes: list[tuple[list[str], list[tuple[Any, ...]]]]) -> int:
    return math.prod(len(values) for _, values in axes)


def _counted_size(space: ParametricSpace, levels: int | None) -> int:
    """How many points the grid would have, counted without listing them.

    A campaign file is untrusted: a step of 1e-9 would otherwise make the grid list a billion values (or
    stars-and-bars splits) before any size check could refuse it.
    """
    size = 1
    in_simplex: set[str] = set()
    for group in space.simplex:
        if group.step is None:
            continue  # _axes says why
        units = int(round(group.total / group.step))
        size *= math.comb(units + len(group.parameters) - 1, len(group.parameters) - 1)
        in_simplex.update(group.parameters)
    for p in space.parameters:
        if p.name in in_simplex:
            continue
        if isinstance(p, CategoricalParameter):
            size *= len(p.options)
            continue
        low, high = p.bounds
        if isinstance(p, IntegerParameter):
            size *= int(high) - int(low) + 1
        elif p.step is not None:
            size *= int(math.floor((high - low) / p.step + 1e-9)) + 1
        elif levels is not None:
            size *= levels
    return size


class GridPool:
    """Every point of the space's grid (simplex groups and steps), minus known and invalid ones."""

    name = "grid"

    def __init__(self, levels: int | None = None, max_size: int = DEFAULT_MAX_GRID) -> None:
        self.levels = levels
        self.max_size = max_size

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]:
        space = _require_parametric(space, self.name)
        size = _counted_size(space, self.levels)
        if size <= self.max_size:
            axes = _axes(space, self.levels)
            size = _grid_size(axes)
        if size > self.max_size:
            raise PoolError(
                f"the grid has {size:,} points, more than generator.max_size={self.max_size:,}; "
                "coarsen the steps or use the 'sobol' generator"
            )
        out: list[Candidate] = []
        for combo in itertools.product(*(values for _, values in axes)):
            params: dict[str, Any] = {}
            for (names, _), values in zip(axes, combo, strict=True):
                params.update(zip(names, values, strict=True))
            params = {name: params[name] for name in space.names}
            if space.violations(params):
                continue  # outside bounds or a linear constraint: not makeable
            candidate = Candidate.point(params, origin=self.name)
            if candidate.fingerprint in context.known_fingerprints:
                continue
            out.append(candidate)
            if len(out) >= n:
                break
        return out


def _snap(value: float, low: float, step: float | None) -> float:
    if step is None:
        return float(value)
    return round(low + round((value - low) / step) * step, 10)


def _snap_simplex(fractions: np.ndarray, total: float, step: float) -> np.ndarray:
    """Round fractions to the grid keeping the exact total (largest-remainder rounding)."""
    units = int(round(total / step))
    raw = fractions / fractions.sum() * units
    floors = np.floor(raw).astype(int)
    short = units - floors.sum()
    order = np.argsort(-(raw - floors), kind="stable")
    floors[order[:short]] += 1
    return np.round(floors * step, 10)


class SobolPool:
    """Scrambled Sobol points mapped onto the space: simplex groups by the uniform-simplex map, grids snapped.

    Points violating bounds or linear constraints are rejected and more are drawn,
    so every returned point is makeable; a feasible region too small to hit is
    reported rather than silently returning fewer points.
    """

    name = "sobol"

    def __init__(self, size: int = 4096, max_draw_factor: int = 64) -> None:
        self.size = size
        self.max_draw_factor = max_draw_factor

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]:
        from scipy.stats import qmc

        space = _require_parametric(space, self.name)
        want = min(n, self.size)
        in_simplex = {p for g in space.simplex for p in g.parameters}
        free = [p for p in space.parameters if p.name not in in_simplex]
        dims = sum(len(g.parameters) for g in space.simplex) + len(free)
        sampler = qmc.Sobol(d=dims, scramble=True, seed=context.seed)
        out: dict[str, Candidate] = {}
        drawn = 0
        limit = max(want, 1) * self.max_draw_factor
        while len(out) < want and drawn < limit:
            block = sampler.random(max(64, 2 ** int(math.ceil(math.log2(max(want, 2))))))
            drawn += len(block)
            for row in block:
                params = self._map(space, free, row)
                if space.violations(params):
                    continue
                candidate = Candidate.point(params, origin=self.name)
                if candidate.fingerprint in context.known_fingerprints or candidate.fingerprint in out:
                    continue
                out[candidate.fingerprint] = candidate
                if len(out) >= want:
                    break
        if not out:
            raise PoolError(
                f"drew {drawn} Sobol points and none satisfied the space's bounds and constraints; "
                "the feasible region is too small to sample, check the constraints"
            )
        return list(out.values())

    @staticmethod
    def _map(space: ParametricSpace, free: list[Any], row: np.ndarray) -> dict[str, Any]:
        params: dict[str, Any] = {}
        col = 0
        for group in space.simplex:
            k = len(group.parameters)
            u = np.clip(row[col : col + k], 1e-12, 1.0)
            col += k
            weights = -np.log(u)  # exponential spacings → uniform on the simplex
            fractions = weights / weights.sum() * group.total
            if group.step is not None:
                fractions = _snap_simplex(fractions, group.total, group.step)
            params.update({name: float(v) for name, v in zip(group.parameters, fractions, strict=True)})
        for p in free:
            u = float(row[col])
            col += 1
            if isinstance(p, CategoricalParameter):
                params[p.name] = p.options[min(int(u * len(p.options)), len(p.options) - 1)]
            elif isinstance(p, IntegerParameter):
                low, high = p.bounds
                params[p.name] = int(min(low + int(u * (high - low + 1)), high))
            else:
                low, high = p.bounds
                params[p.name] = min(_snap(low + u * (high - low), low, p.step), high)
        return {name: params[name] for name in space.names}


class DatasetPool:
    """The rows of a CSV file whose columns name the space's parameters (a fixed candidate library)."""

    name = "dataset"

    def __init__(self, path: str | Path, base_dir: Path | None = None) -> None:
        self.path = resolve_path(path, base_dir)

    def data_files(self, base_dir: Path | None) -> dict[tuple[str, ...], Path]:
        """The file this pool reads, by its setting (resolved when the pool was built)."""
        return {("path",): self.path}

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]:
        import pandas as pd

        space = _require_parametric(space, self.name)
        if not self.path.is_file():
            raise PoolError(f"generator.path: no file at {self.path}")
        frame = pd.read_csv(self.path)
        out, self.rejected = frame_candidates(space, frame, context, n, origin=self.name, where=str(self.path))
        return out


class FramePool:
    """The rows of a ``pandas.DataFrame`` whose columns name the space's parameters, as :class:`DatasetPool`
    reads a CSV file (the ask/tell API's pool, :mod:`agent.asktell`); candidates keep the frame's row order."""

    name = "dataframe"

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.rejected: list[str] = []

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]:
        space = _require_parametric(space, self.name)
        out, self.rejected = frame_candidates(space, self.frame, context, n, origin=self.name, where="the pool",
                                                 first_row=0)
        return out


def frame_candidates(space: ParametricSpace, frame: Any, context: GenerationContext, n: int, *, origin: str,
                     where: str, first_row: int = 2) -> tuple[list[Candidate], list[str]]:
    """Up to ``n`` new candidates from the rows of ``frame`` in order, and why each refused row was refused.

    Rows outside the space, known fingerprints and repeats are left out; ``first_row`` numbers the rows in the
    messages (2 for a CSV file under its header line).
    """
    missing = [name for name in space.names if name not in frame.columns]
    if missing:
        raise PoolError(f"{where} lacks columns {missing} (it has {list(frame.columns)})")
    out: list[Candidate] = []
    bad: list[str] = []
    seen: set[str] = set()
    for i, row in enumerate(frame[space.names].itertuples(index=False)):
        params = {name: plain_value(value) for name, value in zip(space.names, row, strict=True)}
        problems = space.violations(params)
        if problems:
            bad.append(f"row {i + first_row}: {'; '.join(problems)}")
            continue
        candidate = Candidate.point(params, origin=origin)
        if candidate.fingerprint in context.known_fingerprints or candidate.fingerprint in seen:
            continue
        seen.add(candidate.fingerprint)
        out.append(candidate)
        if len(out) >= n:
            break
    if bad and not out:
        raise PoolError(f"no row of {where} lies in the space: {bad[:3]}")
    return out, bad


def plain_value(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value

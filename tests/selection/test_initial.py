"""Space-filling initial designs over constrained, gridded spaces."""

from __future__ import annotations

import pytest

from agent.selection import initial_design, snap
from matloop.space import ParametricSpace


def _simplex_space(step: float | None = 0.1, linear: list | None = None) -> ParametricSpace:
    return ParametricSpace.model_validate({
        "parameters": [{"name": n, "type": "continuous", "bounds": [0, 1]} for n in ("ni", "fe", "co")],
        "simplex": [{"parameters": ["ni", "fe", "co"], "step": step}],
        "linear_constraints": linear or [],
    })


def test_initial_design_on_a_gridded_simplex_is_valid_distinct_and_spread():
    space = _simplex_space()
    points = initial_design(space, 10, seed=0)
    assert len(points) == 10
    assert all(space.violations(p) == [] for p in points)
    assert len({tuple(p.values()) for p in points}) == 10
    for p in points:  # on the 10% grid
        assert all(abs(v * 10 - round(v * 10)) < 1e-9 for v in p.values())
    corners = sum(max(p.values()) >= 0.8 for p in points)
    assert corners >= 2  # farthest-point selection reaches towards the corners


def test_initial_design_mixed_space_with_linear_constraint():
    space = ParametricSpace.model_validate({
        "parameters": [
            {"name": "t", "type": "continuous", "bounds": [300, 900], "step": 50},
            {"name": "n", "type": "integer", "bounds": [1, 8]},
            {"name": "solvent", "type": "categorical", "options": ["water", "ethanol", "dmf"]},
        ],
        "linear_constraints": [{"coefficients": {"t": 1, "n": 50}, "op": "<=", "rhs": 1000}],
    })
    points = initial_design(space, 12, seed=3)
    assert all(space.violations(p) == [] for p in points)
    assert {p["solvent"] for p in points} == {"water", "ethanol", "dmf"}
    assert all(isinstance(p["n"], int) and (p["t"] - 300) % 50 == 0 for p in points)
    assert initial_design(space, 12, seed=3) == points  # reproducible


def test_initial_design_from_a_pool_and_too_small_spaces():
    space = _simplex_space(step=0.5)  # only 6 grid points
    with pytest.raises(ValueError, match="distinct valid points"):
        initial_design(space, 7, seed=0)
    pool = [{"ni": 1.0, "fe": 0.0, "co": 0.0}, {"ni": 0.5, "fe": 0.5, "co": 0.0}, {"ni": 0.0, "fe": 0.0, "co": 1.0},
            {"ni": 1.0, "fe": 0.0, "co": 0.0}]
    chosen = initial_design(space, 2, seed=0, pool=pool)
    assert len({tuple(p.values()) for p in chosen}) == 2
    with pytest.raises(ValueError, match="3 distinct points"):
        initial_design(space, 4, seed=0, pool=pool)
    with pytest.raises(ValueError, match="not in the space"):
        initial_design(space, 1, seed=0, pool=[{"ni": 0.7, "fe": 0.7, "co": 0.0}])


def test_snap_keeps_simplex_sums_exact():
    space = _simplex_space()
    p = snap(space, {"ni": 0.33, "fe": 0.33, "co": 0.34})
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-12)
    assert space.violations(p) == []

"""Pool generators: the grid enumerates exactly the makeable points, Sobol respects constraints."""

from __future__ import annotations

import pytest

from agent.spec import load_campaign
from generators.base import GenerationContext
from generators.pool import DatasetPool, GridPool, PoolError, SobolPool
from matloop.space import ParametricSpace
from matloop.types import Candidate


def oer_space() -> ParametricSpace:
    space = load_campaign("agent/templates/oer.yaml").space
    assert isinstance(space, ParametricSpace)
    return space


def test_grid_enumerates_the_oer_simplex_and_skips_known_points() -> None:
    space = oer_space()
    pool = GridPool().propose(space, GenerationContext(), 10**6)
    assert len(pool) == 3003  # 10 steps among 6 metals: C(15, 5)
    assert all(not space.violations(c.params or {}) for c in pool)
    assert len({c.fingerprint for c in pool}) == 3003
    known = {pool[0].fingerprint, pool[10].fingerprint}
    again = GridPool().propose(space, GenerationContext(known_fingerprints=known), 10**6)
    assert len(again) == 3001 and not known & {c.fingerprint for c in again}


def test_grid_applies_linear_constraints_and_refuses_unstepped_parameters() -> None:
    space = ParametricSpace.model_validate({
        "parameters": [{"name": "a", "type": "continuous", "bounds": [0, 1], "step": 0.25}, {"name": "b", "type": "continuous", "bounds": [0, 1], "step": 0.25}],
        "linear_constraints": [{"coefficients": {"a": 1, "b": 1}, "op": "<=", "rhs": 1.0}],
    })
    pool = GridPool().propose(space, GenerationContext(), 100)
    assert len(pool) == 15 and all((c.params["a"] + c.params["b"]) <= 1.0 + 1e-9 for c in pool)  # type: ignore[index]
    free = ParametricSpace.model_validate({"parameters": [{"name": "a", "type": "continuous", "bounds": [0, 1]}]})
    with pytest.raises(PoolError, match="without a 'step'"):
        GridPool().propose(free, GenerationContext(), 10)
    assert len(GridPool(levels=5).propose(free, GenerationContext(), 10)) == 5


def test_sobol_points_are_valid_deterministic_and_snapped_to_the_grid() -> None:
    space = oer_space()
    a = SobolPool(size=200).propose(space, GenerationContext(seed=3), 200)
    b = SobolPool(size=200).propose(space, GenerationContext(seed=3), 200)
    assert [c.fingerprint for c in a] == [c.fingerprint for c in b]
    assert len(a) == 200 and all(not space.violations(c.params or {}) for c in a)
    assert all(abs(v * 10 - round(v * 10)) < 1e-9 for c in a for v in (c.params or {}).values())


def test_dataset_pool_reads_rows_and_names_bad_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    space = ParametricSpace.model_validate({"parameters": [{"name": "a", "type": "continuous", "bounds": [0, 1]}]})
    path = tmp_path / "lib.csv"
    path.write_text("a,other\n0.1,x\n0.5,y\n0.1,z\n")
    pool = DatasetPool(path).propose(space, GenerationContext(), 10)
    assert [c.params for c in pool] == [{"a": 0.1}, {"a": 0.5}]
    path.write_text("a\n7\n")
    with pytest.raises(PoolError, match="row 2: a=7"):
        DatasetPool(path).propose(space, GenerationContext(), 10)
    with pytest.raises(PoolError, match="lacks columns"):
        DatasetPool(path).propose(
            ParametricSpace.model_validate({"parameters": [{"name": "b", "type": "continuous", "bounds": [0, 1]}]}), GenerationContext(), 1
        )
    assert isinstance(pool[0], Candidate)


@pytest.mark.parametrize(
    "space",
    [
        {"parameters": [{"name": f"m{i}", "type": "continuous", "bounds": [0, 1]} for i in range(3)],
         "simplex": [{"parameters": ["m0", "m1", "m2"], "total": 1.0, "step": 1e-6}]},
        {"parameters": [{"name": "t", "type": "continuous", "bounds": [0, 1], "step": 1e-12}]},
    ],
    ids=["simplex-step", "parameter-step"],
)
def test_a_grid_from_a_tiny_step_is_refused_before_it_is_listed(space: dict) -> None:
    """A simplex step of 1e-6 means ~5x10^11 points: counted and refused in one sentence, never enumerated."""
    with pytest.raises(PoolError, match=r"the grid has [\d,]+ points, more than generator.max_size"):
        GridPool().propose(ParametricSpace.model_validate(space), GenerationContext(), 10)

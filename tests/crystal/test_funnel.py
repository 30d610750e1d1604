"""Novelty against a reference set and the funnel's rates (the MLIP stage has its own tests)."""

from __future__ import annotations

import pytest

from generators.crystal import FunnelRates, ReferenceSet, StructureRegistry, run_funnel
from generators.crystal.io import CrystalInputError
from tests.crystal.conftest import DATA


@pytest.fixture(scope="module")
def reference() -> ReferenceSet:
    return ReferenceSet.from_csv(DATA / "perov5_sample.csv")


def _balanced_oxide(reference: ReferenceSet) -> str:
    from pymatgen.core import Composition

    from generators.crystal import OxidationRules

    rules = OxidationRules()
    return sorted(f for f in reference.formulas
                  if f.endswith("O3") and rules.balance(Composition(f).get_el_amt_dict()) is not None)[0]


def _row_structure(reference: ReferenceSet, formula: str):
    (source, structure), *_ = reference._entries(formula)
    return source, structure


def test_reference_lookup_matches_relaxed_crystal_from_ideal_prototype(reference, perovskite):
    assert len(reference) == 48
    formula = _balanced_oxide(reference)
    source, known = _row_structure(reference, formula)
    ideal = perovskite(*_a_b_of(known), "O")
    assert reference.match(ideal) == source
    assert not reference.is_novel(ideal)
    assert reference.is_novel(perovskite("Sr", "Ti", "S"))


def _a_b_of(structure):
    """A (closest to the cell corner) and B (closest to the body centre) of a 5-atom perovskite."""
    import numpy as np

    cations = [s for s in structure if s.specie.symbol not in ("O", "N", "F")]
    corner = min(cations, key=lambda s: np.linalg.norm((s.frac_coords + 0.5) % 1 - 0.5))
    other = next(s for s in cations if s is not corner) if len(cations) > 1 else corner
    return corner.specie.symbol, other.specie.symbol


def test_bad_reference_rows_are_named(tmp_path, perovskite):
    path = tmp_path / "refs.csv"
    path.write_text('cif,formula\n"garbage",SrTiO3\n')
    ref = ReferenceSet.from_csv(path)
    with pytest.raises(CrystalInputError, match=r"refs.csv row 1"):
        ref.match(perovskite())
    with pytest.raises(CrystalInputError, match="no column 'structure'"):
        ReferenceSet.from_csv(path, cif_column="structure")


def test_funnel_counts_every_stage(reference, perovskite):
    formula = _balanced_oxide(reference)
    _, known = _row_structure(reference, formula)
    batch = [
        perovskite("Sr", "Ti", "O"),          # new
        perovskite("Sr", "Ti", "O") * (1, 1, 2),  # duplicate of the first (supercell)
        perovskite("Sr", "Ti", "O", lattice=2.0),  # invalid: atoms overlap
        perovskite("Ca", "Zr", "O"),          # seen by the campaign before
        perovskite(*_a_b_of(known), "O"),     # in the reference set: not novel
        perovskite("Ba", "Hf", "O"),          # new
    ]
    seen = {"structure:CaZrO3:221": perovskite("Ca", "Zr", "O").as_dict()}
    registry = StructureRegistry.from_known(seen, seen)
    out = run_funnel(batch, registry, reference=reference)
    r = out.rates
    assert (r.generated, r.valid, r.unique, r.novel, r.screened, r.stable) == (6, 5, 3, 2, 0, 0)
    assert out.survivors == [0, 5]
    assert out.rejected[1] == "duplicate of structure:SrTiO3:221"
    assert out.rejected[2].startswith("invalid: ")
    assert out.rejected[3] == "duplicate of structure:CaZrO3:221"
    assert out.rejected[4].startswith("known: matches ") and "perov5_sample.csv row" in out.rejected[4]
    assert r.valid_rate == pytest.approx(5 / 6) and r.novel_rate == pytest.approx(2 / 6)
    # no MLIP stage ran: stability was not measured, which is not the same as 0 % stable
    assert r.sun_rate is None and r.stable_rate is None and r.as_dict()["sun_rate"] is None
    # the registry learnt the batch: the same batch again is all duplicates
    again = run_funnel(batch[:1], registry)
    assert again.rates.unique == 0


def test_rates_dict_is_flat():
    r = FunnelRates(generated=10, valid=8, unique=6, novel=4, screened=4, stable=1, stable_unique_novel=1)
    d = r.as_dict()
    assert d["sun_rate"] == pytest.approx(0.1) and d["stable_rate"] == pytest.approx(0.25) and d["valid"] == 8
    assert FunnelRates(0, 0, 0, 0, 0, 0, 0).sun_rate is None
    screened_none_stable = FunnelRates(generated=4, valid=4, unique=4, novel=2, screened=2, stable=0, stable_unique_novel=0)
    assert screened_none_stable.sun_rate == 0.0 and screened_none_stable.stable_rate == 0.0


def test_funnel_generator_returns_survivors_and_keeps_the_rates(reference, perovskite):
    from generators.base import GenerationContext
    from generators.crystal import funnel_generator
    from matloop.space import CrystalSpace

    space = CrystalSpace(type="crystal", prototypes=["perovskite"],
                         sites={"A": ["Sr", "Ba", "Ca", "La"], "B": ["Ti", "Zr", "Hf", "Al", "Sc"], "X": ["O"]})
    seen = {"structure:SrTiO3:221": perovskite().as_dict()}
    gen = funnel_generator(funnel={"novelty_reference": str(DATA / "perov5_sample.csv")})
    out = gen.propose(space, GenerationContext(seed=0, known_fingerprints=set(seen), extra={"known_structures": seen}),
                      30)
    rates = gen.last_outcome.rates
    assert 0 < len(out) == rates.novel <= rates.generated
    assert "structure:SrTiO3:221" not in {c.fingerprint for c in out}
    known_in_sample = [why for why in gen.last_outcome.rejected.values() if why.startswith("known")]
    assert len(known_in_sample) == rates.unique - rates.novel
    with pytest.raises(ValueError, match="mlp"):
        funnel_generator(funnel={"mlp": {}})

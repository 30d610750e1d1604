"""Benchmark of the crystal funnel: generation + validity + de-duplication throughput, MLIP relaxations, rates.

    python benchmarks/crystal_funnel.py [--quick]

1. Generates 10,000 candidates (1,000 with --quick) from six named prototypes over
   the perov5 data's elements, checks validity and de-duplicates them; prints
   candidates per second.  Baseline, measured in the same run on the same
   subset: de-duplication by pairwise ``StructureMatcher`` against every kept
   structure (no formula/space-group grouping).
2. Novelty against the shared perov5 reference set (if ``../shared/data`` exists).
3. Relaxes a small batch with CHGNet on the CPU (1 thread) and screens it on the
   CHGNet hull (--quick: 4 perovskite oxides; full: 16 perovskites, rocksalts and
   spinels over 12 elements); prints relaxations per second and the funnel rates of that batch.
   Elemental references are cached (``MATLOOP_MLIP_CACHE`` or the user cache);
   the first run pays for them, and the line says whether it did.

Ends with ``summary: candidates_per_s=<x> relax_per_s=<y> sun_rate=<z>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.base import GenerationContext  # noqa: E402
from generators.crystal import (  # noqa: E402
    OxidationRules,
    ReferenceSet,
    StructureRegistry,
    SubstitutionGenerator,
    ValidityRules,
    deduplicate,
    partition_valid,
    run_funnel,
    structures_of,
)
from generators.crystal.dedup import default_matcher  # noqa: E402
from matloop.space import CrystalSpace  # noqa: E402

PEROV5 = Path(os.environ.get("MATLOOP_SHARED_DATA", ROOT.parent / "shared" / "data")) / "perov5" / "perov5_val.csv"
CATIONS = [
    "Ag", "Al", "As", "Au", "B", "Ba", "Be", "Bi", "Ca", "Cd", "Co", "Cr", "Cs", "Cu", "Fe", "Ga", "Ge", "Hf", "Hg",
    "In", "Ir", "K", "La", "Li", "Mg", "Mn", "Mo", "Na", "Nb", "Ni", "Os", "Pb", "Pd", "Pt", "Rb", "Re", "Rh", "Ru",
    "Sb", "Sc", "Si", "Sn", "Sr", "Ta", "Te", "Ti", "Tl", "V", "W", "Y", "Zn", "Zr",
]
ANIONS = ["O", "N", "F", "S", "Cl"]


def naive_dedup(structures: list) -> int:
    """The baseline: compare each structure with every kept one (quadratic, no grouping)."""
    matcher = default_matcher()
    kept: list = []
    for s in structures:
        if not any(matcher.fit(k, s) for k in kept):
            kept.append(s)
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 candidates and a 4-structure MLIP batch")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    n = 1_000 if args.quick else 10_000
    n_relax = 4 if args.quick else 16
    n_baseline = 100 if args.quick else 300

    space = CrystalSpace(
        type="crystal",
        elements=CATIONS + ANIONS,
        prototypes=["perovskite", "rocksalt", "zincblende", "wurtzite", "spinel", "cesium_chloride"],
        max_atoms=20,
    )
    gen = SubstitutionGenerator.from_settings({"skip_known": False})
    oxidation = OxidationRules(space.oxidation_states)
    rules = ValidityRules(max_atoms=space.max_atoms, allowed_elements=frozenset(space.elements))

    t_start = time.perf_counter()
    gen.propose(space, GenerationContext(seed=99), 10)  # one-time loading: substitution table, prototypes
    t_startup = time.perf_counter() - t_start
    t0 = time.perf_counter()
    cands = gen.propose(space, GenerationContext(seed=0), n)
    t_gen = time.perf_counter() - t0
    structures = structures_of(cands)
    t1 = time.perf_counter()
    valid, invalid = partition_valid(structures, rules, oxidation)
    t_valid = time.perf_counter() - t1
    t2 = time.perf_counter()
    registry = StructureRegistry()
    dedup = deduplicate([structures[i] for i in valid], registry, keys=[cands[i].fingerprint for i in valid])
    t_dedup = time.perf_counter() - t2
    total = t_gen + t_valid + t_dedup
    cps = len(cands) / total
    print(f"generated {len(cands)} candidates (asked {n}; {gen.stats.drawn} decorations drawn, "
          f"{gen.stats.not_charge_balanced} not charge-balanced)")
    print(f"  one-time start-up {t_startup:.2f} s (not counted), generation {t_gen:.2f} s, validity {t_valid:.2f} s ({len(valid)} valid), "
          f"de-duplication {t_dedup:.2f} s ({len(dedup.unique)} unique)")
    print(f"  throughput: {cps:.0f} candidates/s through generation + validity + de-duplication")

    subset = [structures[i] for i in valid[:n_baseline]]
    t3 = time.perf_counter()
    grouped = len(deduplicate(subset, StructureRegistry()).unique)  # computes its own keys (spglib), to be fair
    t_grouped = time.perf_counter() - t3
    t4 = time.perf_counter()
    naive = naive_dedup(subset)
    t_naive = time.perf_counter() - t4
    print(f"de-dup of {len(subset)} valid structures: grouped {t_grouped:.2f} s ({grouped} unique), "
          f"pairwise baseline {t_naive:.2f} s ({naive} unique) -> {t_naive / max(t_grouped, 1e-9):.1f}x faster")

    reference = None
    if PEROV5.exists():
        reference = ReferenceSet.from_csv(PEROV5)
        perov = [structures[valid[k]] for k in dedup.unique if cands[valid[k]].origin.endswith("perovskite")]
        t5 = time.perf_counter()
        known = sum(reference.match(s) is not None for s in perov)
        t_novel = time.perf_counter() - t5
        print(f"novelty vs perov5 ({len(reference)} crystals): {known}/{len(perov)} unique perovskites are known "
              f"({t_novel:.2f} s, {len(perov) / max(t_novel, 1e-9):.0f} structures/s)")
    else:
        print(f"novelty: skipped, {PEROV5} not found")

    # MLIP stage on a small perovskite batch (few elements, so the elemental references stay cheap)
    from surrogates.mlip import MLIPScreen, MLIPSettings

    if args.quick:  # 5-atom cells whose elemental references are few
        small = CrystalSpace(type="crystal", prototypes=["perovskite"],
                             sites={"A": ["Ca", "Sr", "Ba"], "B": ["Ti", "Zr", "Hf"], "X": ["O"]})
    else:  # perovskites, rocksalts and spinels compete on one hull
        small = CrystalSpace(type="crystal", prototypes=["perovskite", "rocksalt", "spinel"],
                             elements=["Ca", "Sr", "Ba", "Mg", "Zn", "Ti", "Zr", "Al", "Ga", "O", "N", "F"])
    batch = structures_of(SubstitutionGenerator.from_settings({"skip_known": False}).propose(
        small, GenerationContext(seed=1), n_relax))
    t6 = time.perf_counter()
    screen = MLIPScreen(MLIPSettings(threads=1))
    t_load = time.perf_counter() - t6
    cached = screen.references.path.exists()
    for el in sorted({e.symbol for s in batch for e in s.composition.elements}):
        screen.references.energy_per_atom(el)
    t_refs = time.perf_counter() - t6 - t_load
    t7 = time.perf_counter()
    outcome = run_funnel(batch, StructureRegistry(), rules, oxidation, reference, screen)
    t_screen = time.perf_counter() - t7
    relaxed = outcome.rates.screened
    rps = relaxed / t_screen if relaxed else 0.0
    print(f"MLIP (CHGNet, 1 thread): model load {t_load:.1f} s, elemental references {t_refs:.1f} s "
          f"({'cache found' if cached else 'computed, now cached'} at {screen.references.path})")
    print(f"  relaxed + hull-screened {relaxed} structures in {t_screen:.1f} s -> {rps:.2f} relaxations/s")
    for i, res in outcome.screening.items():
        st = res.stability
        print(f"  {batch[i].composition.reduced_formula:10s} E={res.relax.energy_per_atom:.3f} eV/at "
              f"Ef={st.formation_energy_per_atom if st else float('nan'):.3f} "
              f"Ehull={st.e_above_hull if st else float('nan'):.3f} steps={res.relax.steps} stable={res.stable}")
    r = outcome.rates
    print("funnel rates of the MLIP batch: " + ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.as_dict().items()))
    sun = "n/a" if r.sun_rate is None else f"{r.sun_rate:.3f}"
    print(f"summary: candidates_per_s={cps:.1f} relax_per_s={rps:.3f} sun_rate={sun}")


if __name__ == "__main__":
    main()

"""The crystal funnel: generated → valid → unique → novel → MLIP-stable, with its rates per batch.

Every stage records why each rejected structure left, so the lead can store the
whole funnel (a rejected proposal is data too).  MLIP relaxation is the
expensive stage, so only valid, unique and novel structures are relaxed; the
stable and stable-unique-novel (SUN) rates are still given per *generated*
structure, as in the generative-materials literature (e.g. MatterGen's SUN rate).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pymatgen.core import Structure

from generators.crystal.chemistry import OxidationRules
from generators.crystal.dedup import StructureRegistry, coarse_key, deduplicate
from generators.crystal.novelty import ReferenceSet
from generators.crystal.validity import ValidityRules, check_structure
from matloop.compute import map_chunked
from matloop.types import Candidate

#: Structures per chunk of the per-structure checks (validity, space group) when they fan out
#: (:mod:`matloop.compute`): ~10 ms each, so a chunk is worth shipping to a worker.
CHECK_CHUNK = 64


@dataclass(frozen=True)
class FunnelRates:
    """Counts at each stage of one generated batch, and rates relative to the batch size.

    ``stable`` counts structures that passed MLIP screening; since only valid,
    unique and novel structures are screened, ``stable == stable_unique_novel``
    whenever screening ran, and ``screened`` says how many were relaxed.
    """

    generated: int
    valid: int
    unique: int
    novel: int
    screened: int
    stable: int
    stable_unique_novel: int

    def _rate(self, count: int) -> float:
        return count / self.generated if self.generated else 0.0

    @property
    def valid_rate(self) -> float:
        return self._rate(self.valid)

    @property
    def unique_rate(self) -> float:
        return self._rate(self.unique)

    @property
    def novel_rate(self) -> float:
        return self._rate(self.novel)

    @property
    def stable_rate(self) -> float | None:
        """Stable share of the screened structures (what the MLIP said about what it saw).

        ``None`` when nothing was screened (no MLIP stage, or nothing survived novelty):
        "not measured" must not read as "0 % stable" in a report or a query.
        """
        return self.stable / self.screened if self.screened else None

    @property
    def sun_rate(self) -> float | None:
        """Stable, unique and novel share of the batch; ``None`` without screening (see :attr:`stable_rate`)."""
        return self._rate(self.stable_unique_novel) if self.screened else None

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and rates, flat, for the database and for tables (unmeasured rates are ``None``)."""
        out: dict[str, float | int | None] = dict(asdict(self))
        for name in ("valid_rate", "unique_rate", "novel_rate", "stable_rate", "sun_rate"):
            out[name] = getattr(self, name)
        return out


@dataclass
class FunnelOutcome:
    """The rates, the survivors (indices into the input), and every rejection with its reason."""

    rates: FunnelRates
    survivors: list[int]
    fingerprints: list[str]
    rejected: dict[int, str] = field(default_factory=dict)
    screening: dict[int, Any] = field(default_factory=dict)  # index -> surrogates.mlip.ScreenResult


def structures_of(candidates: Sequence[Candidate]) -> list[Structure]:
    out = []
    for i, c in enumerate(candidates):
        if c.structure is None:
            raise ValueError(f"candidate {i} ({c.fingerprint}) carries no structure")
        out.append(Structure.from_dict(c.structure))
    return out


def _check_chunk(
    rules: ValidityRules, oxidation: OxidationRules, symprec: float, structures: list[Structure]
) -> list[tuple[list[str], str | None]]:
    """Validity problems of each structure and, for a valid one, its coarse key (formula + space group)."""
    out: list[tuple[list[str], str | None]] = []
    for structure in structures:
        problems = check_structure(structure, rules, oxidation)
        out.append((problems, None if problems else coarse_key(structure, symprec)))
    return out


def run_funnel(
    structures: Sequence[Structure],
    registry: StructureRegistry,
    rules: ValidityRules | None = None,
    oxidation: OxidationRules | None = None,
    reference: ReferenceSet | None = None,
    screen: Any | None = None,
) -> FunnelOutcome:
    """Push a batch through the funnel.  ``registry`` holds what the campaign has seen and learns the new ones.

    ``screen`` is an object with ``screen(structures) -> list[ScreenResult]``
    (:class:`surrogates.mlip.MLIPScreen`); without it the funnel stops at novelty.
    """
    rules = rules or ValidityRules()
    oxidation = oxidation or OxidationRules()
    rejected: dict[int, str] = {}
    # the per-structure work fans out in chunks; matching against what is known stays in order, here
    checked = map_chunked(functools.partial(_check_chunk, rules, oxidation, registry.symprec), list(structures),
                          CHECK_CHUNK, name="crystal-validity")
    valid = [i for i, (problems, _) in enumerate(checked) if not problems]
    for i, (problems, _) in enumerate(checked):
        if problems:
            rejected[i] = "invalid: " + "; ".join(problems)
    fingerprints = [""] * len(structures)
    dedup = deduplicate([structures[i] for i in valid], registry, keys=[checked[i][1] for i in valid])
    for k, i in enumerate(valid):
        fingerprints[i] = dedup.fingerprints[k]
    unique = [valid[k] for k in dedup.unique]
    for k, fp in dedup.duplicate_of.items():
        rejected[valid[k]] = f"duplicate of {fp}"
    novel = []
    for i in unique:
        source = reference.match(structures[i]) if reference is not None else None
        if source is None:
            novel.append(i)
        else:
            rejected[i] = f"known: matches {source}"
    survivors = novel
    screening: dict[int, Any] = {}
    stable = 0
    if screen is not None and novel:
        results = screen.screen([structures[i] for i in novel])
        survivors = []
        for i, res in zip(novel, results, strict=True):
            screening[i] = res
            if res.stable:
                survivors.append(i)
            else:
                rejected[i] = f"MLIP: {res.reason}"
        stable = len(survivors)
    rates = FunnelRates(
        generated=len(structures),
        valid=len(valid),
        unique=len(unique),
        novel=len(novel),
        screened=len(screening),
        stable=stable,
        stable_unique_novel=stable,
    )
    return FunnelOutcome(rates, survivors, fingerprints, rejected, screening)

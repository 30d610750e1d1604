"""Step 3, generate: ask the campaign's generator for a candidate pool without known candidates.

The pool itself is not stored (it may hold a million points); it is
deterministic in the campaign seed and the iteration number, so it can be
regenerated, and its funnel (generated → valid → novel) is stored as a
``PoolRecord``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.fit import FitOutcome
from agent.loop.state import excluded_fingerprints
from agent.store.models import CandidateRecord, IterationRecord, PoolRecord
from generators.base import GenerationContext
from generators.registry import build_generator
from matloop.space import CrystalSpace, ParametricSpace
from matloop.types import Candidate, CandidateKind

#: Default largest pool; the selection scores it in chunks.
DEFAULT_POOL_SIZE = 100_000
#: Default for crystal spaces: every proposal is built, volume-rescaled and checked (~ms each), then featurized.
DEFAULT_CRYSTAL_POOL_SIZE = 1_000


def make_generator(ctx: LoopContext) -> Any:
    """The generator ``campaign.generator`` names (see :func:`generators.registry.build_generator`)."""
    return build_generator(ctx.campaign.generator, ctx.campaign.space, base_dir=ctx.base_dir)


def generate(ctx: LoopContext, iteration_id: int, fit: FitOutcome | None = None, generator: Any | None = None
             ) -> list[Candidate]:
    """A pool of new candidates; stores its funnel and moves the iteration to ``generated``.

    ``generator`` replaces the campaign's own (the ask/tell API passes the caller's pool as one); everything
    after the proposal (known and invalid candidates dropped, the funnel stored) is the same for both.
    A generator with ``propose_checked(space, context, n)`` returns ``(fingerprint, candidate)`` pairs whose
    candidates it already checked against ``space`` (a pool parsed once, proposed again on every ask): their
    fingerprints are not hashed again, nor the space's checks repeated.
    """
    with ctx.db.reading() as session:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        number = iteration.number
        known = excluded_fingerprints(
            session, ctx.campaign_id, ctx.campaign.target_fidelity if ctx.campaign.is_multifidelity else None)
        structures = _known_structures(session, ctx.campaign_id, known)
    generator = make_generator(ctx) if generator is None else generator
    default = DEFAULT_CRYSTAL_POOL_SIZE if isinstance(ctx.campaign.space, CrystalSpace) else DEFAULT_POOL_SIZE
    size = ctx.campaign.generator.pool_size or default
    context = GenerationContext(
        seed=ctx.campaign.seed * 100_003 + number,
        known_fingerprints=set(known),
        target={o.property: o.model_dump(mode="json") for o in ctx.campaign.objectives},
        surrogate=None if fit is None else fit.model,
        extra={"known_structures": structures, "measurements": _measurements(ctx, fit)},
        base_dir=ctx.base_dir,
    )
    checked = getattr(generator, "propose_checked", None)
    if checked is not None:
        # (fingerprint, candidate) pairs the generator already checked against the space: no hash or check again
        pairs = checked(ctx.campaign.space, context, size)
    else:
        pairs = [(c.fingerprint, c) for c in generator.propose(ctx.campaign.space, context, size)]
    pool: list[Candidate] = []
    seen: set[str] = set()
    invalid = 0
    for fp, candidate in pairs:
        if fp in known or fp in seen:
            continue
        if checked is None and isinstance(ctx.campaign.space, ParametricSpace) and candidate.params is not None:
            if ctx.campaign.space.violations(candidate.params):
                invalid += 1
                continue
        seen.add(fp)
        pool.append(candidate)
    stats = {
        "proposed": len(pairs),
        "invalid": invalid,
        "known_excluded": len(known),
        "novel": len(pool),
        "valid_rate": (len(pairs) - invalid) / len(pairs) if pairs else 0.0,
        **_generator_stats(generator),
    }
    with ctx.db.transaction() as session:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        existing = session.scalar(select(PoolRecord).where(PoolRecord.iteration_id == iteration_id).limit(1))
        if existing is None or iteration.step in ("started", "fitted"):
            session.add(PoolRecord(iteration_id=iteration_id, generator=getattr(generator, "name", str(generator)),
                                   size=len(pool), stats=stats))
        if iteration.step in ("started", "fitted"):
            iteration.step = "generated"
    return pool


def _known_structures(session: Any, campaign_id: int, known: set[str]) -> dict[str, dict]:
    """Fingerprint -> structure dict of the campaign's known crystals, for ``StructureMatcher`` de-duplication.

    The coarse fingerprint (formula + space group) alone would call two different
    decorations with the same formula and symmetry duplicates; with the structures the
    crystal funnel compares geometry within each group.
    """
    if not known:
        return {}
    rows = session.execute(
        select(CandidateRecord.fingerprint, CandidateRecord.representation).where(
            CandidateRecord.campaign_id == campaign_id, CandidateRecord.kind == CandidateKind.STRUCTURE.value
        )
    )
    return {fp: rep["structure"] for fp, rep in rows if fp in known and (rep or {}).get("structure")}


def _measurements(ctx: LoopContext, fit: FitOutcome | None) -> list[tuple[Candidate, float]]:
    """``(candidate, value)`` of the first objective for every successful measurement (inverse generators train on it).

    Failed experiments (NaN) are left out: an inverse model of ``p(x | y)`` has no ``y`` for them.
    """
    if fit is None:
        return []
    obs = fit.observations
    prop = ctx.campaign.objectives[0].property
    if prop not in obs.properties:
        return []
    col = obs.properties.index(prop)
    return [(c, float(row[col])) for c, row in zip(obs.candidates, obs.values, strict=True) if math.isfinite(row[col])]


def _generator_stats(generator: Any) -> dict[str, Any]:
    """What the generator says about its own funnel, for the pool record (crystal: valid/unique/novel/SUN rates)."""
    out: dict[str, Any] = {}
    outcome = getattr(generator, "last_outcome", None)
    if outcome is not None and hasattr(outcome, "rates"):
        out["funnel"] = outcome.rates.as_dict()
        reasons: dict[str, int] = {}
        for why in outcome.rejected.values():
            head = why.split(":", 1)[0]
            reasons[head] = reasons.get(head, 0) + 1
        out["funnel_rejections"] = reasons
    inner = getattr(generator, "generator", generator)
    stats = getattr(inner, "stats", None)
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        out["generation"] = dataclasses.asdict(stats)
    return out

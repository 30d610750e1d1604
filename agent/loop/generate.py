"""Step 3, generate: ask the campaign's generator for a candidate pool without known candidates.

The pool itself is not stored (it may hold a million points); it is
deterministic in the campaign seed and the iteration number, so it can be
regenerated, and its funnel (generated → valid → novel) is stored as a
``PoolRecord``.
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.fit import FitOutcome
from agent.loop.state import excluded_fingerprints
from agent.store.models import IterationRecord, PoolRecord
from generators.base import GenerationContext
from generators.pool import PoolError, pool_generator
from matloop.space import ParametricSpace
from matloop.types import Candidate

#: Default largest pool; the selection scores it in chunks.
DEFAULT_POOL_SIZE = 100_000


def make_generator(ctx: LoopContext) -> Any:
    """The generator ``campaign.generator`` names: a pool kind, or ``module:Class`` for any other."""
    config = ctx.campaign.generator
    kind = config.type
    if kind == "auto":
        kind = "grid" if _gridded(ctx.campaign.space) else "sobol"
    if kind in ("grid", "sobol", "dataset"):
        settings = {k: v for k, v in config.settings.items() if k != "pool_size"}
        return pool_generator(kind, settings, base_dir=ctx.base_dir)
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        settings = {k: v for k, v in config.settings.items() if k != "pool_size"}
        return factory(**settings)
    raise PoolError(f"generator.type: unknown generator {kind!r}; use grid, sobol, dataset or 'module:Class'")


def _gridded(space: Any) -> bool:
    if not isinstance(space, ParametricSpace):
        return False
    in_simplex = {p for g in space.simplex for p in g.parameters}
    steps_ok = all(g.step is not None for g in space.simplex)
    free_ok = all(
        getattr(p, "step", None) is not None or p.type in ("integer", "categorical")
        for p in space.parameters
        if p.name not in in_simplex
    )
    return steps_ok and free_ok


def generate(ctx: LoopContext, iteration_id: int, fit: FitOutcome | None = None) -> list[Candidate]:
    """A pool of new candidates; stores its funnel and moves the iteration to ``generated``."""
    with ctx.db.reading() as session:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        number = iteration.number
        known = excluded_fingerprints(session, ctx.campaign_id)
    generator = make_generator(ctx)
    size = int(ctx.campaign.generator.settings.get("pool_size", DEFAULT_POOL_SIZE))
    context = GenerationContext(
        seed=ctx.campaign.seed * 100_003 + number,
        known_fingerprints=set(known),
        target={o.property: o.model_dump(mode="json") for o in ctx.campaign.objectives},
        surrogate=None if fit is None else fit.model,
    )
    raw = generator.propose(ctx.campaign.space, context, size)
    pool: list[Candidate] = []
    seen: set[str] = set()
    invalid = 0
    for candidate in raw:
        fp = candidate.fingerprint
        if fp in known or fp in seen:
            continue
        if isinstance(ctx.campaign.space, ParametricSpace) and candidate.params is not None:
            if ctx.campaign.space.violations(candidate.params):
                invalid += 1
                continue
        seen.add(fp)
        pool.append(candidate)
    stats = {
        "proposed": len(raw),
        "invalid": invalid,
        "known_excluded": len(known),
        "novel": len(pool),
        "valid_rate": (len(raw) - invalid) / len(raw) if raw else 0.0,
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

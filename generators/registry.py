"""``generator: {type, settings}`` in a campaign file → a generator object.

Construction is cheap for every generator here (data files and models load on first ``propose``),
so the campaign-file reader builds the generator once when the file is read: an unknown type, a
misspelt setting or an unimportable ``module:factory`` is then reported with its line, instead of
after the initial design's experiments. The loop builds it the same way at every iteration.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from generators.pool import POOL_SETTINGS, PoolError, pool_generator
from matloop.space import CrystalSpace, MicrostructureSpace, ParametricSpace

#: ``generator.type`` short names beyond the pool kinds: name -> "module:factory".
NAMED_GENERATORS = {
    "crystal": "generators.crystal:funnel_generator",
    "substitution": "generators.crystal:funnel_generator",
    "cinn": "generators.inverse:CINNGenerator",
    "janus": "generators.inverse:JanusGenerator",
    "random_field": "generators.inverse.images:RandomFieldPool",
}
POOL_KINDS = tuple(POOL_SETTINGS)  # grid, sobol, dataset
#: Read by the loop for every generator (how many candidates to ask for), not passed to it.
LOOP_SETTINGS = ("pool_size",)


def resolved_type(kind: str, space: Any) -> str:
    """``auto`` by the design space: the crystal funnel, random-field images, or a grid / Sobol pool."""
    if kind != "auto":
        return kind
    if isinstance(space, CrystalSpace):
        return "crystal"
    if isinstance(space, MicrostructureSpace):
        return "random_field"
    return "grid" if _gridded(space) else "sobol"


def build_generator(kind: str, settings: dict[str, Any], space: Any, *, base_dir: Path | None = None) -> Any:
    """The generator ``kind`` names (a pool kind, a short name or ``module:factory``), built with ``settings``."""
    kind = resolved_type(kind, space)
    settings = {k: v for k, v in settings.items() if k not in LOOP_SETTINGS}
    if kind in POOL_KINDS:
        return pool_generator(kind, settings, base_dir=base_dir)
    target = NAMED_GENERATORS.get(kind, kind)
    if ":" not in target:
        raise PoolError(
            f"generator.type: unknown generator {kind!r}; use auto, {', '.join(POOL_KINDS)}, "
            f"{', '.join(NAMED_GENERATORS)} or 'module:factory'"
        )
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PoolError(f"generator.type: cannot import {target!r}: {exc}") from exc
    try:
        return factory(**settings)
    except (TypeError, ValueError) as exc:
        raise PoolError(f"generator.settings: {kind!r} refuses these settings: {exc}") from exc


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

"""A campaign's typed ``generator:`` config (:mod:`generators.config`) → a generator object.

Construction is cheap for every generator here (data files and models load on first ``propose``),
so the campaign-file reader builds the generator once when the file is read: a missing plug-in or
settings a plug-in refuses are then reported with their line, instead of after the initial design's
experiments. The loop builds it the same way at every iteration.

No module is imported because a campaign file names it: the built-in generators are fixed here, and a
third-party one is loaded only from an entry point an installed package registered under
``matloop.generators`` (``importlib.metadata``), by the registered name the file gives.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from generators import config as cfg
from generators.pool import DatasetPool, GridPool, PoolError, SobolPool
from matloop.space import CrystalSpace, MicrostructureSpace, ParametricSpace


def resolved_type(kind: str, space: Any) -> str:
    """``auto`` by the design space: the crystal funnel, random-field images, or a grid / Sobol pool."""
    if kind != "auto":
        return kind
    if isinstance(space, CrystalSpace):
        return "crystal"
    if isinstance(space, MicrostructureSpace):
        return "random_field"
    return "grid" if _gridded(space) else "sobol"


def build_generator(config: Any, space: Any, *, base_dir: Path | None = None) -> Any:
    """The generator ``config`` (a :data:`generators.config.GeneratorConfig` model) describes, for ``space``."""
    kind = resolved_type(config.type, space)
    if kind == "grid":
        grid = config if isinstance(config, cfg.GridGenerator) else cfg.GridGenerator()
        return GridPool(levels=grid.levels, max_size=grid.max_size)
    if kind == "sobol":
        return SobolPool(size=config.size if isinstance(config, cfg.SobolGenerator) else 4096)
    if kind == "dataset":
        return DatasetPool(config.path, base_dir=base_dir)
    if kind in ("crystal", "substitution"):
        from generators.crystal.pipeline import FunnelGenerator
        from generators.crystal.substitution import SubstitutionGenerator

        crystal = config if isinstance(config, cfg.CrystalGenerator) else cfg.CrystalGenerator()
        return FunnelGenerator(SubstitutionGenerator(crystal.substitution()), crystal.funnel)
    if kind == "random_field":
        from generators.inverse.images import RandomFieldPool

        return RandomFieldPool(size=config.size if isinstance(config, cfg.RandomFieldGenerator) else 256)
    if kind == "cinn":
        return _cinn(config)
    if kind == "janus":
        from generators.inverse.janus_generator import JanusGenerator

        return JanusGenerator(training=config.training.model_dump(), inversion=config.inversion.model_dump(),
                              max_candidates=config.max_candidates, min_measurements=config.min_measurements,
                              score_model=None if config.score_model is None else config.score_model.model_dump())
    if kind == "plugin":
        return build_plugin(config.name, config.settings)
    raise PoolError(f"generator.type: unknown generator {kind!r}")  # the config's discriminator makes this unreachable


def _cinn(config: cfg.CINNGenerator) -> Any:
    from generators.inverse.cinn import FlowTraining
    from generators.inverse.matdesinne import CINNGenerator

    flow = FlowTraining(**{name: getattr(config, name) for name in config.FLOW_FIELDS})
    return CINNGenerator(tolerance=config.tolerance, localise_steps=config.localise_steps,
                         surrogate_epochs=config.surrogate_epochs, max_candidates=config.max_candidates,
                         min_measurements=config.min_measurements, training=flow,
                         ranking_members=config.ranking_members)


def installed_plugins() -> dict[str, EntryPoint]:
    """The generator plug-ins installed packages register, by name (nothing is imported)."""
    return {ep.name: ep for ep in entry_points(group=cfg.PLUGIN_GROUP)}


def build_plugin(name: str, settings: dict[str, Any]) -> Any:
    """The plug-in generator registered as ``name``, built with ``settings``.

    The entry point's object is called with the settings as keyword arguments; when it carries a
    pydantic ``config_model`` attribute, the settings are validated by that model first and the factory
    receives the model instead (so a plug-in's settings are typed and refused by field, like ours).
    """
    plugins = installed_plugins()
    if name not in plugins:
        known = ", ".join(sorted(plugins)) or "none is installed"
        raise PoolError(f"generator.name: no generator plug-in {name!r} is installed (group {cfg.PLUGIN_GROUP!r}: "
                        f"{known}); install the package that provides it")
    try:
        factory = plugins[name].load()
    except Exception as exc:  # a broken installed package: say which, do not crash the reader
        raise PoolError(f"generator.name: plug-in {name!r} ({plugins[name].value}) cannot be loaded: {exc}") from exc
    model = getattr(factory, "config_model", None)
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return factory(model.model_validate(settings))
        return factory(**settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PoolError(f"generator.settings: plug-in {name!r} refuses these settings: {problems}") from exc
    except (TypeError, ValueError) as exc:
        raise PoolError(f"generator.settings: plug-in {name!r} refuses these settings: {exc}") from exc


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

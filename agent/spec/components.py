"""The campaign file's pluggable parts, checked when the file is read rather than when they first run.

The generator is built at every iteration and the surrogate first fitted after the initial design,
so a misspelt ``generator.type`` or ``surrogate.settings`` key used to surface only after the
initial design's experiments had been run. :func:`component_problems` builds the generator (cheap:
generators load data and models on first use), reads a crystal space's seed CIFs, and checks the
surrogate's kind and settings with the same functions the loop uses, so the reader and the loop
cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from agent.spec.campaign import Campaign

Loc = tuple[str | int, ...]


def component_problems(campaign: Campaign, base_dir: Path | None = None) -> list[tuple[Loc, str]]:
    """``(field path, message)`` for each generator setting, seed CIF or surrogate setting the loop would refuse.

    ``base_dir`` is where the campaign file lives (relative data paths are resolved against it, as the
    loop resolves them); without it (text with no file) relative dataset and CIF paths are not checked.
    """
    from generators.pool import PoolError
    from generators.registry import build_generator
    from surrogates.settings import KINDS, check_campaign_surrogate

    problems: list[tuple[Loc, str]] = []
    config = campaign.generator
    try:
        generator = build_generator(config.type, config.settings, campaign.space, base_dir=base_dir)
    except PoolError as exc:
        field, _, message = str(exc).partition(": ")
        where = ("generator", "type") if field == "generator.type" else ("generator", "settings")
        problems.append((where, message if field.startswith("generator.") else str(exc)))
    else:
        problems += _data_file_problems(generator, base_dir)
    problems += _seed_cif_problems(campaign, base_dir)
    surrogate = campaign.surrogate
    try:
        check_campaign_surrogate(surrogate.type, surrogate.settings)
    except ValueError as exc:
        where = ("surrogate", "type") if surrogate.type not in KINDS else ("surrogate", "settings")
        problems.append((where, str(exc)))
    return problems


def _data_file_problems(generator: object, base_dir: Path | None) -> list[tuple[Loc, str]]:
    """Each data file a generator names in its settings (``data_files``) that is not there.

    Relative paths are judged only when there is a campaign file to resolve them against.
    """
    data_files = getattr(generator, "data_files", None)
    if data_files is None:
        return []
    return [
        (("generator", "settings", *setting), f"no file at {path}")
        for setting, path in data_files(base_dir).items()
        if (path.is_absolute() or base_dir is not None) and not path.is_file()
    ]


def _seed_cif_problems(campaign: Campaign, base_dir: Path | None) -> list[tuple[Loc, str]]:
    """Each seed CIF of a crystal space read as the generator will read it (a missing or broken file, an
    unknown element); relative paths are resolved next to the campaign file, as the loop resolves them."""
    from matloop.space import CrystalSpace

    space = campaign.space
    if not isinstance(space, CrystalSpace) or not space.seed_cifs:
        return []
    from generators.crystal.io import CrystalInputError, load_cif, seed_cif_paths

    problems: list[tuple[Loc, str]] = []
    for i, path in enumerate(seed_cif_paths(space.seed_cifs, base_dir)):
        if not path.is_absolute() and base_dir is None:
            continue  # no campaign file to resolve it against
        try:
            load_cif(path)
        except CrystalInputError as exc:
            problems.append((("space", "seed_cifs", i), str(exc)))
    return problems

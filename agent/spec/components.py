"""The campaign file's pluggable parts, checked when the file is read rather than when they first run.

The typed configs (:mod:`generators.config`, :mod:`surrogates.config`, ...) already refuse a misspelt
type or setting when the campaign model is validated. What they cannot know is whether the files a
generator reads exist, whether a plug-in is installed and takes its settings, or whether a crystal
space's seed CIFs read: :func:`component_problems` builds the generator as the loop will (cheap:
generators load data and models on first use) and reads the seed CIFs, so the reader and the loop
cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from agent.spec.campaign import Campaign

Loc = tuple[str | int, ...]


def component_problems(campaign: Campaign, base_dir: Path | None = None) -> list[tuple[Loc, str]]:
    """``(field path, message)`` for each generator data file, plug-in or seed CIF the loop would refuse.

    ``base_dir`` is where the campaign file lives (relative data paths are resolved against it, as the
    loop resolves them); without it (text with no file) relative dataset and CIF paths are not checked.
    """
    from generators.pool import PoolError
    from generators.registry import build_generator

    problems: list[tuple[Loc, str]] = []
    try:
        generator = build_generator(campaign.generator, campaign.space, base_dir=base_dir)
    except PoolError as exc:
        field, _, message = str(exc).partition(": ")
        if field.startswith("generator."):
            problems.append((tuple(field.split(".")), message))
        else:
            problems.append((("generator",), str(exc)))
    else:
        problems += _data_file_problems(generator, base_dir)
    problems += _seed_cif_problems(campaign, base_dir)
    return problems


def _data_file_problems(generator: object, base_dir: Path | None) -> list[tuple[Loc, str]]:
    """Each data file a generator's config names (``data_files``) that is not there.

    Relative paths are judged only when there is a campaign file to resolve them against.
    """
    data_files = getattr(generator, "data_files", None)
    if data_files is None:
        return []
    return [
        (("generator", *setting), f"no file at {path}")
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

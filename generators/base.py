"""The generator seam: what every candidate proposer looks like to the loop.

Kept narrow on purpose (like BoTorch's ``AcquisitionFunction``): one method,
``propose``, that turns a design space and a context into candidates.  The
context carries everything a generator may want from the campaign — the seed,
what has been seen already, the target, the current surrogate — so that a
generator holds no campaign state of its own and a resumed campaign proposes
exactly what it would have proposed before the interruption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from matloop.types import Candidate


@dataclass
class GenerationContext:
    """What the loop tells a generator about the campaign at this iteration.

    ``surrogate`` is either a scoring callable (``list[Candidate] -> sequence of
    floats``, higher is more promising) or a BoTorch model; generators that can
    use neither ignore it.  ``extra`` holds generator-specific material, e.g.
    ``known_structures`` (fingerprint -> ``Structure.as_dict()``) so a crystal
    generator can refine its de-duplication with ``StructureMatcher``.
    """

    seed: int = 0
    known_fingerprints: set[str] = field(default_factory=set)
    target: dict[str, Any] | None = None
    surrogate: object | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: where the campaign file lives: relative paths in the space (seed CIFs) and in generator settings (data
    #: and model files) resolve against it, not the cwd
    base_dir: Path | None = None


def resolve_path(path: str | Path, base_dir: Path | None) -> Path:
    """A path from a campaign file as the path to read: relative ones lie next to the campaign file.

    A run started from the Prefect UI has another working directory than the user's shell, so the
    campaign file's folder (``GenerationContext.base_dir``) is the only stable anchor. Without it
    (a campaign given as text) a relative path stays relative to the working directory.
    """
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() or base_dir is None else base_dir / resolved


@runtime_checkable
class Generator(Protocol):
    """Proposes up to ``n`` candidates from ``space``, deterministic in ``context.seed``.

    Generators should avoid ``context.known_fingerprints``; the loop drops any that slip through.
    A generator that reads files named in its settings may also offer
    ``data_files(base_dir) -> {setting path: Path}``: the campaign-file reader then reports a missing
    file with its line, before any experiment (``agent/spec/components.py``).
    """

    name: str

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]: ...

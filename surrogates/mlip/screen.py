"""The MLIP screening stage: relax, estimate stability, apply the campaign's thresholds."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Structure

from surrogates.mlip.references import ElementalReferences
from surrogates.mlip.relax import Relaxer, RelaxResult, make_relaxer, relax_all
from surrogates.mlip.stability import StabilityEstimate, estimate_stability

#: Structures per chunk when relaxations fan out (:mod:`matloop.compute`): fixed, so the chunks (and a batched
#: relaxer's batches) are the same whatever the cluster; one chunk is one batch of the batched relaxer (its default
#: ``batch_size``), which is where batching pays (benchmarks/RESULTS-mlip.md).
RELAX_CHUNK = 32


class MLIPSettings(BaseModel):
    """Screening settings (campaign ``generator.settings.mlip`` or an ``mlip`` adapter's settings)."""

    model_config = ConfigDict(extra="forbid")
    model_path: str | None = Field(default=None, description="a MACE model file; CHGNet when absent")
    trust_model_file: bool = Field(
        default=False,
        description="load a MACE model saved whole (a pickle, e.g. MACE-MP) with torch's weights_only=False, "
        "which runs code from the file: only for files you trust. matloop's own weights files need no trust.",
    )
    fmax: float = Field(default=0.1, gt=0, description="force convergence, eV/Å")
    steps: int = Field(default=200, ge=1)
    max_e_above_hull: float = Field(default=0.1, ge=0, description="eV/atom; above it a candidate is unstable")
    max_formation_energy: float | None = Field(default=0.0, description="eV/atom; None disables the check")
    threads: int | None = Field(default=1, ge=1)
    batch_size: int = Field(
        default=32, ge=1, le=4096,
        description="CHGNet structures relaxed together, one batched optimiser step for all (surrogates/mlip/"
        "batched.py; on a CPU the model is called in parts of bounded size); 1 relaxes one at a time with CHGNet's "
        "StructOptimizer",
    )
    optimizer: Literal["bfgs-elastic", "bfgs", "fire"] = Field(
        default="bfgs-elastic",
        description="the batched CHGNet relaxer's optimiser over positions and cell (ASE's BFGS or FIRE over the "
        "Fréchet cell filter, surrogates/mlip/bfgs.py and fire.py). The default, BFGS whose starting Hessian has "
        "an elastic solid's curvature for the cell, is the fastest measured: 24 force evaluations per 20-atom "
        "cell against 37 for ASE's plain BFGS (70 eV/Å² for everything) and 41 for FIRE, 9 against 17 and 30 "
        "for 5-atom cells, at the same fmax; energies agree within ~1 meV/atom, except that a cell starting near "
        "a saddle can stop there sooner (1 of 24 measured, 21 meV/atom higher; benchmarks/RESULTS-mlip.md). "
        "batch_size 1 and MACE relax with FIRE",
    )
    cache_dir: str | None = None


@dataclass(frozen=True)
class ScreenResult:
    """What the MLIP said about one structure, and whether it passes the thresholds (with why not)."""

    relax: RelaxResult
    stability: StabilityEstimate | None
    stable: bool
    reason: str | None = None


class MLIPScreen:
    """Relax with one potential, place on that potential's hull, keep what is (meta)stable.

    The hull holds the elemental references and every compound this screen has
    relaxed so far (this batch and earlier ones), so it tightens as a campaign goes.
    """

    def __init__(self, settings: MLIPSettings | None = None, relaxer: Relaxer | None = None) -> None:
        self.settings = settings or MLIPSettings()
        self.relaxer = relaxer or build_relaxer(self.settings)
        # how chunk functions reach the relaxer: itself here; rebuilt from the settings in a worker process
        self._handle = RelaxerHandle(self.relaxer, None if relaxer is not None else self.settings)
        self.references = ElementalReferences(self.relaxer, self.settings.cache_dir)
        #: every compound this screen has relaxed: later batches are placed on a hull that includes them
        self.known_entries: list[PDEntry] = []

    def screen(self, structures: Sequence[Structure]) -> list[ScreenResult]:
        from matloop.compute import map_chunked

        relaxed = map_chunked(functools.partial(relax_chunk, self._handle), list(structures), RELAX_CHUNK,
                              name="mlip-relax")
        good = [i for i, r in enumerate(relaxed) if r.ok]
        items = [(relaxed[i].structure, relaxed[i].energy_per_atom) for i in good]
        estimates = estimate_stability(items, self.references, self.known_entries)  # type: ignore[arg-type]
        self.known_entries.extend(PDEntry(s.composition, e * len(s)) for s, e in items)  # type: ignore[union-attr,operator]
        by_index = dict(zip(good, estimates, strict=True))
        out = []
        for i, r in enumerate(relaxed):
            est = by_index.get(i)
            if est is None:
                out.append(ScreenResult(r, None, False, r.error or "relaxation gave no energy"))
                continue
            out.append(ScreenResult(r, est, *self._verdict(est)))
        return out

    def _verdict(self, est: StabilityEstimate) -> tuple[bool, str | None]:
        s = self.settings
        if est.e_above_hull > s.max_e_above_hull:
            return False, f"e_above_hull {est.e_above_hull:.3f} eV/atom > {s.max_e_above_hull}"
        if s.max_formation_energy is not None and est.formation_energy_per_atom > s.max_formation_energy:
            return False, f"formation energy {est.formation_energy_per_atom:.3f} eV/atom > {s.max_formation_energy}"
        return True, None


def relax_chunk(handle: RelaxerHandle, structures: list[Structure]) -> list[RelaxResult]:
    """Relax one chunk: in one batch when the relaxer offers ``relax_many``, else one structure at a time."""
    return relax_all(handle.relaxer, structures)


class RelaxerHandle:
    """The screen's relaxer as a chunk function sees it, in this process or in a Dask worker.

    Pickled for a worker, a handle built from settings carries only the settings: the worker builds the potential
    once and keeps it (:func:`_worker_handle`), rather than receiving its weights with every chunk. A relaxer
    given ready-made (no settings) travels whole.
    """

    def __init__(self, relaxer: Relaxer, settings: MLIPSettings | None) -> None:
        self.relaxer = relaxer
        self.settings = settings

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.settings is None:
            return RelaxerHandle, (self.relaxer, None)
        return _worker_handle, (self.settings.model_dump_json(),)


_WORKER_RELAXERS: dict[str, Relaxer] = {}
_WORKER_LOCK = threading.Lock()


def build_relaxer(settings: MLIPSettings) -> Relaxer:
    """The relaxer the settings name (MACE from a model file, else CHGNet)."""
    return make_relaxer(settings.model_path, fmax=settings.fmax, steps=settings.steps, threads=settings.threads,
                        trust_model_file=settings.trust_model_file, batch_size=settings.batch_size,
                        optimizer=settings.optimizer)


def _worker_handle(settings_json: str) -> RelaxerHandle:
    """A handle unpickled in a worker: the relaxer for these settings, built on first use in this process."""
    with _WORKER_LOCK:
        relaxer = _WORKER_RELAXERS.get(settings_json)
        settings = MLIPSettings.model_validate_json(settings_json)
        if relaxer is None:
            relaxer = _WORKER_RELAXERS[settings_json] = build_relaxer(settings)
    return RelaxerHandle(relaxer, settings)

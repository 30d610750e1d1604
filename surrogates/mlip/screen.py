"""The MLIP screening stage: relax, estimate stability, apply the campaign's thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Structure

from surrogates.mlip.references import ElementalReferences
from surrogates.mlip.relax import Relaxer, RelaxResult, make_relaxer, relax_all
from surrogates.mlip.stability import StabilityEstimate, estimate_stability


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
        description="CHGNet structures relaxed together, one batched model call per optimiser step "
        "(surrogates/mlip/batched.py); 1 relaxes one at a time with CHGNet's StructOptimizer",
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
        self.relaxer = relaxer or make_relaxer(
            self.settings.model_path,
            fmax=self.settings.fmax,
            steps=self.settings.steps,
            threads=self.settings.threads,
            trust_model_file=self.settings.trust_model_file,
            batch_size=self.settings.batch_size,
        )
        self.references = ElementalReferences(self.relaxer, self.settings.cache_dir)
        #: every compound this screen has relaxed: later batches are placed on a hull that includes them
        self.known_entries: list[PDEntry] = []

    def screen(self, structures: Sequence[Structure]) -> list[ScreenResult]:
        relaxed = relax_all(self.relaxer, structures)
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

"""The whole crystal funnel behind the ``Generator`` protocol, for the campaign loop.

``FunnelGenerator.propose`` draws a batch from the substitution generator, runs
it through validity, de-duplication (against the campaign's known fingerprints
and structures), novelty and, when configured, MLIP screening, and returns the
survivors with their refined fingerprints.  The batch's :class:`FunnelRates`
and every rejection stay on the generator (``last_outcome``) for the loop to
store next to the pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generators.base import GenerationContext
from generators.config import FunnelSettings, SubstitutionSettings
from generators.crystal.chemistry import OxidationRules
from generators.crystal.dedup import StructureRegistry
from generators.crystal.funnel import FunnelOutcome, run_funnel, structures_of
from generators.crystal.novelty import ReferenceSet
from generators.crystal.substitution import SubstitutionGenerator, resolve_data_path
from generators.crystal.validity import ValidityRules
from matloop.space import CrystalSpace
from matloop.types import Candidate


@dataclass
class FunnelGenerator:
    """Substitution generator + validity + de-dup + novelty (+ MLIP) as one ``Generator``."""

    generator: SubstitutionGenerator
    funnel: FunnelSettings = field(default_factory=FunnelSettings)
    name: str = "substitution+funnel"
    last_outcome: FunnelOutcome | None = None
    _reference: ReferenceSet | None = None
    _screen: Any = None

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None = None) -> FunnelGenerator:
        settings = dict(settings or {})
        funnel = FunnelSettings.model_validate(settings.pop("funnel", {}) or {})
        return cls(SubstitutionGenerator(SubstitutionSettings.model_validate(settings)), funnel)

    def propose(self, space: CrystalSpace, context: GenerationContext, n: int) -> list[Candidate]:
        candidates = self.generator.propose(space, context, n)
        structures = structures_of(candidates)
        registry = StructureRegistry.from_known(
            context.known_fingerprints, context.extra.get("known_structures"), symprec=self.generator.settings.symprec
        )
        rules = ValidityRules(
            charge_balance=space.charge_balance,
            min_distance_factor=self.funnel.min_distance_factor,
            density_range=self.funnel.density_range,
            max_atoms=space.max_atoms,
        )
        outcome = run_funnel(
            structures, registry, rules, OxidationRules(space.oxidation_states),
            self._reference_set(context.base_dir), self._mlip(context.base_dir),
        )
        self.last_outcome = outcome
        return [
            candidates[i].model_copy(update={"fingerprint_override": outcome.fingerprints[i]})
            for i in outcome.survivors
        ]

    def data_files(self, base_dir: Path | None) -> dict[tuple[str, ...], Path]:
        """The files the funnel will read, by their setting (checked when the campaign file is read)."""
        files = self.generator.data_files(base_dir)
        if self.funnel.novelty_reference:
            files[("funnel", "novelty_reference")] = resolve_data_path(self.funnel.novelty_reference, base_dir)
        model_path = (self.funnel.mlip or {}).get("model_path")
        if model_path:
            files[("funnel", "mlip", "model_path")] = resolve_data_path(model_path, base_dir)
        return files

    def _reference_set(self, base_dir: Path | None) -> ReferenceSet | None:
        if self.funnel.novelty_reference and self._reference is None:
            self._reference = ReferenceSet.from_csv(resolve_data_path(self.funnel.novelty_reference, base_dir))
        return self._reference

    def _mlip(self, base_dir: Path | None) -> Any:
        """The MLIP screen; its model file and cache folder, when relative, lie next to the campaign file."""
        if self.funnel.mlip is None:
            return None
        if self._screen is None:
            from surrogates.mlip import MLIPScreen, MLIPSettings

            settings = dict(self.funnel.mlip)
            for key in ("model_path", "cache_dir"):
                if settings.get(key):
                    settings[key] = str(resolve_data_path(settings[key], base_dir))
            self._screen = MLIPScreen(MLIPSettings.model_validate(settings))
        return self._screen


def funnel_generator(**settings: Any) -> FunnelGenerator:
    """The funnel from plain keyword settings (tests, benchmarks); campaigns build it from ``CrystalGenerator``."""
    return FunnelGenerator.from_settings(settings)

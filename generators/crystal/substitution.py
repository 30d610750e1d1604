"""The substitution generator: decorate prototypes and substitute species in seed crystals.

How a proposal is made:

1. pick a template (a named prototype or a seed CIF) and, for each of its
   sublattices, what fills it (one allowed element, or one of the sublattice's
   allowed compositions such as ``O2N`` for a mixed-anion perovskite);
2. keep it only if it can be charge-balanced with plausible oxidation states
   (anion sublattices negative, the others positive);
3. weight it by pymatgen's data-driven substitution probabilities (Hautier et al.,
   ICSD-derived) of the chosen species replacing the template's reference species —
   Ba2+ for Sr2+ is likely, Ba2+ for Ti4+ is not;
4. optionally steer by a surrogate score of the built structures;
5. draw the batch without replacement in proportion to the (steered) weights
   (Gumbel top-k), rescale each cell's volume (pymatgen's data-mined bond-length
   scaling, DLS, vectorised per template in :mod:`generators.crystal.volume`) and
   fingerprint it.

Sampling rather than enumerating keeps a 10,000-candidate batch cheap when the
combinatorial space has millions of decorations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Composition, Element, Species, Structure

from generators.base import GenerationContext, resolve_path
from generators.config import SubstitutionSettings
from generators.crystal.chemistry import OxidationRules, SubstitutionScorer, shared_scorer
from generators.crystal.dedup import FINGERPRINT_PREFIX, space_group_number
from generators.crystal.io import load_cif, seed_cif_paths
from generators.crystal.novelty import ReferenceSet
from generators.crystal.prototypes import Template, named_prototype, template_from_structure
from generators.crystal.volume import TemplateVolumes
from matloop.space import CrystalSpace
from matloop.types import Candidate, CandidateKind


@dataclass
class GenerationStats:
    """What happened to the decorations drawn, so nothing disappears unexplained."""

    drawn: int = 0
    repeated: int = 0
    shared_sites: int = 0
    not_charge_balanced: int = 0
    outside_chemical_systems: int = 0
    outside_reference: int = 0
    no_reference_match: int = 0
    too_many_atoms: int = 0
    already_known: int = 0
    proposed: int = 0


@dataclass
class _Draft:
    template: Template
    fillings: dict[str, list[str]]
    log_weight: float
    structure: Structure | None = None


def _fill_options(
    template: Template, label: str, space: CrystalSpace, settings: SubstitutionSettings, rules: OxidationRules
) -> list[list[str]]:
    """Every way to fill sublattice ``label`` of ``template``: lists of element symbols, one per site."""
    m = template.multiplicity(label)
    ref = template.reference_species[label]
    anion = (ref.oxi_state or 0) < 0
    # the campaign's space says it (``space.site_sets``); generator settings may still override it per label
    site_sets = {**space.site_sets, **settings.site_sets}
    if label in site_sets:
        options = []
        for text in site_sets[label]:
            comp = Composition(text)
            counts = comp.get_el_amt_dict()
            total = sum(counts.values())
            if abs(total - round(total)) > 1e-9 or m % round(total):
                raise ValueError(
                    f"site_sets[{label!r}] entry {text!r} has {total:g} atoms; sublattice {label!r} "
                    f"of {template.name} has {m} sites (the entry must divide it)"
                )
            rep = m // round(total)
            options.append([el for el, n in counts.items() for _ in range(int(round(n)) * rep)])
        return options
    if label in space.sites:
        elements = list(space.sites[label])
    else:
        pool = list(space.elements) or sorted({e for cs in space.chemical_systems for e in cs.split("-")})
        elements = [e for e in pool if (rules.is_anion(e) if anion else rules.is_cation(e))]
    for e in elements:
        if not Element.is_valid_symbol(e):
            raise ValueError(f"sites[{label!r}] names unknown element {e!r}")
    return [[e] * m for e in elements]


def _steering_callable(surrogate: object) -> Callable[[Sequence[Candidate]], Sequence[float]] | None:
    """A plain scoring callable steers; a BoTorch model (it has ``posterior``) needs features we lack here."""
    if surrogate is None or hasattr(surrogate, "posterior") or not callable(surrogate):
        return None
    return surrogate  # type: ignore[return-value]


def resolve_data_path(path: str, base_dir: Path | None = None) -> Path:
    """A data-file setting as the path to read: ``dataset:perov5/perov5_val.csv`` is the bundled or shared
    copy (see :mod:`matloop.data`); any other path as :func:`generators.base.resolve_path` reads it."""
    if path.startswith("dataset:"):
        from matloop.data import dataset_path

        return Path(dataset_path(path.removeprefix("dataset:")))
    return resolve_path(path, base_dir)


def _gumbel_top_k(log_weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` draws without replacement with probability proportional to ``exp(log_weights)``."""
    keys = log_weights + rng.gumbel(size=len(log_weights))
    return np.argsort(-keys)[:k]


@dataclass
class SubstitutionGenerator:
    """Proposes crystal structures for a :class:`CrystalSpace` (see the module docstring)."""

    settings: SubstitutionSettings = field(default_factory=SubstitutionSettings)
    name: str = "substitution"
    stats: GenerationStats = field(default_factory=GenerationStats)
    _scorer: SubstitutionScorer | None = None
    _volumes: dict[str, TemplateVolumes] = field(default_factory=dict)
    _reference_set: Any = None
    _space_groups: dict[tuple, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None = None) -> SubstitutionGenerator:
        return cls(settings=SubstitutionSettings.model_validate(settings or {}))

    def templates(self, space: CrystalSpace, base_dir: Path | None = None) -> list[Template]:
        out = [named_prototype(p) for p in space.prototypes]
        out += [template_from_structure(str(path), load_cif(path))
                for path in seed_cif_paths(space.seed_cifs, base_dir)]
        return [t for t in out if t.num_sites <= space.max_atoms]

    def propose(self, space: CrystalSpace, context: GenerationContext, n: int) -> list[Candidate]:
        if not isinstance(space, CrystalSpace):
            raise TypeError(f"the substitution generator needs a crystal space, not {type(space).__name__}")
        self.stats = GenerationStats()
        if n <= 0:
            return []
        rng = np.random.default_rng(context.seed)
        rules = OxidationRules(space.oxidation_states)
        self._scorer = self._scorer or shared_scorer()
        templates = self.templates(space, context.base_dir)
        if not templates:
            raise ValueError(f"no prototype or seed fits max_atoms={space.max_atoms}")
        options = {
            t.name: {lb: _fill_options(t, lb, space, self.settings, rules) for lb in t.labels} for t in templates
        }
        for t in templates:
            empty = [lb for lb, opts in options[t.name].items() if not opts]
            if empty:
                raise ValueError(f"nothing may occupy sublattices {empty} of {t.name}; check elements/sites")
        systems = [frozenset(cs.split("-")) for cs in space.chemical_systems]
        reference = self._reference_formulas(context.base_dir)
        if reference is not None and self.settings.reference_match and self._reference_set is None:
            self._reference_set = ReferenceSet.from_csv(self._reference_path(context.base_dir))
        scorer = self._scorer
        steering = _steering_callable(context.surrogate)
        wanted = n * (self.settings.oversample if steering else 1)
        drafts: list[_Draft] = []
        seen_decorations: set[tuple] = set()
        budget = n * self.settings.max_attempts_per_candidate
        # pick templates in proportion to how many decorations they have, so that every
        # decoration is equally likely a priori (a 2-site rocksalt is exhausted long before a spinel)
        sizes = np.array([math.prod(len(o) for o in options[t.name].values()) for t in templates], dtype=float)
        template_p = sizes / sizes.sum()
        # a small space (the 30 decorations of a 3-prototype binary space) is exhausted long before the
        # attempt budget: stop once every decoration has been seen instead of drawing repeats for minutes
        total = float(sizes.sum())
        while len(drafts) < wanted * 2 and self.stats.drawn < budget and len(seen_decorations) < total:
            self.stats.drawn += 1
            t = templates[rng.choice(len(templates), p=template_p)]
            fill = {lb: opts[rng.integers(len(opts))] for lb, opts in options[t.name].items()}
            ident = (t.name, tuple(tuple(v) for v in fill.values()))
            if ident in seen_decorations:
                self.stats.repeated += 1
                continue
            seen_decorations.add(ident)
            draft = self._score(t, fill, rules, scorer, systems, reference)
            if draft is not None:
                drafts.append(draft)
        chosen = self._choose(drafts, n, wanted, rng, steering, context)
        proposals: list[Candidate] = []
        for d in chosen:
            cand = self._candidate(d, context)
            if cand is None:
                continue
            proposals.append(cand)
            if len(proposals) == n:
                break
        self.stats.proposed = len(proposals)
        return proposals

    def data_files(self, base_dir: Path | None) -> dict[tuple[str, ...], Path]:
        """The files this generator will read, by their setting (checked when the campaign file is read)."""
        if self.settings.reference_formulas is None:
            return {}
        return {("reference_formulas",): self._reference_path(base_dir)}

    def _reference_path(self, base_dir: Path | None) -> Path:
        return resolve_data_path(self.settings.reference_formulas or "", base_dir)

    def _reference_formulas(self, base_dir: Path | None) -> frozenset[str] | None:
        if self.settings.reference_formulas is None:
            return None
        import pandas as pd

        resolved = self._reference_path(base_dir)
        try:
            formulas = pd.read_csv(resolved, usecols=["formula"])["formula"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"reference_formulas {resolved}: cannot read a 'formula' column ({exc})") from exc
        return frozenset(Composition(f).reduced_formula for f in formulas)

    def _score(
        self,
        template: Template,
        fill: dict[str, list[str]],
        rules: OxidationRules,
        scorer: SubstitutionScorer,
        systems: list[frozenset[str]],
        reference: frozenset[str] | None,
    ) -> _Draft | None:
        if self.settings.distinct_sublattices:
            cation_sets = [
                frozenset(v) for lb, v in fill.items() if (template.reference_species[lb].oxi_state or 0) >= 0
            ]
            if len(set().union(*cation_sets)) < sum(len(s) for s in cation_sets):
                self.stats.shared_sites += 1
                return None
        amounts: dict[str, float] = {}
        for els in fill.values():
            for e in els:
                amounts[e] = amounts.get(e, 0) + 1
        if systems and not any(set(amounts) <= s for s in systems):
            self.stats.outside_chemical_systems += 1
            return None
        if reference is not None and Composition(amounts).reduced_formula not in reference:
            self.stats.outside_reference += 1
            return None
        anions = frozenset(
            e for lb, els in fill.items() if (template.reference_species[lb].oxi_state or 0) < 0 for e in els
        )
        oxi = rules.balance(amounts, anions)
        if oxi is None:
            self.stats.not_charge_balanced += 1
            return None
        if reference is not None and self.settings.reference_match:
            # StructureMatcher scales volumes, so the unscaled decoration is enough to test the match
            if self._reference_set.match(template.decorate(fill)) is None:
                self.stats.no_reference_match += 1
                return None
        log_weight = 0.0
        for lb, els in fill.items():
            ref = template.reference_species[lb]
            for e in set(els):
                log_weight += scorer.log_prob(Species(e, oxi[e]), ref)
        return _Draft(template, fill, log_weight / self.settings.temperature)

    def _choose(
        self,
        drafts: list[_Draft],
        n: int,
        wanted: int,
        rng: np.random.Generator,
        steering: Callable[[Sequence[Candidate]], Sequence[float]] | None,
        context: GenerationContext,
    ) -> list[_Draft]:
        if not drafts:
            return []
        logw = np.array([d.log_weight for d in drafts])
        # every draft, in sampled order: later ones replace proposals skipped as known or off-reference
        order = [drafts[i] for i in _gumbel_top_k(logw, len(drafts), rng)]
        if steering is None:
            return order
        picks, rest = order[: wanted + n], order[wanted + n :]
        cands = [self._candidate(d, context, check_known=False) for d in picks]
        scores = np.asarray(steering([c for c in cands if c is not None]), dtype=float)
        full = np.full(len(picks), -np.inf)
        full[[i for i, c in enumerate(cands) if c is not None]] = scores
        finite = np.isfinite(full)
        z = np.zeros_like(full)
        if finite.sum() > 1 and full[finite].std() > 0:
            z[finite] = (full[finite] - full[finite].mean()) / full[finite].std()
        z[~finite] = -np.inf
        steered = np.array([d.log_weight for d in picks]) + self.settings.steer_weight * z
        ranked = [picks[i] for i in _gumbel_top_k(steered, len(picks), rng) if np.isfinite(steered[i])]
        return ranked + rest

    def _fingerprint(self, draft: _Draft) -> str:
        """Coarse key; the space group depends only on which sites hold equal species, so cache it by that."""
        assert draft.structure is not None
        species = [str(sp) for sp in draft.structure.species]
        first: dict[str, int] = {}
        coloring = tuple(first.setdefault(sp, len(first)) for sp in species)
        key = (draft.template.name, coloring)
        if key not in self._space_groups:
            self._space_groups[key] = space_group_number(draft.structure, self.settings.symprec)
        return f"{FINGERPRINT_PREFIX}{draft.structure.composition.reduced_formula}:{self._space_groups[key]}"

    def _candidate(self, draft: _Draft, context: GenerationContext, check_known: bool = True) -> Candidate | None:
        if draft.structure is None:
            s = draft.template.decorate(draft.fillings)
            if self.settings.rescale_volume:
                t = draft.template
                if t.name not in self._volumes:
                    self._volumes[t.name] = TemplateVolumes(t)
                volume = self._volumes[t.name].predict([str(sp) for sp in s.species])
                if math.isfinite(volume) and volume > 0:
                    s.scale_lattice(volume)
            draft.structure = s
        fp = self._fingerprint(draft)
        if check_known and self.settings.skip_known and fp in context.known_fingerprints:
            self.stats.already_known += 1
            return None
        data = draft.structure.as_dict()
        data["formula"] = draft.structure.composition.reduced_formula
        return Candidate(
            kind=CandidateKind.STRUCTURE,
            structure=data,
            origin=f"{self.name}:{draft.template.name}",
            fingerprint_override=fp,
        )


def substitution_generator(**settings: Any) -> SubstitutionGenerator:
    """The substitution generator from plain keyword settings (tests, benchmarks)."""
    return SubstitutionGenerator.from_settings(settings)

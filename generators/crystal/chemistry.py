"""Oxidation states, charge balance and data-driven substitution likelihoods.

Charge balance is decided per composition with one oxidation state per element
(mixed valence is not considered), from the campaign's ``oxidation_states`` rules
or else pymatgen's ICSD-observed states.  Results are cached per composition: a
10,000-candidate batch has only a few hundred distinct compositions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability
from pymatgen.core import Element, Species


def default_oxidation_states(element: str) -> tuple[int, ...]:
    """Oxidation states pymatgen has seen in the ICSD (common states if none), most common first."""
    el = Element(element)
    states = tuple(el.icsd_oxidation_states) or tuple(el.common_oxidation_states)
    common = set(el.common_oxidation_states)
    return tuple(sorted(states, key=lambda s: (s not in common, abs(s))))


class OxidationRules:
    """Which oxidation states each element may take (campaign overrides, else pymatgen's data)."""

    def __init__(self, overrides: Mapping[str, Sequence[int]] | None = None) -> None:
        self._overrides = {el: tuple(states) for el, states in (overrides or {}).items()}
        self._balance = lru_cache(maxsize=65536)(self._balance_uncached)

    def __reduce__(self) -> tuple[type, tuple]:
        """Pickled (for a Dask worker: matloop.compute) as its overrides; the per-instance cache is rebuilt there."""
        return OxidationRules, (self._overrides or None,)

    def states(self, element: str) -> tuple[int, ...]:
        return self._overrides.get(element) or default_oxidation_states(element)

    def is_cation(self, element: str) -> bool:
        return any(s > 0 for s in self.states(element))

    def is_anion(self, element: str) -> bool:
        return any(s < 0 for s in self.states(element))

    def balance(
        self, amounts: Mapping[str, float], anions: frozenset[str] | None = None
    ) -> dict[str, int] | None:
        """A charge-neutral assignment (one state per element), preferring common states; ``None`` if none.

        With ``anions`` given (the elements on anion sublattices of a prototype), those
        must take negative states and all others positive ones — otherwise pymatgen's
        rare states (N-, Cu3+ with N+...) would make almost anything "balanced".
        """
        return self._balance(tuple(sorted(amounts.items())), anions)

    def _balance_uncached(
        self, items: tuple[tuple[str, float], ...], anions: frozenset[str] | None
    ) -> dict[str, int] | None:
        elements = [el for el, _ in items]
        amounts = [amt for _, amt in items]
        choices = [self.states(el) for el in elements]
        if anions is not None:
            choices = [
                tuple(s for s in c if (s < 0) == (el in anions) and s != 0)
                for el, c in zip(elements, choices, strict=True)
            ]
        if any(not c for c in choices):
            return None
        best: tuple[int, dict[str, int]] | None = None
        # product() walks states in preference order, so the first neutral one with the
        # lowest total rank is the most plausible; small cells keep this enumeration tiny.
        for combo in itertools.product(*(range(len(c)) for c in choices)):
            charge = sum(choices[i][k] * amounts[i] for i, k in enumerate(combo))
            if abs(charge) < 1e-6:
                rank = sum(combo)
                if best is None or rank < best[0]:
                    best = (rank, {el: choices[i][k] for i, (el, k) in enumerate(zip(elements, combo, strict=True))})
                    if rank == 0:
                        break
        return None if best is None else best[1]


class SubstitutionScorer:
    """Log-likelihood of replacing reference species by new ones (Hautier et al.'s ICSD-derived model).

    Wraps pymatgen's :class:`SubstitutionProbability` with a cache, because a batch
    asks about the same few hundred species pairs thousands of times.
    """

    def __init__(self, alpha: float = -5.0) -> None:
        self._model = SubstitutionProbability(alpha=alpha)
        self._log_prob = lru_cache(maxsize=65536)(self._log_prob_uncached)

    def _log_prob_uncached(self, new: str, reference: str) -> float:
        p = self._model.prob(Species.from_str(new), Species.from_str(reference))
        return math.log(max(p, 1e-12))

    def log_prob(self, new: Species, reference: Species) -> float:
        """log P(new substitutes for reference); identical species score log(1) = 0."""
        if str(new) == str(reference):
            return 0.0
        return self._log_prob(str(new), str(reference))


@lru_cache(maxsize=1)
def shared_scorer() -> SubstitutionScorer:
    """One scorer per process: loading pymatgen's substitution table takes about a second."""
    return SubstitutionScorer()

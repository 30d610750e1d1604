"""Cost-aware selection over (candidate, fidelity) pairs: what to measure, and how well.

The rule, in two steps:

1. **Which candidates**: the campaign's own batch selection (:func:`agent.selection.select_batch`, with its
   objectives, acquisition and pending points) on the posterior at the *target* fidelity. A candidate
   measured only at a cheaper fidelity stays in the pool: the cheap answer has moved its target posterior,
   and if that made it promising it is picked again (promotion). Jobs pending at any fidelity are pending.
2. **At which fidelity**: each pick goes to the fidelity with the most *removable target variance per unit
   cost* — ``Var[E(t(x) | y_f(x))] / cost_f``, the expected drop of the target posterior variance at ``x``
   from one measurement at ``f`` (see :mod:`surrogates.multifidelity`), divided by what it costs. A
   fidelity the candidate was already measured at removes (almost) nothing more and is not offered again.

**The initial design** (before any model) measures some points at every fidelity ("paired") and the rest at the
cheapest only (:func:`initial_design_fidelity`). Where every objective is a maximum or minimum, only the first
point is paired: the multi-fidelity model shares strength across fidelities, the cheap map's shape is what
locates an optimum and one target answer anchors its level; further target answers come where the model asks
for them rather than from blind pairs. Where an objective is a target *value*, the target's level and its scale
around that value both matter, and every other point (ranks 0, 2, ...; a batch of two or fewer all) is paired,
as before. Measured on the development problems of ``benchmarks/multifidelity.py``: one paired point needed less
cost than every other point on the two maximise/minimise problems and more on the target-value one
(``benchmarks/RESULTS-multifidelity.md``).

Why this simpler rule instead of BoTorch's ``qMultiFidelityKnowledgeGradient`` / ``qMultiFidelityMaxValueEntropy``:
those score a (point, fidelity) jointly by the value of information about the *maximum*, which needs a
continuous or sampled max-value and (for KG) fantasy models, supports one maximised objective, and ignores the
campaign's acquisition (targets, constraints, several objectives, exploit share, feasibility). Splitting the
decision keeps every one of those for *which* candidate, and uses the same information measure as
MF-MES/MF-GP-UCB (Kandasamy et al. 2016: query the cheap fidelity while it can still reduce the uncertainty
that matters) for *how well*. Its cost-sensitivity is what the tests check: an informative cheap fidelity is
used, a cheap fidelity that is uncorrelated noise (the model learns zero correlation) is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def one_anchor(objectives: Sequence[object]) -> bool:
    """True where every objective is a maximum or minimum: the initial design pairs only its first point
    (module docstring); False where one is a target value (every other point is paired)."""
    return all(getattr(o, "goal", None) in ("maximize", "minimize") for o in objectives)


def initial_design_fidelity(rank: int, size: int, fidelities: Sequence[str], anchor: bool = True) -> str | None:
    """An initial-design pick's fidelity in a batch of ``size``: ``None`` (every fidelity) or the cheapest.
    With ``anchor`` (:func:`one_anchor`) only rank 0 is paired; without, even ranks are, and every pick of a batch
    of two or fewer."""
    paired = rank == 0 if anchor else rank % 2 == 0 or size <= 2
    return None if paired else fidelities[0]


def initial_design_reason(fidelity: str | None, target: str, anchor: bool = True) -> str:
    """Why an initial-design pick goes where :func:`initial_design_fidelity` sends it."""
    if fidelity is None:
        return ("at every fidelity: one paired answer anchors the model's " + target if anchor else
                "at every fidelity: paired answers teach the model how the fidelities relate")
    return (f"at {fidelity} only: a cheap screen; "
            + (f"the first initial point is measured at {target} too" if anchor else
               f"every other initial point is measured at {target} too"))


def initial_target_results(size: int, anchor: bool = True) -> int:
    """Target-fidelity results an initial design of ``size`` points yields (:func:`initial_design_fidelity`):
    the model starts once there are as many."""
    if anchor:
        return min(size, 1)
    return size if size <= 2 else math.ceil(size / 2)


@dataclass
class FidelityChoice:
    """One pick's fidelity (index into the model's fidelities) and why."""

    fidelity: int
    reason: str
    removable: list[float]  # per fidelity, as a fraction of the target posterior variance
    value_per_cost: list[float]


def choose_fidelities(fitted, X: Tensor, allowed: Tensor | None = None) -> list[FidelityChoice]:
    """The fidelity for each row of ``X`` (the picked candidates' features) and the reason.

    ``fitted`` is a :class:`surrogates.multifidelity.MultiFidelitySurrogate`; ``allowed`` an ``(n, F)`` mask
    (False where the candidate already has a result or a job at that fidelity). The target fidelity is always
    allowed: a candidate with a target result is not in the pool.
    """
    names, costs, target = list(fitted.fidelities), torch.as_tensor(fitted.costs, dtype=torch.double), fitted.target
    R = fitted.removable_variance(X.to(torch.double))
    V = fitted.target_variance(X.to(torch.double)).clamp_min(1e-300)
    mask = torch.ones_like(R, dtype=torch.bool) if allowed is None else allowed.clone().to(torch.bool)
    mask[:, target] = True
    score = torch.where(mask, R / costs, torch.full_like(R, -torch.inf))
    out = []
    for i in range(len(X)):
        f = int(torch.argmax(score[i]))
        share = (R[i] / V[i]).clamp(0, 1)
        parts = [
            f"{names[j]}: {float(share[j]):.0%} at cost {float(costs[j]):g}"
            + ("" if bool(mask[i, j]) else " (already measured)")
            for j in range(len(names))
        ]
        if f == target:
            why = (f"at {names[f]} (the target): no cheaper fidelity removes more target variance per unit cost "
                   f"[{'; '.join(parts)}]")
        else:
            why = (f"at {names[f]}: removes {float(share[f]):.0%} of the {names[target]} variance for "
                   f"{float(costs[f] / costs[target]):.2g} of its cost [{'; '.join(parts)}]")
        out.append(FidelityChoice(
            fidelity=f, reason=why, removable=[float(v) for v in share],
            value_per_cost=[float(v) if torch.isfinite(v) else float("nan") for v in score[i]],
        ))
    return out


def measured_mask(fingerprints: Sequence[str], measured: dict[str, set[str]], fidelities: Sequence[str]) -> Tensor:
    """``(n, F)``: True where a fingerprint has no result or job at that fidelity yet (it may be measured there)."""
    return torch.tensor([[f not in measured.get(fp, set()) for f in fidelities] for fp in fingerprints],
                        dtype=torch.bool).reshape(len(fingerprints), len(fidelities))


@dataclass
class FidelityPick:
    """A pick of :func:`select_with_fidelities`: the pool row, its fidelity (name) and the whole reason."""

    index: int
    rank: int
    fidelity: str
    reason: str
    acquisition_value: object
    mean: object
    std: object


def select_with_fidelities(fitted, X_pool: Tensor, fingerprints: Sequence[str], jobs_at: dict[str, set[str]],
                           **select_kwargs) -> list[FidelityPick]:
    """The campaign's batch selection on the target posterior, then each pick's fidelity (module docstring).

    ``select_kwargs`` are :func:`agent.selection.select_batch`'s (objectives, q, observed and pending points at
    the target fidelity, acquisition, seed, ...); ``jobs_at`` maps a fingerprint to the fidelities it has jobs at.
    """
    from agent.selection import select_batch

    chosen = select_batch(fitted.model, X_pool, **select_kwargs)
    if not chosen:
        return []
    rows = [int(p.index) for p in chosen]
    allowed = measured_mask([fingerprints[i] for i in rows], jobs_at, fitted.fidelities)
    choices = choose_fidelities(fitted, X_pool[rows], allowed)
    return [
        FidelityPick(index=int(p.index), rank=int(p.rank), fidelity=fitted.fidelities[c.fidelity],
                     reason=f"{p.reason}; {c.reason}", acquisition_value=p.acquisition_value, mean=p.mean, std=p.std)
        for p, c in zip(chosen, choices, strict=True)
    ]

"""The model's recommendation: the measured candidate whose *posterior mean* is best.

Why a campaign reports it beside the best measured value: with noisy measurements the
lowest (or highest) single reading is biased towards lucky noise (the winner's curse). In
two OER demo runs the best reading was the plate's 23rd and 3rd best composition while the
plate's best had been measured too. The posterior mean pools the measurements around each
candidate; Ax and BoTorch recommend the in-sample point with the best model-predicted value
for noisy problems for that reason. How much it helps depends on how much noise the model
has learnt: on one demo run's 65 plate compositions with 8 mV simulated noise (40 draws,
``benchmarks/winners_curse.py``), the model's pick was truly better than the best reading in
14 draws, worse in 9 and the same in 17. A single far-off reading that the GP fits as a
spike is not corrected. So it is reported next to the best reading, not instead of it.

It is computed whenever the loop fits its model and stored on the iteration
(``info["recommended"]``), so a campaign's history says what the model believed at each
step; at the stop the model is refitted on every result, the last batch's included, and that
pick (``info["recommended_final"]``) is the summary's, so the summary needs no model at the end.
It covers campaigns with one objective; with several there is a Pareto front, not one answer.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from agent.loop.state import Observations
from agent.spec import Campaign
from matloop.types import CandidateKind


def recommend(campaign: Campaign, obs: Observations, fitted: Any, X: torch.Tensor) -> dict[str, Any] | None:
    """The measured candidate with the best posterior-mean utility, or ``None`` when there is no such answer.

    ``X`` holds the features of ``obs.candidates`` as the model sees them. Only candidates whose
    objective was measured and whose measured constrained properties meet every outcome
    constraint are eligible (an infeasible candidate is no recommendation, however good).
    """
    if len(campaign.objectives) != 1 or getattr(fitted, "is_prior", False) or not obs.candidates:
        return None
    objective = campaign.objectives[0]
    column = {p: i for i, p in enumerate(obs.properties)}
    eligible = [i for i, row in enumerate(obs.values) if _eligible(campaign, row, column)]
    if not eligible:
        return None
    mean, var = fitted.predict(X[eligible])
    m = mean[:, column[objective.property]]
    s = var[:, column[objective.property]].clamp_min(0).sqrt()
    if objective.goal == "maximize":
        utility = m
    elif objective.goal == "minimize":
        utility = -m
    else:
        utility = -(m - float(objective.target)).abs()  # type: ignore[arg-type]
    k = int(torch.argmax(utility))
    row = eligible[k]
    candidate = obs.candidates[row]
    return {
        "candidate": candidate.fingerprint,
        # parameters and compositions are short; structures and images stay in their candidate record
        "content": candidate.content if candidate.kind in (CandidateKind.POINT, CandidateKind.COMPOSITION) else None,
        "label": candidate.label(max_len=120),
        "mean": float(m[k]),
        "std": float(s[k]),
        "measured": float(obs.values[row][column[objective.property]]),
    }


def _eligible(campaign: Campaign, row: list[float], column: dict[str, int]) -> bool:
    if math.isnan(row[column[campaign.objectives[0].property]]):
        return False
    for constraint in campaign.constraints:
        value = row[column[constraint.property]] if constraint.property in column else math.nan
        if math.isnan(value) or not constraint.satisfied_by(value):
            return False
    return True

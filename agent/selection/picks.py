"""What selection hands back: one :class:`Pick` per chosen candidate, with why it was chosen."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from agent.selection.objectives import ObjectiveMap


@dataclass
class Pick:
    """One chosen candidate and the evidence behind it (stored with the batch so every decision is explainable).

    ``index`` is the row in the pool; ``acquisition_value`` is the
    value of the acquisition for this pick given the earlier picks of the batch as pending points (the
    sequential-greedy marginal gain); ``rank`` is 0 for the first pick.
    """

    index: int
    point: dict | None
    acquisition_value: float
    mean: dict[str, float]
    std: dict[str, float]
    rank: int
    reason: str
    features: list[float] = field(default_factory=list, repr=False)


def _percentile(values: Tensor, x: float) -> float:
    if values.numel() == 0:
        return 50.0
    return float((values <= x).double().mean() * 100)


def explain(omap: ObjectiveMap, mean: Tensor, std: Tensor, ref_mean: Tensor, ref_std: Tensor) -> str:
    """"exploit: ..." when the pick stands out by its predicted value, "explore: ..." when by its uncertainty.

    Both are judged as percentiles among the candidates that were considered (``ref_*``), on the first
    objective's "bigger is better" utility; a target band counts as exploit when the mean lies in the band.
    """
    o, col = omap.objectives[0], omap.objective_columns[0]
    u_ref = omap.utility(ref_mean[:, col])
    u = float(omap.utility(mean[col : col + 1])[0])
    mean_pct = _percentile(u_ref, u)
    std_pct = _percentile(ref_std[:, col], float(std[col]))
    what = o.property
    if o.goal == "target":
        inside = abs(float(mean[col]) - o.target) <= o.tolerance  # type: ignore[operator]
        if inside:
            return f"exploit: predicted {what} {float(mean[col]):.3g} inside {o.target}±{o.tolerance}"
        return f"explore: {what} uncertain (std pctl {std_pct:.0f}), band within reach"
    if mean_pct >= std_pct:
        return f"exploit: high predicted utility of {what} (mean pctl {mean_pct:.0f}, std pctl {std_pct:.0f})"
    return f"explore: high uncertainty of {what} (std pctl {std_pct:.0f}, mean pctl {mean_pct:.0f})"


def as_dicts(properties: list[str] | tuple[str, ...], row: Tensor) -> dict[str, float]:
    return {p: float(v) for p, v in zip(properties, row.tolist(), strict=True)}


def nan_safe(x: Tensor) -> Tensor:
    return torch.nan_to_num(x, nan=0.0)

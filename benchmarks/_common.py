"""Shared parts of the selection benchmarks: a fully measured pool, the campaign file that explores it, timing.

A pool is a campaign's parameters (one ``DataFrame`` column per parameter of its ``space``) with the measured
value of every row, so a replay can reveal each chosen row. matloop explores it through the ask/tell API
(:class:`agent.Recommender`) with the campaign file :func:`campaign_spec` writes: nothing but the space, the
objective, the batch size and the initial design, so the surrogate (``auto``), the acquisition (``auto``) and
everything else are a campaign's defaults. What is measured is what a user gets.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DATA = Path(os.environ.get("MATLOOP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@dataclass
class Pool:
    """A fully measured pool: the campaign's parameters per row, the measured value, and the goal."""

    name: str
    #: one column per parameter of ``space`` (numbers, or text for categorical parameters), one row per candidate;
    #: rows are distinct (a pool point is revealed once)
    frame: pd.DataFrame
    y: np.ndarray
    minimize: bool
    top_share: float  # the "top set" is this share of the pool (1% OER, 5% perovskites)
    #: the campaign file's ``space`` section; its parameters are ``frame``'s columns
    space: dict[str, Any]
    #: what BayBE is given, when not ``frame`` itself (the perovskites' one-hot columns, as its cached orders were
    #: computed); numeric columns become BayBE numerical discrete parameters, text columns categorical ones
    baybe_frame: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        names = [p["name"] for p in self.space["parameters"]]
        if list(self.frame.columns) != names:
            raise ValueError(f"pool {self.name}: columns {list(self.frame.columns)} are not the space's {names}")
        if len(self.frame) != len(self.y):
            raise ValueError(f"pool {self.name}: {len(self.frame)} rows but {len(self.y)} values")
        if self.frame.duplicated().any():
            raise ValueError(f"pool {self.name}: repeated rows (average them first, as dedupe() does)")

    @property
    def for_baybe(self) -> pd.DataFrame:
        return self.frame if self.baybe_frame is None else self.baybe_frame.reset_index(drop=True)

    @property
    def utility(self) -> np.ndarray:
        return -self.y if self.minimize else self.y

    @property
    def best_rows(self) -> set[int]:
        u = self.utility
        return set(np.flatnonzero(u == u.max()).tolist())

    @property
    def top_rows(self) -> set[int]:
        k = max(1, int(round(self.top_share * len(self.y))))
        return set(np.argsort(-self.utility, kind="stable")[:k].tolist())

    @property
    def random_best(self) -> float:
        """Random search's expected experiments to find a best row: (N + 1) / (K + 1) for K of N."""
        return (len(self.y) + 1) / (len(self.best_rows) + 1)

    @property
    def random_top(self) -> float:
        """Random search's expected experiments to a first top-set member (the acceleration factors' baseline)."""
        return (len(self.y) + 1) / (len(self.top_rows) + 1)


def dedupe(df: pd.DataFrame, columns: list[str], target: str) -> pd.DataFrame:
    """Repeated candidates become one pool point with their mean value (a pool point is revealed once)."""
    return df.groupby(columns, as_index=False, sort=False)[target].mean()


def numeric_space(frame: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    """A parametric space of continuous parameters bounded by the pool's own range (a box around the pool)."""
    parameters = []
    for column in frame.columns:
        low, high = float(frame[column].min()), float(frame[column].max())
        parameters.append({"name": column, "type": "continuous", "bounds": [low, high if high > low else low + 1.0]})
    return {"type": "parametric", "parameters": parameters, **extra}


def categorical_space(frame: pd.DataFrame) -> dict[str, Any]:
    """A parametric space of categorical parameters whose options are the values the pool uses."""
    return {"type": "parametric", "parameters": [
        {"name": c, "type": "categorical", "options": sorted(str(v) for v in frame[c].unique())} for c in frame.columns
    ]}


def campaign_spec(pool: Pool, *, seed: int, q: int, n_init: int, budget: int) -> dict[str, Any]:
    """The campaign file that explores ``pool``: its space and goal, q per batch, ``n_init`` given results before
    the model's first batch, ``budget`` experiments; every other setting is a campaign's default."""
    return {
        "name": f"bench-{pool.name}",
        "seed": seed,
        "space": pool.space,
        "objectives": [{"property": "y", "goal": "minimize" if pool.minimize else "maximize"}],
        "budget": {"max_experiments": budget},
        "batch_size": q,
        "initial_design_size": n_init,
        "adapters": {"lab": {"type": "simlab"}},  # never called: the replay hands in the pool's values
        "measurements": [{"properties": ["y"], "adapter": "lab"}],
    }


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def baybe_search_space(frame: Any, parameters: list[Any]) -> Any:
    """BayBE's discrete search space over the rows of ``frame`` (one column per parameter), built directly.

    ``SearchSpace.from_dataframe`` checks every row's value against every value of its parameter in Python
    (``NumericalDiscreteParameter.is_in_range``, an ``Interval`` per value): rows x values per column, 166 s for a
    1,000-row, 6-column pool on the idle development box, beyond hours at 10^4 rows. Here every parameter's values
    are its column's own values, so that check cannot fail; the space BayBE recommends from is the same.
    """
    from baybe.searchspace import SearchSpace, SubspaceDiscrete

    return SearchSpace(discrete=SubspaceDiscrete(parameters=parameters, exp_rep=frame))


def baybe_add_measurements(campaign: Any, measured: Any) -> None:
    """``campaign.add_measurements`` without its per-value tolerance check (the same rows-x-values scan as above:
    minutes per ask on a 2,000-row pool once a few hundred results are in); measured rows are pool rows, whose
    values are the parameters' values exactly."""
    campaign.add_measurements(measured, numerical_measurements_must_be_within_tolerance=False)

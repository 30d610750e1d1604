"""The picture of an efficiency comparison: the share of runs that had found the pool's best by each experiment.

Why this picture and not a bar of medians: experiments-to-best varies tenfold from seed to seed on these pools,
and a ratio of two medians hides how much of a difference is spread (``RESULTS-selection.md`` measures how little
20 seeds can tell apart). The share of seeds that have found the best by experiment n (an empirical distribution
function, censored at the budget) shows the whole of each strategy's runs: a curve to the left found the best
sooner, a curve that ends below 1 missed it within the budget in that share of seeds, and where two curves cross
neither is better everywhere. Random search's expectation is drawn where the pool's size and number of best rows
are known (the registered problems), as the floor any strategy should clear.

Drawn by ``efficiency.py --plot FILE.png`` from a run or from ``--combine``'s per-seed files, so that a replay of
one's own data (``--problem-file``) comes with its picture too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: one colour per strategy, the same in every panel (colour-blind safe: Okabe-Ito)
COLOURS = {"matloop": "#0072B2", "baybe": "#E69F00"}
LABELS = {"matloop": "matloop", "baybe": "BayBE"}


def found_share(n_best: list[int], budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps of the share of runs that had found the best by experiment n, for n = 0 .. budget.

    A run censored at the budget (``n_best > budget``, see ``efficiency.first_hit``) never counts as found, so the
    curve ends at the share found within the budget.
    """
    n = np.arange(budget + 1)
    hits = np.asarray(n_best)
    return n, (hits[None, :] <= n[:, None]).mean(axis=1)


def random_share(pool_size: int, n_best_rows: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Random search's probability of having drawn one of ``n_best_rows`` best rows among ``pool_size`` within n
    draws without replacement: ``1 - C(N - k, n) / C(N, n)``, computed as a running product."""
    n = np.arange(min(budget, pool_size) + 1)
    miss = np.ones(len(n))
    for i in range(1, len(n)):  # P(miss after i) = P(miss after i-1) * (N - k - (i-1)) / (N - (i-1))
        miss[i] = miss[i - 1] * max(pool_size - n_best_rows - (i - 1), 0) / (pool_size - (i - 1))
    return n, 1.0 - miss


def plot_found_share(runs: list[dict[str, Any]], budget: int, out: Path,
                     pools: Mapping[str, tuple[int, int]] | None = None, splits: Mapping[str, str] | None = None) -> Path:
    """One panel per problem (rows) and batch size (columns) with each strategy's :func:`found_share` and, for the
    problems in ``pools`` (name -> (pool size, number of best rows)), random search's; written as a PNG to ``out``.

    Each panel's title gives the medians and their ratio, as ``efficiency.py``'s table does, so the picture can be
    read without the table.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    qs = sorted({r["q"] for r in runs})
    if not datasets:
        raise ValueError("no runs to draw")
    fig, axes = plt.subplots(len(datasets), len(qs), figsize=(3.6 * len(qs), 2.6 * len(datasets) + 0.75),
                             squeeze=False, sharex=True, sharey=True)
    for i, dataset in enumerate(datasets):
        for j, q in enumerate(qs):
            ax = axes[i][j]
            medians, counts = {}, set()
            for strategy, colour in COLOURS.items():
                hits = [r["n_best"] for r in runs if (r["dataset"], r["q"], r["strategy"]) == (dataset, q, strategy)]
                if not hits:
                    continue
                medians[strategy] = float(np.median(hits))
                counts.add(len(hits))
                x, y = found_share(hits, budget)
                ax.step(x, y, where="post", color=colour, lw=1.8, label=LABELS[strategy])
            if not medians:  # this problem was not run at this batch size
                ax.set_title(f"{dataset}, q={q}: no runs", fontsize=8.5)
                continue
            if pools and dataset in pools:
                x, y = random_share(*pools[dataset], budget)
                ax.plot(x, y, color="0.55", lw=1.0, ls="--", label="random search (expected)")
            ax.set_title(_title(dataset, q, medians, counts, budget, (splits or {}).get(dataset)), fontsize=8.5)
            ax.set_xlim(0, budget)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            if i == len(datasets) - 1:
                ax.set_xlabel("experiments")
            if j == 0:
                ax.set_ylabel("share of runs\nthat found the best")
    handles = {label: line for ax in axes.flat for line, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    height = fig.get_figheight()  # title and legend get fixed inches above the panels, whatever the rows
    fig.suptitle(f"Experiments to the pool's best (budget {budget})", fontsize=11, y=1 - 0.12 / height, va="top")
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 1 - 0.42 / height),
               ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / height))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # a picture cut short by an error never replaces a whole one
    try:
        fig.savefig(partial, dpi=110, format="png")
        os.replace(partial, out)
    finally:
        plt.close(fig)
        partial.unlink(missing_ok=True)
    return out


def _title(dataset: str, q: int, medians: dict[str, float], counts: set[int], budget: int, split: str | None) -> str:
    """Problem, split and batch size; then each strategy's median, their ratio and the runs behind them."""
    def text(m: float) -> str:
        return f">{budget}" if m > budget else f"{m:g}"

    runs = "/".join(str(c) for c in sorted(counts))
    parts = [f"{dataset}{f' ({split})' if split else ''}, q={q}, {runs} runs"]
    if medians:
        parts.append(", ".join(f"{LABELS[s]} {text(m)}" for s, m in medians.items()))
    if {"matloop", "baybe"} <= medians.keys():
        parts[-1] += f": ratio {medians['matloop'] / medians['baybe']:.2f}"
    return "\n".join(parts)

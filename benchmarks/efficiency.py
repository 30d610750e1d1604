"""Pool-based replay: how many experiments matloop needs to find the best candidates, against BayBE and random.

Each problem is a fully measured pool (``benchmarks/problems.py``); a strategy sees only what it has chosen
(each chosen pool point is revealed from the data). Every run starts from the same random initial points for
every strategy with the same seed, then chooses batches of q until it has found the pool's best point or spent
the budget. matloop chooses through the ask/tell API (``agent.Recommender``): a campaign file with the pool's
space, goal, q and initial design and nothing else, so the campaign's own fit and select steps run with a
campaign's defaults (surrogate ``auto``: cross-validation of a GP against an ensemble, recalibration;
acquisition ``auto``). What is measured is what a user gets.

Reported per problem and batch size (medians over seeds; ">B" when more than half the runs did not find it
within the budget B):
  * n_best: experiments to find the pool's best point; n_top: to find a first point of the top set
    (top 1% of most pools, 5% of the hybrid perovskites);
  * EF@25 / EF@50: enhancement factor, the share of the top set found after n experiments over the share
    random search finds in expectation (n / N);
  * AF_top, AF_best: acceleration factor, random search's expected experiments to find a first member of
    the set, (N + 1) / (K + 1) for K members among N, over the strategy's median;
  * then one table of matloop's and BayBE's median n_best and their ratio, per problem and batch size.

Problems are ``dev`` (used to decide changes: the four OER plates and the hybrid perovskites) or ``heldout``
(``problems.SPLIT``). ``--problem-file`` adds a dataset of one's own (a YAML file naming a CSV, its target and
goal: ``benchmarks/problem_file.py``), run as held out. Ends with ``summary: datasets=<n> af_top_mean=<x> vs_baybe_experiments_ratio=<r>
wins=<k>/<n> heldout_ratio=<h> heldout_max=<m>``: a problem's ratio is matloop's median n_best (all batch
sizes and seeds pooled) over BayBE's; ``vs_baybe_experiments_ratio`` is their mean over all problems,
``heldout_ratio`` over the held-out ones and ``heldout_max`` the largest of those; ``wins`` counts problems
where matloop's median is lower, out of the problems both ran. Censored runs count as the budget + 1 (which favours whichever strategy
fails, so a ratio is only meaningful when medians are not censored); hence the default budget of 250. BayBE's
orders are read from the committed cache (``benchmarks/results/baybe-cache``; ``--no-baybe-cache``
recomputes them, hours), and cached orders of a shorter budget are resumed, not recomputed (``cached_replay``);
orders not in the cache are computed and added to it. ``--plot runs.png`` draws the runs: per problem and batch
size, the share of seeds that had found the best by each experiment (``benchmarks/efficiency_plot.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Pool, Stopwatch, baybe_add_measurements, baybe_search_space, campaign_spec  # noqa: E402
from benchmarks.efficiency_plot import plot_found_share  # noqa: E402
from benchmarks.environment import describe_differences, numerics_environment  # noqa: E402
from benchmarks.problem_file import ProblemFileError, load_problem  # noqa: E402
from benchmarks.problems import PROBLEMS, SPLIT, register, split_of  # noqa: E402
from benchmarks.replay_progress import ReplayProgress  # noqa: E402

Chooser = Callable[[Pool, list[int], int, int], list[int]]
ROOT = Path(__file__).resolve().parents[1]
COMMITTED_BAYBE_CACHE = ROOT / "benchmarks" / "results" / "baybe-cache"
#: BayBE's orders for problem files: outside the repository (``$XDG_CACHE_HOME``, else ``~/.cache``).
USER_BAYBE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matloop" / "baybe-orders"


class MatloopChooser:
    """matloop through its ask/tell API, one :class:`agent.Recommender` per replay (problem, q, seed).

    Asked with the rows revealed so far, it tells the recommender the ones it has not seen (the first call:
    the replay's random initial points) and asks for q more. The campaign's ``initial_design_size`` is the
    number of initial points, so its first batch is the model's, as BayBE's is.
    """

    def __init__(self, n_init: int, budget: int) -> None:
        self.n_init, self.budget = n_init, budget
        self.key: tuple[str, int, int] | None = None
        self.recommender: Any = None
        self.told: list[int] = []

    def __call__(self, pool: Pool, observed: list[int], q: int, seed: int) -> list[int]:
        from agent import Recommender

        key = (pool.name, q, seed)
        if key != self.key or observed[: len(self.told)] != self.told:
            self.close()
            spec = campaign_spec(pool, seed=seed, q=q, n_init=min(self.n_init, len(observed)), budget=self.budget)
            self.key, self.recommender, self.told = key, Recommender(spec, pool.frame), []
        new = observed[len(self.told):]
        if new:
            self.recommender.add_measurements(pool.frame.iloc[new].assign(y=pool.y[new]))
            self.told = list(observed)
        picks = self.recommender.recommend(q)
        return [int(i) for i in picks.index]

    def close(self) -> None:
        if self.recommender is not None:
            self.recommender.close()
        self.key, self.recommender, self.told = None, None, []


class BayBEChooser:
    """BayBE's default recommender (its default surrogate and acquisition) over the same pool."""

    def __init__(self) -> None:
        import pandas as pd  # noqa: F401
        from baybe import Campaign  # noqa: F401

        #: id(pool) -> (the pool, kept alive so its id stays its own; its frame as BayBE is given it, the search space,
        #: row -> pool index). Built once per pool (a drawn pool is a new object per seed), directly
        #: (``benchmarks._common.baybe_search_space``): the space is the same at every ask.
        self._spaces: dict[int, tuple[Pool, Any, Any, dict[tuple, int]]] = {}

    def _space(self, pool: Pool) -> tuple[Any, Any, dict[tuple, int]]:
        from baybe.parameters import CategoricalParameter, NumericalDiscreteParameter
        if id(pool) not in self._spaces:
            frame = pool.for_baybe.copy()
            parameters = []
            for c in frame.columns:
                if frame[c].dtype.kind in "if":
                    frame[c] = frame[c].astype(float).round(12)
                    parameters.append(NumericalDiscreteParameter(name=c, values=tuple(sorted(set(frame[c])))))
                else:
                    frame[c] = frame[c].astype(str)
                    parameters.append(CategoricalParameter(name=c, values=tuple(sorted(set(frame[c])))))
            space = baybe_search_space(frame, parameters)
            key = {tuple(r): i for i, r in enumerate(frame.to_numpy().tolist())}
            self._spaces[id(pool)] = (pool, frame, space, key)
        return self._spaces[id(pool)][1:]

    def __call__(self, pool: Pool, observed: list[int], q: int, seed: int) -> list[int]:
        from baybe import Campaign
        from baybe.targets import NumericalTarget
        from baybe.utils.random import set_random_seed

        set_random_seed(seed)
        frame, space, key = self._space(pool)
        columns = list(frame.columns)
        # BayBE's default recommender; only told, like matloop, never to re-propose a measured point
        campaign = Campaign(
            space, NumericalTarget(name="y", minimize=pool.minimize).to_objective(),
            allow_recommending_already_measured=False, allow_recommending_already_recommended=False,
        )
        measured = frame.iloc[observed].copy()
        measured["y"] = pool.y[observed]
        baybe_add_measurements(campaign, measured)
        rec = campaign.recommend(batch_size=q)
        return [key[tuple(r)] for r in rec[columns].to_numpy().tolist()]


def replay(
    pool: Pool, chooser: Chooser, q: int, seed: int, n_init: int, budget: int, start: list[int] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[int]:
    """The order in which ``chooser`` reveals pool rows, until the best is found or ``budget`` is spent.

    ``start`` resumes a run from its first experiments (``n_init`` random rows, then whole batches of ``q``),
    as an earlier, shorter replay of the same seed left them. ``on_batch`` hears the experiments made so far
    after each batch (the progress bars).
    """
    if start is None:
        rng = np.random.default_rng(seed)
        order = rng.choice(len(pool.y), size=n_init, replace=False).tolist()
    else:
        order = list(start)
    best = pool.best_rows
    while not (best & set(order)) and len(order) < budget:
        picks = chooser(pool, order, min(q, budget - len(order)), seed)
        fresh = [i for i in picks if i not in set(order)]
        if len(fresh) != len(picks) or not fresh:
            raise RuntimeError(f"strategy picked measured or no rows: {picks}")
        order += fresh
        if on_batch is not None:
            on_batch(len(order))
    return order


def cached_replay(
    cache: Path | None, name: str, pool: Pool, chooser: Chooser, q: int, seed: int, n_init: int, budget: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[int]:
    """``replay``, reading and writing BayBE's orders under ``cache`` when given.

    BayBE's runs are deterministic for a seed; caching them (keyed by pool, its size, q, seed, n_init, budget
    and the BayBE version) lets matloop's side be re-run against the same BayBE orders, and halves a run. A larger budget than a cached one reuses it: an order that found the best is already
    complete, and one cut off by its budget is resumed from its last whole batch (the chooser sees the same
    measurements, so it makes the same picks a longer run would have made). matloop's own runs are never cached.
    """
    if cache is None or name != "baybe":
        return replay(pool, chooser, q, seed, n_init, budget, on_batch=on_batch)
    from importlib.metadata import version

    stem = f"{pool.name}-N{len(pool.y)}-q{q}-seed{seed}-init{n_init}-budget"
    suffix = f"-baybe{version('baybe')}.json"
    path = cache / f"{stem}{budget}{suffix}"
    if path.exists():
        return json.loads(path.read_text())
    shorter = _longest_shorter_order(cache, stem, suffix, budget)
    if shorter is not None and pool.best_rows & set(shorter):
        return shorter  # found the best within the shorter budget: a longer run stops at the same place
    start = None if shorter is None else shorter[: n_init + (len(shorter) - n_init) // q * q]
    order = replay(pool, chooser, q, seed, n_init, budget, start=start, on_batch=on_batch)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(order))
    return order


def _longest_shorter_order(cache: Path, stem: str, suffix: str, budget: int) -> list[int] | None:
    """The cached order of the same run with the largest budget below ``budget``, if any."""
    budgets = []
    for candidate in cache.glob(f"{stem}*{suffix}"):
        text = candidate.name[len(stem) : -len(suffix)]
        if text.isdigit() and int(text) < budget:
            budgets.append(int(text))
    if not budgets:
        return None
    return json.loads((cache / f"{stem}{max(budgets)}{suffix}").read_text())


def first_hit(order: list[int], targets: set[int], budget: int) -> int:
    for i, row in enumerate(order):
        if row in targets:
            return i + 1
    return budget + 1


def enhancement(order: list[int], top: set[int], n: int, N: int) -> float:
    """Share of the top set found in the first n experiments over random's expected share (n/N).

    A run that found the best before n experiments stopped early; its later picks are not known, so the
    top members found so far are all that is counted (conservative for the strategy).
    """
    found = len(top & set(order[:n]))
    return (found / len(top)) / (n / N)


def median_text(values: list[int], budget: int, exact: bool = False) -> str:
    """The median rounded to a whole experiment (``exact``: a half stays, as pooled medians of an even count
    have), ``>B`` when censored at the budget B."""
    m = float(np.median(values))
    return f">{budget}" if m > budget else (f"{m:g}" if exact else f"{m:.0f}")


def median_interval(values: list[int], budget: int, level: float = 0.9, resamples: int = 2000) -> str:
    """Bootstrap interval of the median, as ``lo..hi``.

    Why it is printed: experiments-to-best varies 10x from seed to seed on these pools, so two strategies'
    medians over 10 seeds can differ by 20 experiments by chance alone; the interval says how far to trust
    a difference. Censored runs (budget + 1) stay censored, and an end above the budget prints as ``>B``.
    """
    if len(values) < 2:
        return "-"
    rng = np.random.default_rng(0)
    draws = np.median(rng.choice(np.asarray(values), size=(resamples, len(values))), axis=1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    if lo > budget:
        return f">{budget}"
    return f"{lo:.0f}.." + (f">{budget}" if hi > budget else f"{hi:.0f}")


#: ``--quick``: one dev and one held-out problem, small and fast (the test suite runs it)
QUICK_PROBLEMS = ("perovskites", "branin")


def problems(args: argparse.Namespace) -> list[str]:
    """The problems to run: ``--quick``'s, else those named by ``--datasets`` and ``--problem-file`` (all
    registered ones when neither names any), within ``--split``."""
    if args.quick:
        names = list(QUICK_PROBLEMS)
    elif args.datasets or args.file_problems:
        names = list(dict.fromkeys([*(args.datasets or []), *args.file_problems]))
    else:
        names = list(PROBLEMS)
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown problems {unknown}; known: {sorted(PROBLEMS)}")
    if args.split != "all":
        names = [n for n in names if SPLIT[n] == args.split]
    return names


@dataclasses.dataclass
class SeedRuns:
    """One problem, batch size and strategy over the seeds: what its table row and the per-seed file say."""

    #: the last seed's pool: its name, size and random search's expectations are every seed's
    pool: Pool
    n_best: list[int]
    n_top: list[int]
    ef25: list[float]
    ef50: list[float]
    seconds_per_run: float

    def per_seed(self, q: int, strategy: str, first_seed: int) -> list[dict[str, Any]]:
        return [{"dataset": self.pool.name, "q": q, "strategy": strategy, "seed": seed, "n_best": b, "n_top": t}
                for seed, (b, t) in enumerate(zip(self.n_best, self.n_top, strict=True), start=first_seed)]

    def table_row(self, q: int, strategy: str, budget: int) -> str:
        af_best = self.pool.random_best / float(np.median(self.n_best))
        af_top = self.pool.random_top / float(np.median(self.n_top))
        return (f"{self.pool.name:<12} {len(self.pool.y):>5} {q:>2} {strategy:<8} "
                f"{median_text(self.n_best, budget):>7} {median_interval(self.n_best, budget):>9} "
                f"{median_text(self.n_top, budget):>6} {np.mean(self.ef25):>6.1f} {np.mean(self.ef50):>6.1f} "
                f"{af_best:>7.1f} {af_top:>7.1f} {self.seconds_per_run:>7.1f}")


def replay_seeds(args: argparse.Namespace, name: str, q: int, strategy: str, chooser: Chooser, bars: ReplayProgress,
                 n_init: int, after_each: Callable[[], None]) -> SeedRuns:
    """Replay one problem at one batch size with one strategy for every seed (``after_each`` frees a replay's
    recommender before the next seed's)."""
    n_best, n_top, ef25, ef50 = [], [], [], []
    clock = Stopwatch()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        pool = PROBLEMS[name](seed)
        bars.start_replay(f"{name} q={q} {strategy} seed {seed}")
        order = cached_replay(args.baybe_cache, strategy, pool, chooser, q, seed, n_init, args.budget,
                              on_batch=bars.experiments)
        bars.replay_done()
        after_each()
        n_best.append(first_hit(order, pool.best_rows, args.budget))
        n_top.append(first_hit(order, pool.top_rows, args.budget))
        ef25.append(enhancement(order, pool.top_rows, 25, len(pool.y)))
        ef50.append(enhancement(order, pool.top_rows, 50, len(pool.y)))
    return SeedRuns(pool, n_best, n_top, ef25, ef50, clock.seconds / args.seeds)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    names = problems(args)
    n_init = max(args.n_init, 2)
    matloop = MatloopChooser(n_init, args.budget)
    strategies: dict[str, Chooser] = {} if args.no_matloop else {"matloop": matloop}
    if not args.no_baybe:
        try:
            strategies["baybe"] = BayBEChooser()
        except ImportError as exc:
            print(f"BayBE not importable ({exc}); running matloop and random only")
    print(f"# efficiency: problems={[f'{n}({SPLIT[n]})' for n in names]} batch_sizes={args.batch_sizes} "
          f"seeds={args.first_seed}..{args.first_seed + args.seeds - 1} n_init={n_init} budget={args.budget} strategies={list(strategies)}")
    header = f"{'dataset':<12} {'N':>5} {'q':>2} {'strategy':<8} {'n_best':>7} {'90% CI':>9} {'n_top':>6} " \
             f"{'EF@25':>6} {'EF@50':>6} {'AF_best':>7} {'AF_top':>7} {'sec/run':>7}"
    print(header)
    per_seed: list[dict[str, Any]] = []
    random_top: dict[str, float] = {}
    pool_facts: dict[str, tuple[int, int]] = {}  # name -> (pool size, best rows), for the picture's random search
    total = len(names) * len(args.batch_sizes) * len(strategies) * args.seeds
    with ReplayProgress(total, args.budget) as bars, closing(matloop):  # closed however the run ends
        for name in names:
            for q, (strategy, chooser) in itertools.product(args.batch_sizes, strategies.items()):
                row = replay_seeds(args, name, q, strategy, chooser, bars, n_init, after_each=matloop.close)
                per_seed.extend(row.per_seed(q, strategy, args.first_seed))
                random_top[row.pool.name] = row.pool.random_top
                pool_facts[row.pool.name] = (len(row.pool.y), len(row.pool.best_rows))
                if args.per_seed is not None:  # as it goes: a long run cut short keeps what it measured
                    write_per_seed(args.per_seed, args.budget, n_init, per_seed, random_top)
                print(row.table_row(q, strategy, args.budget), flush=True)
            print(f"{row.pool.name:<12} random search expects n_best={row.pool.random_best:.0f} "
                  f"n_top={row.pool.random_top:.1f}")
    print()
    for line in ratio_table(per_seed, args.budget):
        print(line)
    if args.per_seed is not None:
        write_per_seed(args.per_seed, args.budget, n_init, per_seed, random_top)
        print(f"# per-seed results written to {args.per_seed}")
    print(summary_line(per_seed, random_top))
    if args.plot is not None:
        _draw(per_seed, args.budget, args.plot, pool_facts)
    return 0


def _draw(runs: list[dict[str, Any]], budget: int, out: Path, pools: dict[str, tuple[int, int]]) -> None:
    """``--plot``: the share of runs that found the best by each experiment (:mod:`benchmarks.efficiency_plot`)."""
    if not runs:
        print("# nothing to draw: no runs")
        return
    try:
        plot_found_share(runs, budget, out, pools, {d: split_of(d) for d in {r["dataset"] for r in runs}})
    except OSError as exc:
        raise SystemExit(f"efficiency.py: the picture cannot be written to {out} ({exc.strerror or exc})") from None
    print(f"# picture written to {out}")


def registered_pool_facts(datasets: set[str]) -> dict[str, tuple[int, int]]:
    """(pool size, best rows) of the registered problems among ``datasets``, for ``--combine --plot``'s random
    search line; a problem file's pool is not registered then, and is drawn without it."""
    facts = {}
    for name in sorted(datasets & PROBLEMS.keys()):
        pool = PROBLEMS[name](0)
        facts[name] = (len(pool.y), len(pool.best_rows))
    return facts


def write_per_seed(path: Path, budget: int, n_init: int, runs: list[dict[str, Any]], random_top: dict[str, float]) -> None:
    """Every run's n_best and n_top so far, replacing the file whole (``os.replace``), so that it is never half-written."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"budget": budget, "n_init": n_init, "runs": runs, "random_top": random_top,
                                   "environment": numerics_environment()}, indent=1))
    os.replace(partial, path)


def ratio_table(runs: list[dict[str, Any]], budget: int) -> list[str]:
    """matloop's and BayBE's median n_best and their ratio, per problem and batch size, then pooled."""
    lines = [f"{'dataset':<12} {'split':<7} {'q':>4} {'matloop':>8} {'baybe':>8} {'ratio':>6}"]
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        qs = sorted({r["q"] for r in runs if r["dataset"] == dataset})
        for q in [*qs, None]:
            ours = [r["n_best"] for r in runs if r["dataset"] == dataset and r["strategy"] == "matloop"
                    and q in (None, r["q"])]
            theirs = [r["n_best"] for r in runs if r["dataset"] == dataset and r["strategy"] == "baybe"
                      and q in (None, r["q"])]
            if not ours or not theirs:
                continue
            ratio = float(np.median(ours)) / float(np.median(theirs))
            lines.append(f"{dataset:<12} {split_of(dataset):<7} {'all' if q is None else q:>4} "
                         f"{median_text(ours, budget, exact=True):>8} {median_text(theirs, budget, exact=True):>8} "
                         f"{ratio:>6.2f}")
    return lines


def pooled_median(runs: list[dict[str, Any]], dataset: str, strategy: str) -> float:
    """Median n_best over every batch size and seed of one strategy on one dataset (the summary's unit)."""
    return float(np.median([r["n_best"] for r in runs if r["dataset"] == dataset and r["strategy"] == strategy]))


def runs_both_made(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs whose (problem, batch size, seed) both matloop and BayBE made: medians over different seeds would
    compare different initial points, and a BayBE file often holds more problems or seeds than matloop's."""
    def key(r: dict[str, Any]) -> tuple[str, int, int]:
        return r["dataset"], r["q"], r["seed"]

    both = {key(r) for r in runs if r["strategy"] == "matloop"} & {key(r) for r in runs if r["strategy"] == "baybe"}
    return [r for r in runs if key(r) in both]


def summary_line(runs: list[dict[str, Any]], random_top: dict[str, float]) -> str:
    """The one-line summary from per-seed runs; ``random_top`` is random search's expected experiments to a first
    top-set member per problem (AF_top is that over matloop's median n_top, per batch size). The ratios are over
    problems both strategies ran; ``heldout_*`` over those ``problems.SPLIT`` marks held out (nan: none ran)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    af_tops = []
    for dataset in datasets:
        for q in sorted({r["q"] for r in runs if r["dataset"] == dataset}):
            n_top = [r["n_top"] for r in runs if (r["dataset"], r["q"], r["strategy"]) == (dataset, q, "matloop")]
            if n_top:  # BayBE's runs alone have no matloop AF_top
                af_tops.append(random_top[dataset] / float(np.median(n_top)))
    ratios, heldout, wins = [], [], 0
    for dataset in datasets:
        ran = {r["strategy"] for r in runs if r["dataset"] == dataset}
        if {"matloop", "baybe"} <= ran:  # a problem only one side ran has no ratio (a nan would poison the mean)
            ours, theirs = pooled_median(runs, dataset, "matloop"), pooled_median(runs, dataset, "baybe")
            ratios.append(ours / theirs)
            if split_of(dataset) == "heldout":
                heldout.append(ours / theirs)
            wins += int(ours < theirs)

    def text(values: list[float], how: Callable[[list[float]], float], digits: int = 3) -> str:
        return f"{how(values):.{digits}f}" if values else "nan"

    return (f"summary: datasets={len(datasets)} af_top_mean={text(af_tops, np.mean, 2)} "
            f"vs_baybe_experiments_ratio={text(ratios, np.mean)} wins={wins}/{len(ratios)} "
            f"heldout_ratio={text(heldout, np.mean)} heldout_max={text(heldout, max)}")


class PerSeedRun(BaseModel):
    """One replay's outcome in a ``--per-seed`` file."""

    dataset: str
    q: int = Field(ge=1)
    strategy: Literal["matloop", "baybe"]
    seed: int = Field(ge=0)
    n_best: int = Field(ge=1)
    n_top: int = Field(ge=1)


class PerSeedFile(BaseModel):
    """What ``--per-seed`` writes (:func:`write_per_seed`), read back by ``--combine``."""

    budget: int = Field(ge=1)
    n_init: int = Field(ge=1)
    runs: list[PerSeedRun]
    #: absent from files written before it was recorded; readers that need it say so for the datasets it lacks
    random_top: dict[str, float] = Field(default_factory=dict)
    #: where the runs were measured (:mod:`benchmarks.environment`); empty in files written before it was recorded
    environment: dict[str, str] = Field(default_factory=dict)


def read_per_seed(path: Path) -> PerSeedFile:
    """A ``--per-seed`` file, or one sentence saying why it is not one."""
    try:
        return PerSeedFile.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise SystemExit(f"{path} cannot be read ({exc.strerror or exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise SystemExit(f"{path} is not a per-seed file written by efficiency.py --per-seed "
                         f"({where}: {first['msg']})") from None


def combine(paths: list[Path], plot: Path | None = None) -> int:
    """The ratio table and summary line over several ``--per-seed`` files: a long comparison split into
    processes (one per strategy, batch size or seed) is reported as one. A run (dataset, q, strategy, seed) found
    in two files must agree; files of different budgets cannot be combined (censoring would differ). Given both
    strategies' runs, only the (problem, batch size, seed) both made are compared (:func:`runs_both_made`)."""
    runs: dict[tuple, dict[str, Any]] = {}
    random_top: dict[str, float] = {}
    budgets = set()
    environments = []
    for path in paths:
        data = read_per_seed(path)
        budgets.add(data.budget)
        environments.append(data.environment)
        random_top.update(data.random_top)
        for run in data.runs:
            key = (run.dataset, run.q, run.strategy, run.seed)
            entry = run.model_dump()
            if key in runs and runs[key] != entry:
                raise SystemExit(f"{path}: run {key} differs from the same run in an earlier file")
            runs[key] = entry
    if len(budgets) != 1:
        raise SystemExit(f"per-seed files of different budgets {sorted(budgets)} cannot be combined")
    unknown = sorted({r["dataset"] for r in runs.values() if r["strategy"] == "matloop"} - set(random_top))
    if unknown:
        raise SystemExit(f"the per-seed files give no random-search baseline (random_top) for {unknown}")
    per_seed = sorted(runs.values(), key=lambda r: (r["dataset"], r["q"], r["strategy"], r["seed"]))
    if {r["strategy"] for r in per_seed} == {"matloop", "baybe"}:  # one strategy's files alone have nothing to pair
        paired = runs_both_made(per_seed)
        if len(paired) < len(per_seed):
            print(f"# {len(per_seed) - len(paired)} of {len(per_seed)} runs left out: only one strategy made "
                  "their (problem, batch size, seed)")
        per_seed = paired
    budget = budgets.pop()
    if (differences := describe_differences(environments)) is not None:
        print(differences)
    for line in ratio_table(per_seed, budget):
        print(line)
    print(summary_line(per_seed, random_top))
    if plot is not None:
        _draw(per_seed, budget, plot, registered_pool_facts({r["dataset"] for r in per_seed}))
    return 0


def _baybe_cache(args: argparse.Namespace) -> Path | None:
    """The folder of BayBE orders to use: the committed cache for full runs, so that a plain
    ``python benchmarks/efficiency.py`` replays BayBE's committed orders instead of recomputing them;
    none for ``--quick`` (its short budget would add files to the committed folder); with ``--problem-file``,
    the user's cache folder (``USER_BAYBE_CACHE``), so that a lab's own data never adds files to the repository."""
    if args.no_baybe_cache:
        return None
    if args.baybe_cache is not None:
        return args.baybe_cache
    if args.quick:
        return None
    return USER_BAYBE_CACHE if args.problem_file else COMMITTED_BAYBE_CACHE


def _register_problem_files(paths: list[Path]) -> list[str]:
    """Each problem file's pool, registered as held out (nobody tuned to a user's data); their names, in order."""
    names = []
    for path in dict.fromkeys(paths):
        try:
            pool = load_problem(path)
        except ProblemFileError as exc:
            raise SystemExit(f"efficiency.py: {exc}") from None
        if pool.name not in PROBLEMS:
            register({pool.name: lambda seed, pool=pool: pool}, {pool.name: "heldout"},
                     {pool.name: f"problem file {path}"})
        names.append(pool.name)
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"problems {', '.join(QUICK_PROBLEMS)}, 1 seed, q=4, budget 12: for the test suite")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help=f"problems to run (default: all registered: {', '.join(PROBLEMS)})")
    parser.add_argument("--split", choices=["all", "dev", "heldout"], default="all",
                        help="only the problems of this split (problems.SPLIT)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds FIRST_SEED .. FIRST_SEED+SEEDS-1: a long comparison split into processes by seed "
                        "(join their --per-seed files with --combine)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--n-init", type=int, default=4)
    parser.add_argument("--budget", type=int, default=250)
    parser.add_argument("--no-baybe", action="store_true")
    parser.add_argument("--no-matloop", action="store_true",
                        help="BayBE's orders only: fills the cache (e.g. for the held-out problems) ahead of a comparison")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baybe-cache", type=Path, default=None,
                        help="folder for BayBE's replay orders (deterministic per seed): re-runs reuse them; "
                        f"default: the committed {COMMITTED_BAYBE_CACHE.relative_to(ROOT)} (none with --quick)")
    parser.add_argument("--no-baybe-cache", action="store_true", help="recompute every BayBE order (hours at budget 250)")
    parser.add_argument("--per-seed", type=Path, default=None,
                        help="write every run's n_best and n_top as JSON (for paired or bootstrap comparisons)")
    parser.add_argument("--problem-file", type=Path, nargs="+", default=[], metavar="YAML",
                        help="your own fully measured dataset: a YAML file naming a CSV, its target and goal "
                        "(benchmarks/problem_file.py says what it may hold); run as held out, instead of the "
                        "registered problems unless --datasets names some too")
    parser.add_argument("--combine", type=Path, nargs="+", default=None, metavar="PER_SEED_JSON",
                        help="print the ratio table and summary of per-seed files written by earlier runs (e.g. "
                        "matloop's and BayBE's sides, or batch sizes, run as separate processes), running nothing")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="also draw, per problem and batch size, the share of runs that had found the best by each "
                        "experiment, against random search (benchmarks/efficiency_plot.py); with --combine too")
    args = parser.parse_args(argv)
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        parser.error(f"--plot {args.plot}: the picture is a PNG, so its name must end in .png")
    if args.combine:
        return combine(args.combine, args.plot)
    if args.quick:
        args.seeds, args.batch_sizes, args.budget = min(args.seeds, 1), [4], 12
    args.file_problems = _register_problem_files(args.problem_file)
    args.baybe_cache = _baybe_cache(args)
    start = time.perf_counter()
    code = run(args)
    print(f"# wall time {time.perf_counter() - start:.0f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

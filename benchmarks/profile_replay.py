"""Where one efficiency replay's time goes: matloop on one problem, the campaign path, under cProfile.

Runs the same replay as ``benchmarks/efficiency.py`` (``MatloopChooser``: the ask/tell API with a campaign file's
defaults) for one problem, q and seed, up to ``--budget`` experiments, and prints each ask's seconds (with how many
results it was asked on) and then the profile's top functions by cumulative time. What it is for: a campaign's
asks are not all alike (an ask that re-decides the model cross-validates two kinds; a kept one does not), and
``ask_speed.py`` times single asks, not a campaign's sequence of them.

    python benchmarks/profile_replay.py perov5 --budget 60
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.efficiency import MatloopChooser, replay  # noqa: E402
from benchmarks.problems import PROBLEMS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", choices=sorted(PROBLEMS))
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--q", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-init", type=int, default=4)
    parser.add_argument("--top", type=int, default=40, help="how many functions of the profile to print")
    args = parser.parse_args(argv)
    if args.budget <= args.n_init or args.q < 1 or args.n_init < 2:
        parser.error("--budget must exceed --n-init (at least 2), and --q must be at least 1")
    torch.set_num_threads(1)  # as efficiency.py's default
    warnings.filterwarnings("ignore")
    pool = PROBLEMS[args.problem](args.seed)
    chooser = MatloopChooser(args.n_init, args.budget)
    asks: list[tuple[int, float]] = []

    def timed(*call):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        picks = chooser(*call)
        asks.append((len(call[1]), time.perf_counter() - start))
        return picks

    profile = cProfile.Profile()
    profile.enable()
    try:
        replay(pool, timed, args.q, args.seed, args.n_init, args.budget)
    finally:
        profile.disable()
        chooser.close()
    for n, seconds in asks:
        print(f"ask on {n:4d} results: {seconds:7.2f} s")
    print(f"{len(asks)} asks, {sum(s for _, s in asks):.1f} s in all")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

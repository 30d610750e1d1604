"""Winner's curse on a campaign's measured set: the best single reading vs the model's pick (best posterior mean).

Takes the compositions a campaign measured on OER plate 3496 (a ``batches.csv`` written by
``matloop demo`` or ``matloop report``), redraws their measurements many times as the plate's
value plus Gaussian noise, and compares the plate value of (a) the composition with the best
reading and (b) the composition with the best GP posterior mean (what ``agent.loop.recommend``
reports). Ends with ``summary: draws=<n> model_better=<k> model_worse=<m> true_best_reading=<x>
true_model_pick=<y>`` (true plate overpotentials, lower is better).

    matloop demo --out /tmp/matloop-demo && .venv/bin/python benchmarks/winners_curse.py /tmp/matloop-demo/batches.csv

``--quick`` (the test suite's smoke run) takes 30 random plate compositions instead of a campaign's and 4 draws.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._plate import COLUMNS, read_batches, read_plate  # noqa: E402
from surrogates import fit_surrogate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("batches", type=Path, nargs="?", help="batches.csv of a campaign on the oer template")
    parser.add_argument("--sigma", type=float, default=0.008, help="measurement noise, V (the lab's is ~8 mV here)")
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="30 random plate compositions, 4 draws")
    args = parser.parse_args(argv)
    if args.batches is None and not args.quick:
        parser.error("give a campaign's batches.csv (or --quick for 30 random plate compositions)")
    if args.quick:
        args.draws = min(args.draws, 4)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    plate = read_plate()
    if args.batches is None:
        batches = plate.sample(n=30, random_state=0)[[*COLUMNS, "key"]]
    else:
        try:
            batches = read_batches(args.batches)
        except ValueError as exc:
            parser.error(str(exc))
    measured = batches[["key", *COLUMNS]].merge(plate[["key", "overpotential", "rank"]], on="key")
    measured = measured.drop_duplicates("key")
    X = torch.tensor(measured[COLUMNS].to_numpy(), dtype=torch.double)
    truth, ranks = measured.overpotential.to_numpy(), measured["rank"].to_numpy()
    rng = np.random.default_rng(0)
    rows = []
    for draw in range(args.draws):
        reading = truth + rng.normal(0.0, args.sigma, len(truth))
        fitted = fit_surrogate(X, torch.tensor(reading).unsqueeze(-1), kind="gp", seed=draw,
                               settings={"bounds": [[0.0] * 6, [1.0] * 6]})
        mean = fitted.predict(X)[0][:, 0].numpy()
        a, b = int(np.argmin(reading)), int(np.argmin(mean))
        rows.append((ranks[a], ranks[b], truth[a], truth[b]))
    res = np.array(rows)
    print(f"# {len(measured)} measured compositions on the plate (best plate rank among them: {ranks.min():.0f}); "
          f"noise {args.sigma} V; {args.draws} draws")
    print(f"median plate rank: best reading {np.median(res[:, 0]):.0f}, model's pick {np.median(res[:, 1]):.0f}")
    better, worse = int((res[:, 3] < res[:, 2]).sum()), int((res[:, 3] > res[:, 2]).sum())
    print(f"summary: draws={args.draws} model_better={better} model_worse={worse} "
          f"true_best_reading={res[:, 2].mean():.4f} true_model_pick={res[:, 3].mean():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

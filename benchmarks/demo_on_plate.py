"""Where a demo run's measurements sit on the plate: the numbers the README's demo narrative quotes.

The demo's lab adds measurement noise to plate 3496's recorded values, so a campaign's best *reading* is not
its best composition. This looks every measured composition up on the plate (by its recorded value, without
the lab's noise) and prints, in the campaign's order, when the plate's best compositions were first measured,
and in which batch the best reading last improved.

    matloop demo --out /tmp/matloop-demo && .venv/bin/python benchmarks/demo_on_plate.py /tmp/matloop-demo/batches.csv

Ends with ``summary: experiments=<n> on_plate=<k> best_plate_rank=<r> at_experiment=<e> best_reading_batch=<b>``.
``--quick`` (the test suite's smoke run) grades 30 random plate compositions as one campaign of 3 batches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._plate import COLUMNS, read_batches, read_plate  # noqa: E402

SHOWN_RANKS = 10


def measured_in_order(batches: pd.DataFrame) -> pd.DataFrame:
    """Measured rows (not dropped, not failed, with a value) in the order the campaign ran them."""
    rows = batches
    if "dropped" in rows:
        rows = rows[~rows["dropped"].astype(str).str.lower().eq("true")]
    if "failed" in rows:
        rows = rows[~rows["failed"].astype(str).str.lower().eq("true")]
    rows = rows[rows["overpotential"].notna()].reset_index(drop=True)
    rows["experiment"] = np.arange(1, len(rows) + 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("batches", type=Path, nargs="?", help="batches.csv of a campaign on the oer template")
    parser.add_argument("--quick", action="store_true", help="30 random plate compositions in 3 batches")
    args = parser.parse_args(argv)
    if args.batches is None and not args.quick:
        parser.error("give a campaign's batches.csv (or --quick for 30 random plate compositions)")
    plate = read_plate()
    if args.batches is None:
        batches = plate.sample(n=30, random_state=0).reset_index(drop=True)
        batches["batch"] = batches.index // 10 + 1
    else:
        try:
            batches = read_batches(args.batches)
        except ValueError as exc:
            parser.error(str(exc))
    runs = measured_in_order(batches)
    on_plate = runs[["experiment", "batch", "key", "overpotential", *COLUMNS]].merge(
        plate[["key", "rank"]].drop_duplicates("key"), on="key", how="left")
    found = on_plate.dropna(subset=["rank"]).sort_values("experiment").drop_duplicates("key")
    print(f"# {len(runs)} measured experiments; {len(found)} distinct compositions on the plate "
          f"(of {plate.key.nunique()}); plate rank 1 = lowest recorded overpotential")
    for _, row in found[found["rank"] <= SHOWN_RANKS].sort_values("rank").iterrows():
        composition = " ".join(f"{c.removesuffix('_load')}={row[c]:g}" for c in COLUMNS if row[c] > 0)
        print(f"plate rank {row['rank']:>3.0f}: {composition:<34} first measured at experiment {row.experiment:>3} "
              f"(batch {row.batch})")
    best_reading = runs.overpotential.cummin()
    improved = runs.loc[best_reading.diff().fillna(-1) < 0, "batch"]
    last_batch = int(improved.iloc[-1]) if len(improved) else 0
    best = found.sort_values(["rank", "experiment"]).iloc[0] if len(found) else None
    print(f"best reading {runs.overpotential.min():.4f}, last improved in batch {last_batch}")
    rank_text = "none" if best is None else f"{best['rank']:.0f}"
    at_text = "none" if best is None else str(int(best.experiment))
    print(f"summary: experiments={len(runs)} on_plate={len(found)} best_plate_rank={rank_text} "
          f"at_experiment={at_text} best_reading_batch={last_batch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

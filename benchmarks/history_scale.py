"""How long ``matloop history`` takes, and how much memory, on a campaign with 10^5 measurements.

A database is filled through the store's own models (``agent.store.models``, a campaign registered with
``register_campaign``): batches of 100 candidates per iteration, each candidate dispatched as a job with one
measurement (5% failed, with their error), one model version per iteration, a decision with a note on every
batch and one candidate dropped from every tenth. Then ``matloop history NAME --format csv`` and the default
table run through the CLI entry point in a child process each; its wall and CPU time (``wait4``) and peak RSS
(its own ``VmHWM``) are measured. SQLite in a temporary folder, and a throw-away PostgreSQL started as the tests start one (skipped,
with a message, when PostgreSQL is not installed).

    .venv/bin/python benchmarks/history_scale.py [--quick] [--rows N] [--backend sqlite|postgres|both]

Prints a table (with CPU seconds beside the wall seconds, and the machine's 1-minute load average before the
timed commands: on a shared machine the wall time mostly measures the others) and one line ``summary: rows=<n> csv_s=<a> table_s=<b> peak_mb=<m> worst_of=<backends>``: each
number is the worse of the backends measured (so a single line holds for both).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.spec import parse_campaign  # noqa: E402
from agent.store import Database  # noqa: E402
from agent.store.campaigns import register_campaign  # noqa: E402
from agent.store.migrate import upgrade  # noqa: E402
from agent.store.models import (  # noqa: E402
    BatchItemRecord,
    BatchRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    ModelVersionRecord,
)
from matloop.types import Candidate, make_idempotency_key  # noqa: E402

NAME = "history-scale"
BATCH = 100
METALS = ("ni_load", "fe_load", "co_load", "mn_load", "ce_load", "la_load")


@dataclass
class Run:
    backend: str
    rows: int
    load: str  # the 1-minute load average just before the timed commands: how shared the machine was
    csv_s: float
    csv_cpu: float
    csv_mb: float
    table_s: float
    table_cpu: float
    table_mb: float


def campaign_spec():
    from cli.campaign_files import template_text

    return parse_campaign(template_text("oer").replace("name: oer-demo", f"name: {NAME}"))


def fill(url: str, n: int, seed: int = 0) -> None:
    """``n`` measurements in iterations of :data:`BATCH`, written with the models in one transaction per iteration."""
    rng = random.Random(seed)
    spec = campaign_spec()
    db = Database(url)
    with db.transaction() as s:
        campaign_id = register_campaign(s, spec).id
    now = datetime.now(UTC)
    for number, start in enumerate(range(0, n, BATCH), start=1):
        size = min(BATCH, n - start)
        with db.transaction() as s:
            it = IterationRecord(campaign_id=campaign_id, number=number, step="complete", info={"best": 0.3})
            s.add(it)
            s.flush()
            mv = ModelVersionRecord(campaign_id=campaign_id, iteration_id=it.id, kind="gp", objective="overpotential",
                                    n_train=start, training_hash="0" * 64, metrics={"rmse": 0.02})
            s.add(mv)
            s.flush()
            it.model_version_id = mv.id
            edited = number % 10 == 0
            batch = BatchRecord(campaign_id=campaign_id, iteration_id=it.id, status="complete", approver="alice",
                                note=f"batch {number} looks fine", decided_at=now, policy="manual")
            s.add(batch)
            s.flush()
            candidates = []
            for _ in range(size):
                loads = [rng.random() for _metal in METALS]
                total = sum(loads)
                params = {m: round(v / total, 4) for m, v in zip(METALS, loads, strict=True)}
                candidates.append(Candidate.point(params, origin="grid"))
            cand_ids = s.scalars(insert(CandidateRecord).returning(CandidateRecord.id, sort_by_parameter_order=True), [
                {"campaign_id": campaign_id, "fingerprint": f"{c.fingerprint}-{start + i}", "kind": "point",
                 "representation": c.model_dump(mode="json"), "origin": "grid"} for i, c in enumerate(candidates)
            ]).all()
            item_ids = s.scalars(insert(BatchItemRecord).returning(BatchItemRecord.id, sort_by_parameter_order=True), [
                {"batch_id": batch.id, "candidate_id": cid, "rank": rank, "acquisition_value": rng.gauss(0, 1),
                 "posterior_mean": rng.uniform(0.3, 0.6), "posterior_std": rng.uniform(0.01, 0.05),
                 "reason": "exploit: low mean", "dropped": False, "predictions": {}}
                for rank, cid in enumerate(cand_ids)
            ]).all()
            failed = [rng.random() < 0.05 for _ in cand_ids]
            job_ids = s.scalars(insert(JobRecord).returning(JobRecord.id, sort_by_parameter_order=True), [
                {"campaign_id": campaign_id, "candidate_id": cid, "batch_item_id": iid, "adapter": "lab",
                 "fidelity": "oer_plate_3496", "idempotency_key": make_idempotency_key(NAME, f"{start + k}",
                                                                                       "oer_plate_3496", 0),
                 "external_id": f"exp-{start + k}", "status": "failed" if bad else "succeeded", "attempts": 1,
                 "cost": 1.0, "created_at": now, "updated_at": now}
                for k, (cid, iid, bad) in enumerate(zip(cand_ids, item_ids, failed, strict=True))
            ]).all()
            s.execute(insert(MeasurementRecord), [
                {"campaign_id": campaign_id, "candidate_id": cid, "job_id": jid, "property": "overpotential",
                 "value": None if bad else rng.uniform(0.3, 0.6), "std": None if bad else 0.01, "units": "V",
                 "fidelity": "oer_plate_3496", "raw": {}, "failed": bad,
                 "error": "synthesis failed: precursor clogged" if bad else None, "created_at": now}
                for cid, jid, bad in zip(cand_ids, job_ids, failed, strict=True)
            ])
            if edited:  # one candidate dropped by the approver, never dispatched: a row without a job
                extra = Candidate.point({m: 1.0 if m == "ni_load" else 0.0 for m in METALS})
                crec = CandidateRecord(campaign_id=campaign_id, fingerprint=f"{extra.fingerprint}-{number}",
                                       kind="point", representation=extra.model_dump(mode="json"))
                s.add(crec)
                s.flush()
                s.add(BatchItemRecord(batch_id=batch.id, candidate_id=crec.id, rank=size, reason="explore",
                                      dropped=True))
    db.dispose()


#: The child: ``matloop`` as its entry point runs it, writing its peak resident memory (``VmHWM``) on the way out.
CHILD = (
    "import atexit, os\n"
    "def _peak():\n"
    "    with open('/proc/self/status') as status, open(os.environ['MATLOOP_BENCH_PEAK'], 'w') as out:\n"
    "        out.write(next(line.split()[1] for line in status if line.startswith('VmHWM:')))\n"
    "atexit.register(_peak)\n"
    "from cli import main\n"
    "main()\n"
)


def timed(url: str, *args: str, out: Path) -> tuple[float, float, float]:
    """Run ``matloop ARGS`` in a child process; its wall seconds, CPU seconds and peak resident MB.

    The CPU time is printed beside the wall time because on a shared machine the wall time mostly measures
    the other processes; the summary keeps the wall time, which is what a user waits. The peak is the child's
    own ``VmHWM``: ``wait4``'s ``ru_maxrss`` also counts this benchmark's memory, which the child shares
    until it starts Python (about 130 MB here, more than ``matloop history`` itself needs).
    """
    peak_file = out.with_suffix(".peak")
    env = {**os.environ, "MATLOOP_DATABASE_URL": url, "PYTHONPATH": str(ROOT), "COLUMNS": "200",
           "MATLOOP_BENCH_PEAK": str(peak_file)}
    started = time.perf_counter()
    with out.open("w") as sink:
        child = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=sink,
                                 stderr=subprocess.PIPE, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"matloop {' '.join(args)} failed ({child.returncode}): {err[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, int(peak_file.read_text()) / 1024  # kilobytes


def measure(backend: str, url: str, n: int, work: Path) -> Run:
    upgrade(url)
    started = time.perf_counter()
    fill(url, n)
    print(f"{backend}: filled {n:,} measurements in {time.perf_counter() - started:.0f} s", flush=True)
    load = f"{os.getloadavg()[0]:.1f}"
    csv_s, csv_cpu, csv_mb = timed(url, "history", NAME, "--format", "csv", out=work / f"{backend}.csv")
    with (work / f"{backend}.csv").open() as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    table_s, table_cpu, table_mb = timed(url, "history", NAME, out=work / f"{backend}.txt")
    shown = (work / f"{backend}.txt").read_text()
    expected = f"showing the newest 50 of {rows:,} rows"
    if expected not in shown:
        raise SystemExit(f"the table did not say {expected!r}:\n{shown[-1500:]}")
    return Run(backend, rows, load, csv_s, csv_cpu, csv_mb, table_s, table_cpu, table_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 measurements (the test suite's form)")
    parser.add_argument("--rows", type=int, default=None, help="measurements to store (default 100,000)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    n = args.rows or (2_000 if args.quick else 100_000)
    if n < 1 or n > 10_000_000:
        parser.error("--rows must be between 1 and 10,000,000")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="matloop-history-") as tmp:
        work = Path(tmp)
        if args.backend in ("sqlite", "both"):
            runs.append(measure("sqlite", f"sqlite:///{work / 'history.sqlite'}", n, work))
        if args.backend in ("postgres", "both"):
            from tests.support.postgres import start_postgres

            try:
                server = start_postgres()
            except FileNotFoundError as exc:
                print(f"postgres: skipped ({exc})")
            else:
                try:
                    runs.append(measure("postgres", server.create_database("history"), n, work))
                finally:
                    server.stop()
    if not runs:
        raise SystemExit("no backend could be measured")
    print(f"{'backend':<10}{'rows':>10}{'load':>6}{'csv s':>8}{'csv cpu s':>11}{'csv MB':>8}{'table s':>9}{'table cpu s':>13}"
          f"{'table MB':>10}")
    for r in runs:
        print(f"{r.backend:<10}{r.rows:>10,}{r.load:>6}{r.csv_s:>8.2f}{r.csv_cpu:>11.2f}{r.csv_mb:>8.0f}{r.table_s:>9.2f}"
              f"{r.table_cpu:>13.2f}{r.table_mb:>10.0f}")
    print(f"summary: rows={max(r.rows for r in runs)} csv_s={max(r.csv_s for r in runs):.2f} "
          f"table_s={max(r.table_s for r in runs):.2f} "
          f"peak_mb={max(max(r.csv_mb, r.table_mb) for r in runs):.0f} worst_of={','.join(r.backend for r in runs)}")


if __name__ == "__main__":
    main()

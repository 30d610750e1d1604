"""Many campaigns at once on a work pool, with workers and the database restarted under them: is anything lost?

What a group running matloop on shared machines lives with, time-compressed: a Prefect server (on its own
PostgreSQL), the campaign deployment on the ``matloop`` process pool (``flows.deployments.deploy_to_pool``, what
``matloop deploy`` runs), two ``prefect worker`` processes, matloop's database on another PostgreSQL, and the
simulated lab's Branin scenario (an analytic function: the science is cheap, the orchestration is what is
measured). N campaigns start at once (20; 3 with ``--quick``), each ten iterations of 4 (two with
``--quick``): about an hour of lab time each (an experiment is 0.1 lab hours), at ``--time-scale`` real seconds
per lab second. Along the way, once the campaigns are that far into their budgets:

* a worker is SIGKILLed with its flow runs (the machine dies) and started again: this script, acting as the
  operator, marks the dead runs Crashed and runs those campaigns again (2 such restarts, 1 with ``--quick``);
* matloop's PostgreSQL stops abruptly and starts again a moment later (1 restart): the runs ride it out.

Every campaign whose run ended before the campaign stopped is run again (at most 5 times). At the end the lab,
which outlived everything, testifies: an experiment is *lost* when the lab ran it and the database does not know
its key, when it finished and no measurement was stored, or when its job ended ``lost``; *duplicated* when a key
ran twice, a job got two measurements, or one pick of a batch was submitted twice. Also reported: each step's
latency (Prefect's task-run times; the ``wait`` step, which is lab time, apart), the peak number of connections
to matloop's database, and each worker process's memory when it started and at the end.

    .venv/bin/python benchmarks/soak.py [--quick] [--campaigns N] [--iterations K] [--time-scale S] [--keep-logs DIR]

It ends with ``summary: campaigns=<n> lost=<l> duplicated=<d> p95_step_s=<s> mem_growth_mb=<m>`` and exits 1
when anything was lost or duplicated or a campaign did not finish. There is no baseline ratio: the quantities are
absolute (0 lost, 0 duplicated); run it before and after a change to compare latencies.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from agent.spec import Campaign  # noqa: E402
from agent.store import Database  # noqa: E402
from agent.store.migrate import upgrade  # noqa: E402
from agent.store.models import CampaignRecord, JobRecord, MeasurementRecord  # noqa: E402
from tests.support.labs import token_env  # noqa: E402
from tests.support.postgres import PostgresServer, start_postgres  # noqa: E402
from tests.support.prefect_pool import (  # noqa: E402
    Process,
    online_workers,
    start_prefect_server,
    start_worker,
    worker_of,
)
from tests.support.processes import matloop_env, wait_for  # noqa: E402

POOL = "matloop"
DEPLOYMENT = "matloop-campaign/campaign"
BATCH = 4
MAX_RERUNS = 5


def campaign_spec(name: str, url: str, token: str, iterations: int, seed: int) -> Campaign:
    """Branin on a 0.5-step grid (961 points), batches of 4, auto approval, ``iterations`` batches."""
    return Campaign.model_validate({
        "name": name, "seed": seed,
        "space": {"type": "parametric", "parameters": [
            {"name": "x1", "type": "continuous", "bounds": [-5.0, 10.0], "step": 0.5},
            {"name": "x2", "type": "continuous", "bounds": [0.0, 15.0], "step": 0.5},
        ]},
        "objectives": [{"property": "y", "goal": "minimize"}],
        "budget": {"max_experiments": BATCH * iterations},
        "batch_size": BATCH, "initial_design_size": BATCH,
        "adapters": {"lab": {"type": "simlab", "url": url, "token_env": token_env(token)}},
        "measurements": [{"properties": ["y"], "adapter": "lab", "fidelity": "branin",
                          "options": {"scenario": "branin"}}],
        "generator": {"type": "grid"}, "surrogate": {"type": "gp"},
    })


@dataclass
class Watch:
    """Background sampling: connections to matloop's database, and the workers' process trees' memory."""

    pg: PostgresServer
    database: str
    workers: dict[str, Process]
    peak_connections: int = 0
    peak_tree_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="soak-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        import psycopg

        conn = None
        while not self._stop.wait(0.25):
            try:
                if conn is None:
                    conn = psycopg.connect(f"host=127.0.0.1 port={self.pg.port} user={self.pg.user} dbname=postgres",
                                           autocommit=True, connect_timeout=2)
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                   (self.database,)).fetchone()
                self.peak_connections = max(self.peak_connections, int(row[0]) if row else 0)
            except Exception:  # noqa: BLE001 - the database is down on purpose now and then
                conn = None
            for process in list(self.workers.values()):
                self.peak_tree_mb = max(self.peak_tree_mb, tree_mb(process.pid))


def rss_mb(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def tree_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        return sum(rss_mb(p.pid) for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0.0


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.runs: dict[str, list[UUID]] = {}  # campaign -> its flow runs, in order
        self.reruns = 0
        self.memory: dict[str, list[float]] = {}  # worker name -> [rss at start, rss at end]
        self.events: list[str] = []
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {text}"
        self.events.append(line)
        print(line, flush=True)

    # -- running -----------------------------------------------------------------------------------------------

    def launch(self, spec: Campaign) -> None:
        from prefect.deployments import run_deployment

        run = run_deployment(DEPLOYMENT, timeout=0, parameters={
            "campaign": {"spec": spec.model_dump(mode="json")}, "poll_initial_seconds": 0.2, "poll_max_seconds": 2.0})
        self.runs.setdefault(spec.name, []).append(run.id)

    def state(self, flow_run_id: UUID) -> Any:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_flow_run(flow_run_id).state

    def crash(self, flow_run_id: UUID) -> None:
        """What the operator does in the UI for a run whose worker died: change its state to Crashed."""
        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Crashed(message="its worker was killed (soak)"), force=True)

    def process_gone(self, flow_run_id: UUID) -> bool:
        """True when the run's process (``host:pid``, set by its worker) no longer exists on this machine."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            pid = (client.read_flow_run(flow_run_id).infrastructure_pid or "").rpartition(":")[2]
        return pid.isdigit() and not psutil.pid_exists(int(pid))

    def start_worker(self, name: str, env: dict[str, str], workers: dict[str, Process]) -> None:
        workers[name] = start_worker(POOL, name, {**env, "PREFECT_HOME": str(self.work / f"home-{name}")},
                                     self.work / f"{name}-{len(self.events)}.log")

    def wait_online(self, names: set[str], since: datetime | None = None) -> None:
        """Until each worker has sent a heartbeat (after ``since``: a killed worker still looks online a while)."""
        from prefect.client.orchestration import get_client

        def ready() -> bool:
            if since is None:
                return names <= online_workers(POOL)
            with get_client(sync_client=True) as client:
                beats = {w.name: w.last_heartbeat_time for w in client.read_workers_for_work_pool(POOL)}
            return all(beats.get(n) is not None and beats[n] > since for n in names)

        wait_for(ready, 240, f"workers {sorted(names)} online")


def stopped_campaigns(db: Database) -> dict[str, str]:
    with db.reading() as session:
        return {r.name: r.status for r in session.scalars(select(CampaignRecord))}


def progress(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count(MeasurementRecord.id))) or 0


def audit(db: Database, lab: Any) -> tuple[int, int, list[str]]:
    """(lost, duplicated, the reasons): the lab, which outlived everything, against the database."""
    with db.reading() as session:
        jobs = list(session.scalars(select(JobRecord)))
        measured = Counter(session.scalars(select(MeasurementRecord.job_id)))
    experiments = lab.list(limit=1_000_000)
    by_key = {e.idempotency_key: e for e in experiments}
    keys = {j.idempotency_key for j in jobs}
    reasons: list[str] = []
    lost = duplicated = 0
    unknown = [k for k in by_key if k not in keys]
    if unknown:
        lost += len(unknown)
        reasons.append(f"{len(unknown)} experiment(s) the lab ran are unknown to the database")
    unmeasured = [j for j in jobs if j.idempotency_key in by_key and by_key[j.idempotency_key].status in
                  ("succeeded", "failed") and measured[j.id] == 0]
    if unmeasured:
        lost += len(unmeasured)
        reasons.append(f"{len(unmeasured)} finished experiment(s) have no stored measurement")
    gone = [j for j in jobs if j.status == "lost"]
    if gone:
        lost += len(gone)
        reasons.append(f"{len(gone)} job(s) ended lost")
    twice = sum(e.executions - 1 for e in experiments if e.executions > 1)
    if twice:
        duplicated += twice
        reasons.append(f"{twice} extra execution(s) of an idempotency key")
    multi = sum(n - 1 for n in measured.values() if n > 1)
    if multi:
        duplicated += multi
        reasons.append(f"{multi} extra measurement(s) of one job")
    per_item = Counter(j.batch_item_id for j in jobs if j.batch_item_id is not None)
    resubmitted = sum(n - 1 for n in per_item.values() if n > 1)
    if resubmitted:
        duplicated += resubmitted
        reasons.append(f"{resubmitted} pick(s) submitted more than once")
    return lost, duplicated, reasons


def step_latencies(flow_run_ids: list[UUID]) -> dict[str, list[float]]:
    """Seconds per task run (one loop step), by step name, from Prefect's record of the runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found: dict[str, list[float]] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)),
                                         limit=200, offset=offset)
            for task_run in page:
                if task_run.state is not None and task_run.state.is_completed():
                    name = task_run.name.split(" · ")[0]
                    found.setdefault(name, []).append(task_run.total_run_time.total_seconds())
            if len(page) < 200:
                return found
            offset += 200


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def run(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import deploy_to_pool
    from lab_adapters.simlab.inprocess import running_simlab

    with tempfile.TemporaryDirectory(prefix="matloop-soak-") as tmp:
        work = Path(tmp)
        soak = Soak(args, work)
        prefect_pg, matloop_pg = start_postgres(), start_postgres()
        server = None
        workers: dict[str, Process] = {}
        watch: Watch | None = None
        try:
            matloop_db = matloop_pg.create_database("matloop")
            upgrade(matloop_db)
            server = start_prefect_server(prefect_pg.create_database("prefect"), work / "prefect-home",
                                          work / "prefect-server.log")
            soak.log(f"prefect server on PostgreSQL at {server.url}; matloop's database on another PostgreSQL")
            with temporary_settings(updates={PREFECT_API_URL: server.url}), \
                    running_simlab(scenarios=["branin"], time_scale=args.time_scale,
                                   instruments={"evaluator": 4 * args.campaigns}) as lab:
                deploy_to_pool(POOL)
                specs = [campaign_spec(f"soak-{i:02d}", lab.url, lab.token, args.iterations, seed=i)
                         for i in range(args.campaigns)]
                env = matloop_env(database_url=matloop_db, data_dir=work / "data", prefect_api=server.url)
                for name in ("worker-1", "worker-2"):
                    soak.start_worker(name, env, workers)
                soak.wait_online(set(workers))
                for name, process in workers.items():
                    soak.memory[name] = [rss_mb(process.pid), 0.0]
                soak.log(f"2 workers online; starting {len(specs)} campaigns")
                watch = Watch(matloop_pg, matloop_db.rsplit("/", 1)[1], workers)
                watch.start()
                for spec in specs:
                    soak.launch(spec)
                finished = operate(soak, specs, workers, env, matloop_pg, Database(matloop_db), args)
                for name, process in workers.items():
                    soak.memory[name][1] = rss_mb(process.pid)
                watch.stop()
                return report(soak, specs, finished, Database(matloop_db), lab.lab, watch)
        finally:
            if watch is not None:
                watch.stop()
            for process in workers.values():
                process.stop()
            if server is not None:
                server.process.stop()
            prefect_pg.stop()
            matloop_pg.stop()
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in work.glob("*.log"):
                    shutil.copy(log, args.keep_logs / log.name)


def operate(soak: Soak, specs: list[Campaign], workers: dict[str, Process], env: dict[str, str],
            matloop_pg: PostgresServer, db: Database, args: argparse.Namespace) -> bool:
    """Watch the campaigns to the end: restart workers and the database on schedule, run ended campaigns again."""
    total = len(specs) * BATCH * args.iterations
    worker_restarts = [0.25, 0.6][: args.worker_restarts]
    database_restarts = [0.45][: args.database_restarts]
    by_name = {s.name: s for s in specs}
    deadline = time.monotonic() + args.timeout

    def restarts_due() -> None:
        """Run the restarts whose share of the budget is reached. Checked between any two campaigns' checks, not
        once per pass: a pass over 20 campaigns on a loaded box takes minutes, so a once-per-pass check fired the
        restarts late (at 81% instead of 45% and 60%), when most campaigns had already stopped."""
        try:
            done = progress(db) / total
        except Exception:  # noqa: BLE001 - the database is restarting
            return
        if worker_restarts and done >= worker_restarts[0]:
            worker_restarts.pop(0)
            restart_a_worker(soak, workers, env, done)
        if database_restarts and done >= database_restarts[0]:
            database_restarts.pop(0)
            soak.log(f"at {done:.0%} of the budget: matloop's PostgreSQL stops abruptly for "
                     f"{args.outage_seconds:g} s, then starts again")
            matloop_pg.outage(args.outage_seconds)
            soak.log("PostgreSQL is back")

    try:
        while time.monotonic() < deadline:
            try:
                statuses = stopped_campaigns(db)
            except Exception:  # noqa: BLE001 - the database is restarting
                time.sleep(1)
                continue
            if all(statuses.get(s.name) == "stopped" for s in specs):
                soak.log("every campaign stopped")
                return True
            for name, runs in soak.runs.items():
                restarts_due()
                state = soak.state(runs[-1])
                if state is not None and not state.is_final() and soak.process_gone(runs[-1]):
                    soak.log(f"{name}: flow run {runs[-1]} is {state.name} but its process is gone: marked Crashed")
                    soak.crash(runs[-1])
                    state = soak.state(runs[-1])
                if state is None or not state.is_final() or len(runs) > MAX_RERUNS:
                    continue
                try:  # now, not at the top of the pass: a run that ended Completed meanwhile stopped its campaign
                    stopped = stopped_campaigns(db).get(name) == "stopped"
                except Exception:  # noqa: BLE001 - the database is restarting: look again next pass
                    continue
                if not stopped:
                    soak.reruns += 1
                    soak.log(f"{name}: its run ended {state.name} ({(state.message or '')[:120]}); running it again")
                    soak.launch(by_name[name])
            time.sleep(1)
        soak.log(f"timed out after {args.timeout:.0f} s")
        return False
    finally:
        db.dispose()


def log_evidence(work: Path) -> dict[str, int]:
    """What the workers' output (their flow runs' logs) says about the outages: the transient database errors the
    step retries and the between-step reads rode out, and any driver error or traceback that reached a run."""
    text = "\n".join(log.read_text(errors="replace") for log in sorted(work.glob("worker-*.log")))
    return {
        "step_retries": len(re.findall(r"Task run failed with exception: Database(Unreachable|Busy)\(.*Retry", text)),
        "between_steps": text.count("database unavailable between steps"),
        "lease_renewals_retried": text.count("could not renew the run lease"),
        "raw_driver_errors": len(re.findall(r"^(psycopg|sqlalchemy\.exc)\.\w+Error", text, re.MULTILINE)),
        "tracebacks": text.count("Traceback (most recent call last)"),
    }


def restart_a_worker(soak: Soak, workers: dict[str, Process], env: dict[str, str], done: float) -> None:
    """SIGKILL the worker running the most campaign runs and start it again (the operator's loop then marks its
    dead runs Crashed and runs those campaigns again)."""
    running: dict[str, list[UUID]] = {name: [] for name in workers}
    for runs in soak.runs.values():
        state = soak.state(runs[-1])
        if state is not None and not state.is_final():
            who = worker_of(runs[-1])
            if who in running:
                running[who].append(runs[-1])
    name = max(running, key=lambda n: len(running[n]))
    soak.log(f"at {done:.0%} of the budget: SIGKILL {name} with its {len(running[name])} flow run(s)")
    killed_at = datetime.now(UTC)
    workers[name].kill()
    soak.start_worker(name, env, workers)
    soak.wait_online({name}, since=killed_at)
    soak.memory[name] = [rss_mb(workers[name].pid), 0.0]
    soak.log(f"{name} is back")


def report(soak: Soak, specs: list[Campaign], finished: bool, db: Database, lab: Any, watch: Watch) -> int:
    try:
        lost, duplicated, reasons = audit(db, lab)
        statuses = stopped_campaigns(db)
        with db.reading() as session:
            jobs = session.scalar(select(func.count(JobRecord.id))) or 0
    finally:
        db.dispose()
    latencies = step_latencies([r for runs in soak.runs.values() for r in runs])
    steps = [s for name, values in latencies.items() if name != "wait" for s in values]
    waits = latencies.get("wait", [])
    stopped = sum(statuses.get(s.name) == "stopped" for s in specs)
    growth = max((end - start for start, end in soak.memory.values()), default=0.0)
    print()
    print(f"campaigns {len(specs)} ({stopped} stopped), experiments {jobs}, runs started "
          f"{sum(len(r) for r in soak.runs.values())} ({soak.reruns} run again), lab time scale {soak.args.time_scale:g}")
    print(f"lost {lost}, duplicated {duplicated}" + (": " + "; ".join(reasons) if reasons else ""))
    print(f"step latency (s, {len(steps)} steps, `wait` apart): p50 {quantile(steps, 0.5):.2f}  "
          f"p95 {quantile(steps, 0.95):.2f}  max {max(steps, default=0):.2f}; wait p50 {quantile(waits, 0.5):.2f} "
          f"p95 {quantile(waits, 0.95):.2f}")
    print("  p95 by step: " + ", ".join(f"{name} {quantile(values, 0.95):.2f}" for name, values in
                                        sorted(latencies.items())))
    evidence = log_evidence(soak.work)
    print(f"database outage in the runs' logs: {evidence['step_retries']} step retries and "
          f"{evidence['between_steps']} between-step waits on DatabaseUnreachable/Busy, "
          f"{evidence['lease_renewals_retried']} lease renewals retried; raw driver errors "
          f"{evidence['raw_driver_errors']}, tracebacks {evidence['tracebacks']}")
    print(f"peak connections to matloop's database: {watch.peak_connections}")
    print("worker memory (MB, the `prefect worker` process): " + ", ".join(
        f"{name} {start:.0f} -> {end:.0f}" for name, (start, end) in sorted(soak.memory.items()))
          + f"; peak of a worker with its flow runs {watch.peak_tree_mb:.0f}")
    print(f"summary: campaigns={len(specs)} lost={lost} duplicated={duplicated} "
          f"p95_step_s={quantile(steps, 0.95):.2f} mem_growth_mb={growth:.0f}")
    return 0 if finished and lost == 0 and duplicated == 0 and stopped == len(specs) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 campaigns of 2 iterations, 1 worker restart, "
                        "1 database restart (the test suite's form)")
    parser.add_argument("--campaigns", type=int, default=None, help="campaigns at once (default 20)")
    parser.add_argument("--iterations", type=int, default=None, help="batches of 4 per campaign (default 10)")
    parser.add_argument("--time-scale", type=float, default=1e-3, help="real seconds per lab second")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the server's and workers' logs here")
    args = parser.parse_args()
    args.campaigns = args.campaigns or (3 if args.quick else 20)
    args.iterations = args.iterations or (2 if args.quick else 10)
    args.worker_restarts = 1 if args.quick else 2
    args.database_restarts = 1
    args.outage_seconds = 1.0 if args.quick else 5.0
    args.timeout = args.timeout or (600.0 if args.quick else 3600.0)
    if not 1 <= args.campaigns <= 200 or not 1 <= args.iterations <= 1000 or not args.time_scale > 0:
        parser.error("--campaigns must be 1..200, --iterations 1..1000, --time-scale positive")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    raise SystemExit(run(args))


if __name__ == "__main__":
    main()

"""``matloop run``, ``serve``, ``deploy``, ``approve`` and ``demo``: running campaigns on Prefect."""

from __future__ import annotations

import os
import threading
import time
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from agent.spec import Campaign, CampaignFileError, load_campaign
from cli.campaign_files import print_campaign_problems
from cli.common import console, fail, plain_store_errors
from cli.compute import ADDRESS_HELP, COMPUTE_HELP, THREADS_HELP, WORKERS_HELP, ComputeChoice, announce, compute_options

EXIT_INTERRUPTED = 130  # what a shell reports for a process ended by Ctrl-C


class ApprovalChoice(StrEnum):
    auto = "auto"
    manual = "manual"
    auto_below_cost = "auto_below_cost"


def _load(path: Path) -> Campaign:
    try:
        return load_campaign(path)
    except CampaignFileError as exc:
        raise print_campaign_problems(exc) from None


class BudgetProgress:
    """A rich progress bar of the budget, fed from the database by a background thread (the DB is the truth)."""

    def __init__(self, campaign: Campaign, database_url: str | None, interval: float = 1.0) -> None:
        self.campaign = campaign
        self.database_url = database_url
        self.interval = interval
        self._stop = threading.Event()
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[text]}"),
                                  TimeElapsedColumn(), console=console, transient=False)
        self._task = self._progress.add_task(campaign.name, total=100, text="starting")
        self._thread = threading.Thread(target=self._loop, name="matloop-progress", daemon=True)
        self._waiting = False  # the campaign waited for a decision at the last update

    def __enter__(self) -> BudgetProgress:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._update()
        self._progress.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def _update(self) -> None:
        from agent.loop.context import LoopContext
        from agent.store import Database
        from agent.store.campaigns import get_campaign
        from flows.artifacts import budget_fraction

        try:
            db = Database(self.database_url)
            try:
                with db.reading() as session:
                    record = get_campaign(session, self.campaign.name)
                    status = record.status
                ctx = LoopContext(db=db, campaign=self.campaign, campaign_id=record.id, adapters={})
                fraction, text = budget_fraction(ctx)
            finally:
                db.dispose()
        except Exception:  # noqa: BLE001 - not registered yet, or a busy moment: show it next time
            return
        self._progress.update(self._task, completed=100 * fraction, text=f"{text} [{status}]")
        if status == "waiting" and not self._waiting:
            # The flow says so in its Prefect log (the UI's log tab); the terminal shows only warnings: say it here.
            self._progress.console.print(
                f"a batch waits for approval: `matloop approve {self.campaign.name} --by NAME` "
                "(add --drop ID or --reject), or answer the form of this run in the Prefect UI", highlight=False)
        self._waiting = status == "waiting"


def _print_summary(summary: dict[str, Any] | Any, reference: float | None = None) -> None:
    from agent.run import RunSummary

    result = RunSummary.model_validate(summary).model_dump()  # the flow's result is the summary as a dict
    best = result.get("best")
    line = f"best {result['objective']}: {best:.4g}" if best is not None else "no successful result"
    if reference is not None:
        line += f" (plate best {reference:.4g})"
    console.print(
        f"[bold]{result['campaign']}[/]: {result['status']}"
        + (f" — {result['stop_reason']}" if result.get("stop_reason") else "")
        + f"\n{line}; experiments {result['experiments']} ({result['failed']} failed); "
        f"iterations {result['iterations']}"
    )
    if result.get("best_candidate"):
        # a point's parameters as a dict (copy-pasteable); a structure or an image by its label, not its data
        shown = result["best_candidate"] if result.get("best_kind") in ("point", "composition", None) else (
            result.get("best_label"))
        console.print(f"best candidate: {shown}")
    pick = result.get("recommended")
    if pick and (pick.get("content") is not None or pick.get("label")):
        from agent.loop.state import model_label

        console.print(
            f"model's pick (best posterior mean among measured, {model_label(pick)}): "
            f"{pick['content'] if pick.get('content') is not None else pick['label']}: "
            f"predicted {pick['mean']:.4g} ± {pick['std']:.2g}, measured {pick['measured']:.4g}"
        )


def run(
    path: Path = typer.Argument(..., help="campaign file", exists=True, dir_okay=False),
    approval: ApprovalChoice | None = typer.Option(None, "--approval", help="override the campaign's approval policy"),
    max_iterations: int | None = typer.Option(None, "--max-iterations", min=1, help="stop this run after N iterations"),
    resume: bool = typer.Option(False, "--resume", help="continue a campaign that already has history"),
    compute: ComputeChoice | None = typer.Option(None, "--compute", help=COMPUTE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=ADDRESS_HELP),
    dask_workers: int | None = typer.Option(None, "--dask-workers", help=WORKERS_HELP),
    dask_threads: int | None = typer.Option(None, "--dask-threads", help=THREADS_HELP),
) -> None:
    """Run a campaign as a Prefect flow until it stops (or --max-iterations), showing the budget spent."""
    spec = _load(path)
    compute_options(compute, dask_address, dask_workers, dask_threads)  # a bad setting: one sentence, nothing run
    from prefect.exceptions import TerminationSignal

    from cli.ephemeral import ephemeral_server_dies_with_us, terminate_gracefully
    from flows.campaign import campaign_flow
    from flows.inputs import CampaignSource

    _refuse_early(spec, path, resume)
    try:
        with plain_store_errors(), terminate_gracefully(), ephemeral_server_dies_with_us(), \
                BudgetProgress(spec, None):
            state = campaign_flow(
                CampaignSource(path=str(path.resolve())), approval=approval.value if approval else "campaign",
                max_iterations=max_iterations, resume=resume, return_state=True,
            )
    except (KeyboardInterrupt, TerminationSignal):
        raise fail(f"interrupted; campaign {spec.name} is paused at its last committed step. "
                   f"Continue it with `matloop run {path} --resume`.", EXIT_INTERRUPTED) from None
    if state.is_failed():
        from agent.store import StoreError

        try:
            state.result()
        except StoreError as exc:  # a refusal (another run took the campaign meanwhile...): its own sentence
            raise fail(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - shown as one sentence
            raise fail(f"campaign {spec.name} stopped with an error: {exc}. "
                       f"Fix it and continue with `matloop run {path} --resume`.") from None
    _print_summary(state.result())


def _refuse_early(spec: Campaign, path: Path, resume: bool) -> None:
    """Say a refusal (name exists without --resume, another live run, finished campaign) before any flow run.

    The flow refuses the same way (a run started from the UI has no CLI in front of it), with the same
    code (:func:`agent.run.preflight` is :class:`agent.run.CampaignRun`'s own check), but from the CLI that
    would surface as Prefect's logged traceback and a progress bar of the old campaign.
    """
    from agent.run import preflight
    from agent.store import Database
    from agent.store.migrate import head_revision
    from flows.runs import prefect_run_is_over

    db = Database()
    try:
        with plain_store_errors():
            if db.current_revision() != head_revision():
                return  # brand-new (the flow sets it up) or outdated (the flow says how to upgrade)
            # plain_store_errors shows its refusal (a StoreError) as one sentence
            preflight(db, spec, resume=resume, resume_hint=f"continue it with `matloop run {path} --resume`",
                      run_is_over=prefect_run_is_over(db))
    finally:
        db.dispose()


def serve(
    name: str = typer.Option("campaign", "--name", help="deployment name"),
    limit: int | None = typer.Option(None, "--limit", help="most campaign runs at the same time"),
    compute: ComputeChoice | None = typer.Option(None, "--compute", help=COMPUTE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=ADDRESS_HELP),
    dask_workers: int | None = typer.Option(None, "--dask-workers", help=WORKERS_HELP),
    dask_threads: int | None = typer.Option(None, "--dask-threads", help=THREADS_HELP),
) -> None:
    """Serve the campaign deployment, so campaigns can be started from the Prefect UI (Ctrl-C stops)."""
    from flows.deployments import serve_deployments

    setting = compute_options(compute, dask_address, dask_workers, dask_threads)  # each served run reads it
    console.print(announce(setting), highlight=False)

    serve_deployments(name=name, limit=limit)


def deploy(
    pool: str = typer.Option("matloop", "--pool", help="work pool (a process pool is created if missing)"),
    name: str = typer.Option("campaign", "--name", help="deployment name"),
    image: str | None = typer.Option(None, "--image", help="image the jobs run (Docker or Kubernetes pools only)"),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE for the flow runs' environment (repeatable; "
                                  "no secrets: those stay in the workers' environment)"),
) -> None:
    """Deploy the campaign flow to a work pool, so `prefect worker start --pool POOL` on any machine runs campaigns."""
    from rich.markup import escape

    from flows.deployments import DeployError, check_env, deploy_to_pool

    try:
        result = deploy_to_pool(pool, name, image=image, env=check_env(env))
    except DeployError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"[green]✓[/] work pool {escape(result.pool)} ({result.pool_type}) "
        f"{'created' if result.pool_created else 'already there'}; deployment {escape(result.deployment)} "
        f"{'created' if result.deployment_created else 'updated'} (id {result.deployment_id})", highlight=False)
    workers = (f"{result.workers_online} worker(s) online" if result.workers_online else "no worker online yet")
    console.print(f"{workers}; start one on each machine with `prefect worker start --pool {escape(result.pool)}` "
                  "(MATLOOP_DATABASE_URL and PREFECT_API_URL set there), then run campaigns from the Prefect UI",
                  highlight=False)


def approve(
    name: str = typer.Argument(..., help="campaign name"),
    by: str = typer.Option(..., "--by", help="your name (stored with the decision)"),
    drop: list[int] = typer.Option([], "--drop", help="candidate id to leave out (repeatable)"),
    reject: bool = typer.Option(False, "--reject", help="reject the batch; it is re-proposed without its candidates"),
    note: str | None = typer.Option(None, "--note", help="why"),
) -> None:
    """Decide on the batch a campaign waits on: approve (optionally dropping candidates) or reject it."""
    from pydantic import ValidationError

    from cli.common import open_database
    from flows.approval import send_decision
    from flows.inputs import ApprovalInput, input_problems

    if reject and drop:
        raise fail("give either --reject or --drop, not both")
    try:  # the approver rule lives in ApprovalInput (the UI's form refuses the same names)
        answer = ApprovalInput(approver=by, decision="reject" if reject else "approve", drop=drop, note=note)
    except ValidationError as exc:
        raise fail(input_problems(exc).replace("approver:", "--by:", 1)) from None
    db = open_database()
    with plain_store_errors():
        message = send_decision(db, name, answer)
    console.print(f"[green]✓[/] {message}")


def demo(
    out: Path = typer.Option(Path("matloop-demo"), "--out", help="folder for the report and the demo database"),
) -> None:
    """Run the OER demo campaign end to end (in-process lab, SQLite, Prefect) and write a report to OUT."""
    from cli.ephemeral import ephemeral_server_dies_with_us, terminate_gracefully
    from flows.demo import run_demo

    started = time.monotonic()
    with plain_store_errors(), terminate_gracefully(), ephemeral_server_dies_with_us():
        result, report, reference = run_demo(out, progress=lambda spec, url: BudgetProgress(spec, url, interval=0.5))
    _print_summary(result, reference)
    console.print(f"report: {report.summary}, {report.plot}, {report.history} "
                  f"({time.monotonic() - started:.0f} s)")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(serve)
    app.command()(deploy)
    app.command()(approve)
    app.command()(demo)
    # Prefect's ephemeral API starts a server subprocess; on a busy 2-core machine its default 20 s is too short.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # A campaign's logs (each step's outcome, the approval hint with its command) reach the Prefect API, so the
    # UI's log tab shows them, for served runs (their flow-run processes inherit this environment) and CLI runs
    # alike; only the terminal's console handler is kept at WARNING, so `matloop run`'s progress bar stays readable.
    # A PREFECT_LOGGING_LEVEL the user sets is theirs, for the API and the terminal alike (as it was before).
    if "PREFECT_LOGGING_LEVEL" not in os.environ:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls (and no errors offline)
    # gpytorch's jitter notices are about numerics we already handle; they drown the progress display
    warnings.filterwarnings("ignore", module=r"(linear_operator|gpytorch)(\..*)?")

"""The campaign flow: the loop of DESIGN.md as a Prefect flow, each step a named task with retries.

The flow is a thin shell over :func:`agent.loop.run_campaign`: a
:class:`agent.run.CampaignRun` opens the database, registers the campaign (or
refuses the run in one sentence) and holds its lease; the flow opens the
adapters and injects (1) a
step runner that runs every step as a Prefect task (retried on transient
errors, visible per iteration in the UI), (2) the approval pause, (3) the
artifact publisher, and (4) the executor the heavy steps fan out on
(``MATLOOP_COMPUTE``: in-process, or Dask through prefect-dask; flows/compute.py).  All state is in the database, so re-running the flow
(``matloop run --resume``, or re-running the deployment) resumes the campaign.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from agent.adapters import open_adapters
from agent.loop import Hooks, LoopContext, run_campaign
from agent.loop.context import Backoff
from agent.loop.outage import TRANSIENT_RETRY_DELAYS, read_through_outage
from agent.loop.state import latest_iteration
from agent.run import LOCK_TTL, CampaignRun, open_database
from agent.spec import Approval, Campaign
from agent.store import Database, DatabaseBusy, DatabaseUnreachable, StoreError
from flows.approval import ask_person_in_prefect
from flows.artifacts import ArtifactPublisher
from flows.compute import ComputeUnavailable, open_fan_out
from flows.inputs import CampaignSource
from flows.logs import step_finished
from flows.refusal import quiet_refusal
from flows.runs import prefect_run_is_over
from matloop.compute import Compute, fanning_out
from matloop.settings import ComputeSettingError, get_compute, get_settings
from matloop.types import AdapterError

log = logging.getLogger(__name__)

#: Retries of a step that failed for a transient reason (lab unreachable, database busy or restarting): the
#: schedule the loop's reads between steps use too (agent/loop/outage.py; 42 s, the first policy, was shorter than
#: a database restart). Should a second run take the campaign's lease meanwhile, this one stops at its next step
#: (agent/store/lease.py): a lost lease (LeaseHeld) is not transient, so it is never retried.
STEP_RETRY_DELAYS = list(TRANSIENT_RETRY_DELAYS)
STEP_RETRIES = len(STEP_RETRY_DELAYS)

__all__ = ["LOCK_TTL", "campaign_flow", "is_transient", "open_database", "prefect_step_runner"]


def is_transient(exc: BaseException | None) -> bool:
    """Errors worth retrying: the lab or the database briefly unreachable or busy."""
    if exc is None:
        return False
    if isinstance(exc, AdapterError):
        return exc.transient
    return isinstance(exc, (DatabaseUnreachable, DatabaseBusy, httpx.TransportError, ConnectionError, TimeoutError))


def _retry_condition(task_: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we classify, not handle
        return is_transient(exc)
    return False


def prefect_step_runner(ctx: LoopContext, renew_lock: Callable[[], None]) -> Callable[..., Any]:
    """Run each loop step as a Prefect task named after the step and its iteration."""

    def run_step(name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        last = read_through_outage(ctx.db, lambda session: latest_iteration(session, ctx.campaign_id))
        number = 0 if last is None else last.number + (1 if last.step == "complete" and name != "drain" else 0)

        def call() -> Any:
            renew_lock()  # inside the task: a database blip is retried with the step; a lost lease stops it
            return function(*args, **kwargs)

        # The step's inputs (pools, fitted models) stay out of Prefect's parameter walk: the closure takes none.
        call.__name__ = call.__qualname__ = name
        step_task = task(
            call, name=name, task_run_name=f"{name} · iteration {number}", retries=STEP_RETRIES,
            retry_delay_seconds=STEP_RETRY_DELAYS, retry_condition_fn=_retry_condition, cache_policy=NO_CACHE,
            persist_result=False,
        )
        result = step_task()
        step_finished(ctx, name, number, args, result)  # flows/logs.py: its outcome in the run's log, in words
        return result

    return run_step


def _generated_words() -> tuple[set[str], set[str]]:
    """The words of Prefect's generated two-word run names (``coolname``: an adjective, then a subject)."""
    import coolname.data

    config = coolname.data.config

    def words(name: str) -> set[str]:
        entry = config[name]
        found = set(entry.get("words", ()))
        for sub in entry.get("lists", ()):
            found |= words(sub)
        return found

    return words("adj_any"), words("subj")


#: The Prefect UI's run form pre-fills a made-up name of its own: a Greek letter (with a suffix), then two words,
#: e.g. ``omicron-komchen-vector`` or ``epsilon2-jerido-kiwi``.
_UI_GENERATED = re.compile(
    r"^(alpha|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa|lambda|mu|nu|xi|omicron|pi|rho|sigma|tau|upsilon"
    r"|phi|chi|psi|omega)[a-z0-9]*-[a-z0-9]+-[a-z0-9]+$"
)


def looks_generated(name: str) -> bool:
    """True for a name Prefect made up (``crafty-gecko``, or the UI form's ``omicron-komchen-vector``), False
    for one a person typed in the run form.

    Prefect applies the flow's ``flow_run_name`` even to a run created with a name, so the callable must
    keep a typed name itself. A made-up name is two words of Prefect's (coolname's) lists, or the UI form's
    pre-filled pattern; a person who types a name of that very shape gets the campaign's name instead.
    """
    if _UI_GENERATED.match(name):
        return True
    first, _, rest = name.partition("-")
    if not rest:
        return False
    adjectives, subjects = _generated_words()
    return first in adjectives and rest in subjects


def campaign_name_of(source: Any) -> str | None:
    """The campaign's name from the flow's ``campaign`` parameter, without reading more than needed."""
    if isinstance(source, CampaignSource):
        if source.spec is not None:
            return source.spec.name
        try:
            return source.load().name
        except Exception:  # noqa: BLE001 - the flow itself reports a bad file, in its words
            return None
    if isinstance(source, dict):
        spec = source.get("spec")
        if isinstance(spec, dict) and spec.get("name"):
            return str(spec["name"])
        if source.get("path"):
            try:
                return CampaignSource(path=source["path"]).load().name
            except Exception:  # noqa: BLE001 - as above
                return None
    return None


def _run_name() -> str:
    """``campaign-<name>``; a name typed in the run form (anything Prefect did not make up) is kept."""
    from prefect.runtime import flow_run

    current = flow_run.name
    if current and not looks_generated(current):
        return current
    name = campaign_name_of(flow_run.parameters.get("campaign"))
    return f"campaign-{name}" if name else (current or "campaign")


def campaign_tag(name: str) -> str:
    return f"campaign:{name}"


def worker_tag() -> str | None:
    """``worker:<name>`` for a run a work-pool worker started (Prefect gives the run its worker's name)."""
    name = os.environ.get("PREFECT__WORKER_NAME")
    return f"worker:{name}" if name else None


def _tag_run(flow_run_id: str | None, name: str) -> None:
    """Tag the flow run with its campaign, so the UI filters a campaign's runs, and with the worker that runs it,
    so a person sees which machine to look at among many (a nicety: never fatal)."""
    if not flow_run_id:
        return
    from uuid import UUID

    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
            wanted = [tag for tag in (campaign_tag(name), worker_tag()) if tag and tag not in run.tags]
            if wanted:
                client.update_flow_run(UUID(flow_run_id), tags=[*run.tags, *wanted])
    except Exception as exc:  # noqa: BLE001 - the tag is for people browsing the UI
        log.warning("could not tag the flow run with its campaign: %s", exc)


ApprovalParameter = Literal["campaign", "auto", "manual", "auto_below_cost"]


@flow(name="matloop-campaign", flow_run_name=_run_name, log_prints=True, validate_parameters=True)
def campaign_flow(
    campaign: CampaignSource,
    approval: ApprovalParameter = "campaign",
    max_iterations: Annotated[int | None, Field(ge=1)] = None,
    resume: bool = True,
    database_url: str | None = None,
    poll_initial_seconds: Annotated[float, Field(gt=0)] = 0.5,
    poll_max_seconds: Annotated[float, Field(gt=0)] = 60.0,
) -> dict[str, Any]:
    """Run (or resume) a campaign until it stops or ``max_iterations`` more iterations are done.

    One live run per campaign: a second run of a campaign another run holds is refused in one sentence
    (:class:`agent.run.CampaignRun`), and so is a relaunch of a finished campaign.  The parameters' texts
    below are what the Prefect UI shows in the run form.

    Args:
        campaign: The campaign to run: the path of a campaign YAML file on the machine running the flow,
            or the whole spec inline.
        approval: Who approves each batch in this run. 'campaign' follows the campaign file; 'auto' sends
            every batch; 'manual' waits for a person (the form of this run, or `matloop approve`);
            'auto_below_cost' waits only for batches dearer than the campaign's cost_limit. An override is
            logged; the stored spec is unchanged.
        max_iterations: Stop this run after this many more iterations (the campaign is then paused, and
            resumable). Empty: run until the campaign stops.
        resume: Continue a campaign that already has history in the database. Off: a campaign of the same
            name is refused, so a new campaign never mixes with an old one's history.
        database_url: The campaign database (an SQLAlchemy URL). Empty: MATLOOP_DATABASE_URL on the machine
            running the flow.
        poll_initial_seconds: First wait between polls of the lab for results, in seconds; it doubles up to
            poll_max_seconds.
        poll_max_seconds: Longest wait between polls of the lab for results, in seconds.
    """
    from prefect.runtime import flow_run

    spec = campaign.load()
    try:  # where heavy steps run is this machine's setting (MATLOOP_COMPUTE), never the campaign's: docs/dask.md
        compute = get_compute()
    except ComputeSettingError as exc:
        return _refused(exc)
    flow_run_id = str(flow_run.id) if flow_run.id else None
    _tag_run(flow_run_id, spec.name)
    url = database_url or get_settings().resolved_database_url
    db = Database(url)  # only to ask Prefect about other runs' states (their API URLs are in the audit log)
    try:
        run = CampaignRun(spec, database_url=url, resume=resume, flow_run_id=flow_run_id,
                          run_is_over=prefect_run_is_over(db), ttl=LOCK_TTL)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(run)
            except StoreError as exc:
                return _refused(exc)
            return _run(run, campaign, spec, approval, max_iterations, poll_initial_seconds, poll_max_seconds,
                        compute)
    finally:
        db.dispose()


def _refused(exc: Exception) -> Any:
    """A run refused before it did anything ends Failed with the sentence as its message, and no traceback.

    Raising would log Prefect's traceback (in the UI, and on the terminal of a `matloop run` that raced
    another one past the CLI's own early check); the exception rides along as the state's data, so
    ``state.result()`` still raises it for the CLI to print.
    """
    from prefect.states import Failed

    print(f"refused: {exc}")
    quiet_refusal(exc)  # a worker's engine process would log the refusal again, as a traceback (flows/refusal.py)
    return Failed(message=str(exc), data=exc)


def _run(
    run: CampaignRun, campaign: CampaignSource, spec: Campaign, approval: ApprovalParameter,
    max_iterations: int | None, poll_initial_seconds: float, poll_max_seconds: float, compute: Compute,
) -> dict[str, Any]:
    run_spec = spec
    if approval != "campaign" and approval != spec.approval.policy:
        limit = spec.approval.cost_limit if approval == "auto_below_cost" else None
        run_spec = spec.model_copy(update={"approval": Approval(policy=approval, cost_limit=limit)})
        run.record_approval_override(approval, spec.approval.policy)
    publisher = ArtifactPublisher()
    with contextlib.ExitStack() as stack:
        try:
            fan_out = stack.enter_context(open_fan_out(compute))
        except ComputeUnavailable as exc:
            return _refused(exc)
        stack.enter_context(fanning_out(fan_out))  # the heavy steps below reach it through matloop.compute
        return _run_on(run, campaign, spec, run_spec, publisher, max_iterations, poll_initial_seconds,
                       poll_max_seconds)


def _run_on(
    run: CampaignRun, campaign: CampaignSource, spec: Campaign, run_spec: Campaign, publisher: ArtifactPublisher,
    max_iterations: int | None, poll_initial_seconds: float, poll_max_seconds: float,
) -> dict[str, Any]:
    db, campaign_id = run.database, run.campaign_id
    with open_adapters(run_spec) as adapters:
        ctx = LoopContext(
            db=db, campaign=run_spec, campaign_id=campaign_id, adapters=adapters,
            artifacts_dir=get_settings().data_dir / "campaigns" / spec.name, base_dir=campaign.base_dir,
            backoff=Backoff(initial=poll_initial_seconds, maximum=poll_max_seconds),
        )
        outcome = run_campaign(
            ctx, run_step=prefect_step_runner(ctx, run.renew), ask_person=ask_person_in_prefect,
            max_iterations=max_iterations,
            hooks=Hooks(on_batch=publisher.batch, on_iteration=publisher.progress),
        )
        if outcome.status == "paused":
            run.record_paused(outcome.reason)
        result = run.summary(run_spec).model_dump(mode="json")
        publisher.finish(ctx, result, outcome.reason)
        print(f"campaign {spec.name}: {result['status']} — {result['stop_reason'] or outcome.reason}")
        return result

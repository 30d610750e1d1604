"""The campaign flow as a deployment: served by one process (``matloop serve``) or on a work pool (``matloop deploy``).

The deployment's parameters are the flow's typed signature: ``campaign`` is a
:class:`flows.inputs.CampaignSource` (a file path or a whole inline spec),
whose JSON schema the UI renders as a form.  Both ways build the deployment with
:func:`campaign_deployment`, so the run form is the same whichever way it runs.

On a work pool the flow is found by its module path (``flows.campaign.campaign_flow``), not by a file in a
project directory nor by code pulled from storage: a process worker runs it from the matloop installed in its
own environment (``pip install matloop`` on each machine, or the project image), so every worker runs the same
code and nothing is uploaded.  A Docker or Kubernetes pool runs the same deployment in containers of an image
with matloop installed (``--image``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flows.campaign import campaign_flow

DEPLOYMENT_NAME = "campaign"
#: The work pool ``matloop deploy`` creates (and workers name in ``prefect worker start --pool matloop``).
POOL_NAME = "matloop"
FLOW_ENTRYPOINT = "flows.campaign.campaign_flow"

#: A job variable whose name or value looks like a secret: never stored in Prefect's database.
_SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY|AUTH", re.IGNORECASE)
_PASSWORD_IN_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:[^/@]*@", re.IGNORECASE)


class DeployError(Exception):
    """``matloop deploy`` cannot go on; the message is one sentence for the user."""


@dataclass(frozen=True)
class DeployResult:
    """What ``matloop deploy`` did: the pool (created or found) and the deployment (created or updated)."""

    pool: str
    pool_type: str
    pool_created: bool
    deployment: str
    deployment_id: str
    deployment_created: bool
    workers_online: int


def campaign_deployment(name: str = DEPLOYMENT_NAME, **options: Any) -> Any:
    """The deployment object (a ``RunnerDeployment``) for the campaign flow."""
    return campaign_flow.to_deployment(
        name=name,
        description="Run or resume a matloop campaign (give a campaign file path or an inline spec).",
        tags=["matloop"],
        **options,
    )


def serve_deployments(name: str = DEPLOYMENT_NAME, limit: int | None = None) -> None:
    """Serve the campaign deployment until interrupted (a long-running process, like a worker)."""
    from prefect import serve

    serve(campaign_deployment(name), limit=limit)


def check_env(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs for the flow runs' environment; a malformed pair or a secret is refused.

    Job variables are stored in Prefect's database and shown in its UI, so a password stays in the
    workers' own environment (``PGPASSWORD``, a token variable) and never reaches them.
    """
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise DeployError(f"--env {pair!r} is not KEY=VALUE with a variable name as KEY")
        if _SECRET_KEY.search(key) or _PASSWORD_IN_URL.match(value):
            raise DeployError(
                f"--env {key}: secrets are not stored in the deployment (Prefect keeps job variables in its "
                "database); set it in each worker's environment instead (a password as PGPASSWORD, not in the URL)"
            )
        env[key] = value
    return env


def _check_name(what: str, name: str) -> None:
    """Prefect's own name rules (no ``/ % & > <``, not blank), refused here in one sentence."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from pydantic import ValidationError

    try:
        WorkPoolCreate(name=name, type="process")
    except ValidationError:
        raise DeployError(f"{what} {name!r} is not a valid Prefect name: it must not be blank nor contain "
                          "any of / % & > <") from None
    if what == "work pool name" and name.lower().startswith("prefect"):
        raise DeployError(f"work pool name {name!r} is not allowed: Prefect reserves names starting with 'prefect'")


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        # Without one, Prefect would start a temporary server that ends with this command, deployment and all.
        raise DeployError("`matloop deploy` needs a Prefect server that workers share: set PREFECT_API_URL "
                          "(e.g. http://localhost:4200/api, after `prefect server start`)")
    return str(url)


def _http_detail(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            detail = response.json().get("detail")
        except Exception:  # noqa: BLE001 - not JSON: the status line says enough
            detail = None
        return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def deploy_to_pool(
    pool: str = POOL_NAME,
    name: str = DEPLOYMENT_NAME,
    *,
    image: str | None = None,
    env: dict[str, str] | None = None,
) -> DeployResult:
    """Create the process work pool ``pool`` if it is missing, then create or update the campaign deployment on it.

    Running it again changes nothing but what was asked (a new image, other variables): the pool is
    found, not recreated, and the deployment is updated in place (same id, same runs).  An existing pool of
    another type (Docker, Kubernetes) is used as it is; ``image`` then names the image its jobs run.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
    from prefect.exceptions import ObjectNotFound
    from prefect.types.entrypoint import EntrypointType
    from prefect.workers.process import ProcessWorker

    _check_name("work pool name", pool)
    _check_name("deployment name", name)
    url = _api_url()
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            raise DeployError(f"no Prefect API answers at {url} ({_http_detail(problem)}): start one with "
                              "`prefect server start`, or set PREFECT_API_URL (and PREFECT_API_AUTH_STRING) to yours")
        created = False
        try:
            work_pool = client.read_work_pool(pool)
        except ObjectNotFound:
            if image is not None:
                raise DeployError(f"work pool {pool!r} does not exist, and the process pool `matloop deploy` would "
                                  "create takes no image: create a Docker or Kubernetes pool first (`prefect "
                                  f"work-pool create {pool} --type docker`), or leave out --image") from None
            template = ProcessWorker.get_default_base_job_template()
            try:
                work_pool = client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                                                   base_job_template=template))
                created = True
            except Exception as exc:  # noqa: BLE001 - the server's refusal, in one sentence
                # a second `matloop deploy` that created it meanwhile: use that one
                try:
                    work_pool = client.read_work_pool(pool)
                except ObjectNotFound:
                    raise DeployError(f"could not create work pool {pool!r} ({_http_detail(exc)})") from None
        variables = (work_pool.base_job_template or {}).get("variables", {}).get("properties", {})
        if image is not None and "image" not in variables:
            raise DeployError(f"work pool {pool!r} is a {work_pool.type} pool, whose jobs take no image: leave out "
                              "--image (process workers run the matloop installed beside them), or deploy to a "
                              "Docker or Kubernetes pool")
        job_variables: dict[str, Any] = {}
        if env:
            job_variables["env"] = dict(env)
        if image is not None:
            job_variables["image"] = image
        try:
            existing = client.read_deployment_by_name(f"{campaign_flow.name}/{name}")
        except ObjectNotFound:
            existing = None
        workers = client.read_workers_for_work_pool(
            pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"])))
    deployment = campaign_deployment(name, work_pool_name=pool, job_variables=job_variables,
                                     entrypoint_type=EntrypointType.MODULE_PATH)
    try:
        deployment_id = deployment.apply()
    except Exception as exc:  # noqa: BLE001 - the server's refusal, in one sentence
        raise DeployError(f"could not deploy {campaign_flow.name}/{name} to work pool {pool!r} "
                          f"({_http_detail(exc)})") from None
    return DeployResult(
        pool=pool, pool_type=work_pool.type, pool_created=created, deployment=f"{campaign_flow.name}/{name}",
        deployment_id=str(deployment_id), deployment_created=existing is None, workers_online=len(workers),
    )

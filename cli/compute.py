"""The ``--compute``/``--dask-*`` options of ``matloop run`` and ``serve``: where heavy steps run.

The options override ``MATLOOP_COMPUTE`` for this process and what it starts: they are written back into the
environment as one JSON setting, so the flow (and each run a ``serve`` process starts, which inherits the
environment) reads the same choice through :func:`matloop.settings.get_compute`.
"""

from __future__ import annotations

import os
from enum import StrEnum

from pydantic import TypeAdapter, ValidationError

from cli.common import fail
from matloop.compute import Compute, describe
from matloop.settings import ComputeSettingError, compute_problem, get_compute


class ComputeChoice(StrEnum):
    in_process = "in_process"
    local_cluster = "local_cluster"
    dask_scheduler = "dask_scheduler"


COMPUTE_HELP = "where heavy steps run (default: MATLOOP_COMPUTE, else in_process); see docs/dask.md"
ADDRESS_HELP = "an existing Dask scheduler, e.g. tcp://scheduler:8786 (implies --compute dask_scheduler)"
WORKERS_HELP = "worker processes of a local Dask cluster (implies --compute local_cluster)"
THREADS_HELP = "threads per worker process of a local Dask cluster"


def compute_options(
    compute: ComputeChoice | None, address: str | None, workers: int | None, threads: int | None
) -> Compute:
    """The setting the options (or, without any, the environment) give; a bad one exits with one sentence."""
    if compute is None and address is None and workers is None and threads is None:
        try:
            return get_compute()
        except ComputeSettingError as exc:
            raise fail(str(exc)) from None
    kind = compute.value if compute else ("dask_scheduler" if address else "local_cluster")
    given = {"address": address, "n_workers": workers, "threads_per_worker": threads}
    fields = {k: v for k, v in given.items() if v is not None}
    allowed = {"in_process": set(), "local_cluster": {"n_workers", "threads_per_worker"},
               "dask_scheduler": {"address"}}[kind]
    names = {"address": "--dask-address", "n_workers": "--dask-workers", "threads_per_worker": "--dask-threads"}
    stray = sorted(k for k in fields if k not in allowed)
    if stray:
        owner = "dask_scheduler" if stray[0] == "address" else "local_cluster"
        raise fail(f"{names[stray[0]]} applies to --compute {owner}, not to --compute {kind}")
    try:
        setting: Compute = TypeAdapter(Compute).validate_python({"type": kind, **fields})
    except ValidationError as exc:
        message = compute_problem(exc, source="--compute")
        for field, option in names.items():
            message = message.replace(f"--compute.{field}", option)
        raise fail(message) from None
    for key in [k for k in os.environ if k.startswith("MATLOOP_COMPUTE__")]:
        del os.environ[key]  # field-by-field variables would be merged into the JSON below
    os.environ["MATLOOP_COMPUTE"] = setting.model_dump_json()
    return setting


def announce(setting: Compute) -> str:
    return f"heavy steps: {describe(setting)}"


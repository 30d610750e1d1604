"""Heavy steps on Dask through Prefect's Dask task runner (``prefect-dask``), for the run of one campaign flow.

:func:`open_fan_out` turns the compute setting (:mod:`matloop.compute`) into the executor the run's heavy steps
fan out on. For Dask it enters a :class:`prefect_dask.DaskTaskRunner`, which owns the cluster's life: it starts a
``LocalCluster`` of worker processes (closed with the run), or connects to the scheduler at an address. The
chunks go to the runner's Dask client as plain functions, inside the step's own Prefect task run (which shows the
step, its retries and its log in the UI; the Dask dashboard shows the chunks). They are deliberately not Prefect
tasks of their own: a Prefect task on a Dask worker must reach the Prefect API from that worker, which an
ephemeral API (``matloop run`` without a server) cannot offer, and a worker that spun up its own would cost tens
of seconds and record the chunks nowhere anyone looks. So a Dask worker needs matloop installed (with the
``mlip`` extra for screening) and nothing else: no database, no Prefect server, no secrets.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from matloop.compute import IN_PROCESS, Compute, DaskScheduler, FanOut, LocalDaskCluster, glibc_malloc_in_workers

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

log = logging.getLogger(__name__)


class ComputeUnavailable(RuntimeError):
    """The Dask cluster cannot be started or reached; the message is one sentence."""


class DaskFanOut:
    """Chunks as Dask tasks on the task runner's client, gathered in the order they were given."""

    def __init__(self, runner: Any, where: str) -> None:
        self.runner = runner
        self.where = where

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, name: str = "chunk") -> list[R]:
        if not items:
            return []
        client = self.runner.client
        run = uuid.uuid4().hex[:8]  # unique keys: never served a result cached from an earlier step's chunk
        futures = client.map(fn, list(items), key=[f"matloop-{name}-{run}-{i}" for i in range(len(items))],
                             pure=False)
        try:
            return list(client.gather(futures))
        finally:
            for future in futures:
                future.release()

    def map_shared(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T], *, name: str = "chunk") -> list[R]:
        """``shared`` is scattered to every worker once (``broadcast``: with it on one worker only, the scheduler
        would queue every task there for locality), then each task reads it from its worker's memory."""
        if not items:
            return []
        client = self.runner.client
        run = uuid.uuid4().hex[:8]
        [handle] = client.scatter([shared], broadcast=True, hash=False)
        try:
            futures = client.map(fn, [handle] * len(items), list(items),
                                 key=[f"matloop-{name}-{run}-{i}" for i in range(len(items))], pure=False)
            try:
                return list(client.gather(futures))
            finally:
                for future in futures:
                    future.release()
        finally:
            handle.release()


def _runner(compute: LocalDaskCluster | DaskScheduler) -> Any:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:  # pragma: no cover - the dask extra is part of the test setup
        raise ComputeUnavailable(f"{compute.describe()} needs the dask extra: "
                                 "pip install -c requirements/constraints.txt 'matloop[dask]'") from None
    if isinstance(compute, DaskScheduler):
        return DaskTaskRunner(address=compute.address, client_kwargs={"timeout": compute.connect_timeout})
    # worker processes (the heavy steps hold the GIL: threads alone would not run in parallel); no dashboard,
    # which needs bokeh and a port nobody asked for
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": compute.n_workers, "threads_per_worker": compute.threads_per_worker, "processes": True,
        "dashboard_address": None,
    })


@contextlib.contextmanager
def open_fan_out(compute: Compute) -> Iterator[FanOut]:
    """The executor for ``compute``, started (cluster up, or scheduler reached) before the block runs."""
    if isinstance(compute, (LocalDaskCluster, DaskScheduler)):
        runner = _runner(compute)
        with glibc_malloc_in_workers(), runner:  # also for workers the cluster restarts during the run
            try:
                client = runner.client  # starts the LocalCluster, or connects: fail here, before any step
                workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            except Exception as exc:  # noqa: BLE001 - said in one sentence
                raise ComputeUnavailable(f"could not use {compute.describe()}: {_reason(exc)}") from None
            log.info("heavy steps fan out on %s (%d worker(s) now)", compute.describe(), workers)
            yield DaskFanOut(runner, compute.describe())
        return
    yield IN_PROCESS


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

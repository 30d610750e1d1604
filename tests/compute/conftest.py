"""One small Dask ``LocalCluster`` (2 worker processes, 1 thread each) shared by the Dask tests, closed after them.

Starting worker processes costs seconds, so the cluster is started once per session and only when a test asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class Recorder:
    """A fan-out that records which heavy steps went through it, then hands them to the real one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.where = inner.where
        self.names: list[str] = []

    def map(self, fn: Any, items: Any, *, name: str = "chunk") -> Any:
        self.names.append(name)
        return self.inner.map(fn, items, name=name)

    def map_shared(self, fn: Any, shared: Any, items: Any, *, name: str = "chunk") -> Any:
        self.names.append(name)
        return self.inner.map_shared(fn, shared, items, name=name)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """The session's LocalCluster, as the executor a campaign flow opens for ``type: local_cluster``."""
    from flows.compute import open_fan_out
    from matloop.compute import LocalDaskCluster

    with open_fan_out(LocalDaskCluster(n_workers=2, threads_per_worker=1)) as fan_out:
        yield fan_out


@pytest.fixture
def on_dask(dask_cluster: Any) -> Recorder:
    return Recorder(dask_cluster)

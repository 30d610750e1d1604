"""Where heavy steps run, and how they fan out: in this process (default), on a Dask ``LocalCluster``, or on an
existing Dask scheduler.

Where work runs is an operational choice, not campaign science: it never changes a result, so it is not part of
the campaign file nor stored in the database (a scheduler address is infrastructure, next to the database URL).
It comes from ``MATLOOP_COMPUTE`` (:mod:`matloop.settings`) or the ``--compute``/``--dask-*`` options of
``matloop run`` and ``serve``, as one of the typed models below.

The heavy loops (MLIP relaxations and validity checks of a generated pool, ensemble members, posterior moments of
a very large pool) sit several calls below the loop's steps, in packages that must not import ``flows/``
(DESIGN.md). They reach the run's executor through :func:`current_fan_out`, a context variable the campaign flow
sets for the run (:func:`fanning_out`), the way torch's ``no_grad`` or dask's ``get_client`` reach code far below
the caller. Every fan-out site splits its work into chunks that depend only on the input (fixed chunk sizes, a
seed per chunk where randomness is involved) and gathers the results in input order, and the in-process executor
runs the very same chunk functions one after the other: so a Dask run gives the same results as an in-process one
for the same seed.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Literal, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

#: Schemes a Dask scheduler listens on (``distributed.comm``); a bare ``host:port`` means ``tcp``.
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
DASK_DEFAULT_PORT = 8786


class InProcess(BaseModel):
    """Heavy steps run in the flow's own process (the default: nothing to set up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["in_process"] = "in_process"

    def describe(self) -> str:
        return "in-process"


class LocalDaskCluster(BaseModel):
    """A Dask ``LocalCluster`` of worker processes on this machine, started for the run and closed after it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["local_cluster"] = "local_cluster"
    n_workers: int = Field(default=2, ge=1, le=512, description="worker processes")
    threads_per_worker: int = Field(default=1, ge=1, le=256, description="threads in each worker process")

    def describe(self) -> str:
        return f"a Dask LocalCluster of {self.n_workers} worker(s) x {self.threads_per_worker} thread(s)"


class DaskScheduler(BaseModel):
    """An existing Dask scheduler (``dask scheduler`` + ``dask worker ADDRESS`` on other machines)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["dask_scheduler"] = "dask_scheduler"
    address: str = Field(description="the scheduler, e.g. tcp://dask-scheduler:8786")
    connect_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds to wait for the scheduler")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return normalise_address(value)

    def describe(self) -> str:
        return f"the Dask scheduler at {self.address}"


Compute = Annotated[InProcess | LocalDaskCluster | DaskScheduler, Field(discriminator="type")]


@contextlib.contextmanager
def glibc_malloc_in_workers() -> Iterator[None]:
    """Dask worker processes started in this block keep glibc's own malloc tuning.

    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker it spawns, to hand freed memory back to
    the OS. Setting that variable at all switches off glibc's dynamic mmap threshold, so each large tensor of a
    heavy step (an MLIP's batched graphs, a GP's kernel blocks) is mapped and unmapped afresh: a CHGNet
    relaxation measured 1.6x slower in such a worker, half its time in the kernel (benchmarks/RESULTS-mlip.md).
    ``None`` is Dask's way to leave a variable out; one the user exported still reaches the workers.
    """
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        yield


def normalise_address(value: str) -> str:
    """``scheme://host:port`` for a scheduler address, or a ``ValueError`` with one sentence saying what is wrong.

    Checked before Dask sees it: a typo would otherwise surface as a connection timeout half a minute later.
    """
    text = value.strip()
    shown = repr(text if len(text) <= 80 else text[:79] + "…")
    hint = "give one like tcp://scheduler-host:8786"
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{shown} is not a Dask scheduler address; {hint}")
    if "://" not in text:
        text = f"tcp://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown} is not a Dask scheduler address (its port is not a number from 1 to 65535); "
                         f"{hint}") from None
    if parts.scheme not in DASK_SCHEMES:
        raise ValueError(f"{shown} is not a Dask scheduler address ({parts.scheme!r} is not one of "
                         f"{', '.join(DASK_SCHEMES)}); {hint}")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{shown} is not a Dask scheduler address (it needs a host and nothing after the port); "
                         f"{hint}")
    if port == 0:
        raise ValueError(f"{shown} is not a Dask scheduler address (port 0); {hint}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DASK_DEFAULT_PORT}"


@runtime_checkable
class FanOut(Protocol):
    """Runs ``fn`` on every item (a chunk of work) and returns the results in the items' order."""

    #: in words, for logs: "in-process", "the Dask scheduler at tcp://..."
    where: str

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, name: str = "chunk") -> list[R]: ...

    def map_shared(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T], *, name: str = "chunk") -> list[R]:
        """``fn(shared, item)`` for every item; ``shared`` (a fitted model, a featurizer) reaches each worker once,
        not once per item."""
        ...


class InProcessFanOut:
    """The chunks one after the other, in this process: the default, and the reference a cluster must equal."""

    where = "in-process"

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, name: str = "chunk") -> list[R]:
        return [fn(item) for item in items]

    def map_shared(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T], *, name: str = "chunk") -> list[R]:
        return [fn(shared, item) for item in items]


IN_PROCESS = InProcessFanOut()
_current: contextvars.ContextVar[FanOut] = contextvars.ContextVar("matloop_fan_out", default=IN_PROCESS)


def current_fan_out() -> FanOut:
    """The executor of the run in progress (in-process unless a flow or a test set another)."""
    return _current.get()


@contextlib.contextmanager
def fanning_out(fan_out: FanOut) -> Iterator[FanOut]:
    """Heavy steps called inside the block fan out on ``fan_out``."""
    token = _current.set(fan_out)
    try:
        yield fan_out
    finally:
        _current.reset(token)


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive chunks of ``size`` (the last may be shorter): fixed by the input alone, never by the cluster."""
    if size < 1:
        raise ValueError(f"a chunk size must be at least 1, got {size}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def map_chunked(fn: Callable[[list[T]], list[R]], items: Sequence[T], size: int, *, name: str = "chunk") -> list[R]:
    """``fn`` over fixed-size chunks of ``items`` on the current executor, flattened back in input order.

    A chunk function must return one result per item of its chunk, in order; that is checked, since a result
    off by one would silently pair a structure with another's energy.
    """
    parts = chunks(items, size)
    if not parts:
        return []
    out: list[R] = []
    for part, result in zip(parts, current_fan_out().map(fn, parts, name=name), strict=True):
        out.extend(checked_chunk(name, part, result))
    return out


def checked_chunk(name: str, part: Sequence[Any], result: list[R]) -> list[R]:
    """``result`` when it has one entry per item of ``part``; a chunk function's miscount is an error, never a
    silent shift of every later result onto the wrong item."""
    if len(result) != len(part):
        raise RuntimeError(f"{name}: a chunk of {len(part)} items gave {len(result)} results")
    return result


def describe(compute: Any) -> str:
    """The setting in words, for logs and the CLI."""
    return compute.describe() if hasattr(compute, "describe") else str(compute)

"""The per-row work of scoring a pool (features, marginal posterior moments), in fixed chunks on the run's executor.

A pool of 10^5-10^6 rows is mostly per-row work: each candidate's features, then each row's marginal posterior
mean and variance for the pre-screen (:mod:`agent.selection.screening`). Rows are independent, so that work is cut
into chunks of a fixed number of rows and handed to :func:`matloop.compute.current_fan_out`: one after the other
in this process by default, or as tasks on a Dask cluster. The featurizer or the fitted surrogate goes to the
workers once per call (``FanOut.map_shared``: scattered to every worker, not pickled into each task).

The results are the same wherever the chunks run, bit for bit, for three reasons the code below keeps:

* the chunks depend on the input alone (``FEATURE_CHUNK`` / ``SCORE_CHUNK`` rows; never on the number of
  workers), and an input of a single chunk is scored here whatever the executor;
* ``SCORE_CHUNK`` is a multiple of the moments' own inner chunk (:data:`surrogates.moments.CHUNK`), so every
  matrix product sees the row blocks it would see on the whole pool;
* before the model leaves this process it scores one row here, which builds its prediction caches (the GP's
  ``K^-1 y``, its variance root): the caches travel with the pickled model, so a worker never refactorises the
  training covariance with a different number of threads than this process did. Each chunk is copied into a
  tensor of its own, as it arrives on a worker, so no kernel sees a differently aligned view.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from matloop.compute import current_fan_out
from surrogates.moments import CHUNK as MOMENTS_CHUNK
from surrogates.moments import marginal_moments

#: Rows per chunk of posterior moments: a multiple of the moments' inner chunk (see above). A 10^5 pool makes seven
#: tasks, a 10^6 pool sixty-two; one chunk of a 2,000-observation GP took 2.3 s on one thread of the loaded
#: 2-core development box (benchmarks/RESULTS-selection.md), more than a task's own overhead many times over.
SCORE_CHUNK = 8 * MOMENTS_CHUNK
#: Candidates per chunk of features (parameter dicts: ~10 ms; crystal structures with their symmetry: seconds).
FEATURE_CHUNK = 4096

assert SCORE_CHUNK % MOMENTS_CHUNK == 0


def moments_chunk(model: Any, X: Tensor) -> tuple[Tensor, Tensor]:
    """Marginal posterior mean and variance of the rows of one chunk (the function every executor runs)."""
    return marginal_moments(model, X.clone(memory_format=torch.contiguous_format), chunk=MOMENTS_CHUNK)


def pool_moments(model: Any, X: Tensor) -> tuple[Tensor, Tensor]:
    """Marginal posterior mean and variance (each ``n x m``) of every row of ``X``, chunked on the run's executor."""
    if len(X) <= SCORE_CHUNK:
        return moments_chunk(model, X)
    moments_chunk(model, X[:1])  # the prediction caches, built here, travel with the model (module docstring)
    parts = [X[start : start + SCORE_CHUNK] for start in range(0, len(X), SCORE_CHUNK)]
    results = current_fan_out().map_shared(moments_chunk, model, parts, name="pool-moments")
    _check(parts, [mean for mean, _ in results], "pool-moments")
    return torch.cat([mean for mean, _ in results]), torch.cat([var for _, var in results])


def features_chunk(read: Callable[[list[Any]], list[Any]] | None, featurizer: Any, part: tuple[int, list[Any]]
                   ) -> Tensor:
    """The features of one chunk of candidates (``part``: the pool row it starts at, its candidates)."""
    start, items = part
    try:
        return featurizer.transform(read(items) if read is not None else items)
    except ValueError as exc:
        if start == 0:  # the featurizer's row numbers are already the pool's
            raise
        raise ValueError(f"in pool rows {start} to {start + len(items) - 1}: {exc}") from None


def pool_features(featurizer: Any, items: Sequence[Any], read: Callable[[list[Any]], list[Any]] | None = None
                  ) -> Tensor:
    """``featurizer.transform(read(items))`` (an ``n x dim`` tensor), chunked on the run's executor.

    ``read`` turns a chunk of stored candidates into what the featurizer reads (a module-level function, so it
    reaches a worker by name); it runs in the chunk, so a crystal's structure is parsed where it is featurized.
    A row the featurizer refuses raises its ``ValueError``; past the first chunk, the message says which pool
    rows the featurizer's own row number counts from.
    """
    fn = functools.partial(features_chunk, read)
    if len(items) <= FEATURE_CHUNK:
        return fn(featurizer, (0, list(items)))
    parts = [(start, list(items[start : start + FEATURE_CHUNK])) for start in range(0, len(items), FEATURE_CHUNK)]
    results = current_fan_out().map_shared(fn, featurizer, parts, name="pool-features")
    _check([rows for _, rows in parts], results, "pool-features")
    return torch.cat(results)


def _check(parts: Sequence[Any], results: Sequence[Tensor], name: str) -> None:
    """One result row per input row, chunk by chunk: a row off by one would pair a candidate with another's score."""
    for part, result in zip(parts, results, strict=True):
        if result.shape[0] != len(part):
            raise RuntimeError(f"{name}: a chunk of {len(part)} rows gave {result.shape[0]} results")

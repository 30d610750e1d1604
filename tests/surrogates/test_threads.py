"""``surrogates.threads.one_thread`` from several threads of one process at once (a Dask worker's, a flow's tasks).

torch's thread count is per thread once a thread has run torch, but a thread's first torch call takes the count
last set by any thread: a thread started while another held one thread began on one, took 1 for its "before",
and stayed on one after its own block. These tests interleave real threads in that order, with events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import torch

from surrogates.threads import one_thread


@pytest.fixture(autouse=True)
def _two_threads() -> Iterator[None]:
    """Two torch threads outside the blocks (the surrogates' conftest sets one), whatever the machine has."""
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(1)


class Worker(threading.Thread):
    """A thread that runs what it is handed, one call at a time, and reports torch's thread count after each."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.jobs: list[tuple[Callable[[], object], threading.Event]] = []
        self.ready = threading.Condition()
        self.results: list[object] = []

    def run(self) -> None:
        while True:
            with self.ready:
                self.ready.wait_for(lambda: bool(self.jobs))
                job, done = self.jobs.pop(0)
            if job is None:
                return
            self.results.append(job())
            done.set()

    def do(self, job: Callable[[], object] | None) -> object:
        done = threading.Event()
        with self.ready:
            self.jobs.append((job, done))  # type: ignore[arg-type]
            self.ready.notify()
        if job is None:
            self.join(timeout=30)
            return None
        assert done.wait(timeout=30), "the worker did not answer"
        return self.results[-1]


def _enter(blocks: list[object]) -> int:
    block = one_thread()
    block.__enter__()
    blocks.append(block)
    torch.ones(3).add_(1)  # torch work inside the block
    return torch.get_num_threads()


def _leave(blocks: list[object]) -> int:
    blocks.pop().__exit__(None, None, None)  # type: ignore[attr-defined]
    return torch.get_num_threads()


def test_a_thread_started_inside_another_threads_block_ends_on_the_process_count() -> None:
    first, second = Worker(), Worker()
    first.start()
    first_blocks: list[object] = []
    second_blocks: list[object] = []
    assert first.do(lambda: torch.get_num_threads()) == 2
    assert first.do(lambda: _enter(first_blocks)) == 1
    second.start()  # its first torch call comes while the first thread holds one thread
    assert second.do(lambda: _enter(second_blocks)) == 1
    assert first.do(lambda: _leave(first_blocks)) == 2
    assert second.do(lambda: torch.get_num_threads()) == 1  # still inside its own block
    assert second.do(lambda: _leave(second_blocks)) == 2  # the process's count, not the 1 it started on
    for w in (first, second):
        assert w.do(lambda: torch.get_num_threads()) == 2
        w.do(None)
    fresh: list[int] = []
    late = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    late.start()
    late.join()
    assert fresh == [2] and torch.get_num_threads() == 2


def test_overlapping_blocks_each_run_on_one_thread_and_nesting_keeps_it() -> None:
    first, second = Worker(), Worker()
    first.start()
    second.start()
    first_blocks: list[object] = []
    second_blocks: list[object] = []
    assert first.do(lambda: _enter(first_blocks)) == 1
    assert second.do(lambda: _enter(second_blocks)) == 1
    assert second.do(lambda: _enter(second_blocks)) == 1  # nested in its own block
    assert second.do(lambda: _leave(second_blocks)) == 1  # the inner block's end gives nothing back yet
    assert first.do(lambda: torch.get_num_threads()) == 1
    assert second.do(lambda: _leave(second_blocks)) == 2
    assert first.do(lambda: torch.get_num_threads()) == 1  # its own count: still one inside its block
    assert first.do(lambda: _leave(first_blocks)) == 2
    for w in (first, second):
        w.do(None)
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2

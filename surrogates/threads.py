"""One torch thread for the small-tensor work of an ask (surrogate fits, ensemble training, the sample tables).

An ask's tensors are small: a member step is a few dozen kernels on a few thousand numbers, a GP on 200 rows a
200 x 200 Cholesky, a sample table 512 draws by a few hundred survivors. Too small to split, so torch's extra
intra-op threads only add their synchronisation to every kernel, and on cores busy with other work (a campaign
beside its lab's jobs, or the shared 2-core development box) that synchronisation dominated. On that box at
load ~12 (two threads against one, same process): 300 steps of the default ensemble 150 s against 3-6 s; a
GP fit with 5-fold CV 24 s against 2.9 s (20 rows) and 98 s against 4.6 s (200 rows); a kept ask's selection
1.7 s against 0.13 s (100-row pool), 5.0 s against 0.54 s (1,000) and 3.1 s against 0.81 s (10^4).
The ensemble's members, the picks and the acquisition values were the same bit for bit; the GP's predictions
at 20 rows too, at 200 rows within 7e-12 (the Cholesky's sums in another order).

Large pools are another matter: scoring 10^5 rows is a few large matrix products, which torch's threads do
split. On the idle box (benchmarks/acquisition_speed.py's model and pools, select_batch, q=4) two threads
against one: 0.36 s against 0.59 s (10^5 rows, 200 observations) and 1.53 s against 2.62 s (10^5 rows, 2,000
observations), but 0.09 against 0.12 s and 0.36 against 0.48 s at 10^4 rows. So a selection keeps torch's
threads above :data:`ONE_THREAD_MAX_POOL` rows, where they pay when cores are free.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

#: Pools of up to this many rows are scored on one thread (see above).
ONE_THREAD_MAX_POOL = 20_000

# Several threads of one process may be inside :func:`one_thread` at once (a Dask worker with several threads, a
# flow's concurrent tasks). What ``torch.set_num_threads`` changes is partly per thread and partly not: each thread
# that has run torch keeps its own OpenMP count (set from that thread), a thread's first torch call takes the count
# last set by any thread, and MKL's count is the process's. Saving and restoring each caller's own "before" was
# therefore wrong: a thread started while another held one thread starts on one, sees 1 as its "before", and was
# left on one for good. So the count to come back to is the process's, read once by the first of the concurrent
# holders, and every holder puts its own thread back to it on the way out.
_lock = threading.Lock()
_holders = 0  # threads inside one_thread() now
_restore = 1  # torch's thread count when the first of them came in
_depth = threading.local()  # nesting within one thread: only its outermost block counts


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads limited to one for this thread inside the block, and back to the process's count
    after (the count before the first of any concurrent blocks began; see above). Safe to nest and to enter from
    several threads at once."""
    global _holders, _restore
    depth = getattr(_depth, "n", 0)
    if depth == 0:
        with _lock:
            if _holders == 0:
                _restore = torch.get_num_threads()
            _holders += 1
            if torch.get_num_threads() != 1:
                torch.set_num_threads(1)
    _depth.n = depth + 1
    try:
        yield
    finally:
        _depth.n = depth
        if depth == 0:
            with _lock:
                _holders -= 1
                # this thread's own count goes back now (no other thread can set it); while others still hold,
                # MKL's process-wide count comes back with it, which costs them speed, never a wrong result
                if torch.get_num_threads() != _restore:
                    torch.set_num_threads(_restore)


def one_thread_up_to(rows: int, limit: int) -> contextlib.AbstractContextManager[None]:
    """:func:`one_thread` for work on up to ``limit`` rows; torch's threads as they are for more."""
    return one_thread() if rows <= limit else contextlib.nullcontext()

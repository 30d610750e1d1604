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
from collections.abc import Iterator

import torch

#: Pools of up to this many rows are scored on one thread (see above).
ONE_THREAD_MAX_POOL = 20_000


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads limited to one inside the block, restored after (process-wide while it runs)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread_up_to(rows: int, limit: int) -> contextlib.AbstractContextManager[None]:
    """:func:`one_thread` for work on up to ``limit`` rows; torch's threads as they are for more."""
    return one_thread() if rows <= limit else contextlib.nullcontext()

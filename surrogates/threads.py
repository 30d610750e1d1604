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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


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

"""One torch thread for the small-tensor work of an ask (ensemble training, the selection's sample tables).

An ask's tensors are small: a member step is a few dozen kernels on a few thousand numbers, a sample table is
512 draws by a few hundred survivors. Too small to split, so torch's extra intra-op threads only add their
synchronisation to every kernel, and on cores busy with other work (a campaign beside its lab's jobs, or the
shared 2-core development box) that synchronisation dominated: on that box at load ~12, 300 steps of the default
ensemble took 150 s on torch's two threads and 3-6 s on one; the selection of a kept ask took 1.7 s against
0.13 s (100-row pool) and 5.0 s against 0.54 s (1,000 rows). Results are the same bit for bit (kernels of this
size run on one thread either way; tests/surrogates/test_fit_memo.py and tests/loop/test_asktell.py check).
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

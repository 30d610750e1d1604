"""Shared settings for the inverse-design tests: one torch thread (the CI box has 2 shared cores).

Set for the whole session, before module-scoped fixtures train anything: on a loaded
2-core machine two torch threads ran ~8× slower than one.
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

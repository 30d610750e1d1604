"""The efficiency run's progress bars: fed by each replay's batches, shown on a terminal only."""

from __future__ import annotations

import io
import sys
from itertools import pairwise
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.efficiency import replay  # noqa: E402
from benchmarks.replay_progress import ReplayProgress  # noqa: E402
from tests.selection.test_efficiency_cache import _pool  # noqa: E402


def test_a_replay_reports_its_experiments_after_each_batch():
    pool = _pool(n=60, best=41)
    heard: list[int] = []
    order = replay(pool, lambda p, observed, q, seed: [i for i in range(60) if i not in observed][:q], 4, 0, 4, 30,
                   on_batch=heard.append)
    assert heard[0] == 8 and heard[-1] == len(order) == 30  # the best (row 41) is not reached within 30
    assert all(0 < b - a <= 4 for a, b in pairwise(heard))  # a batch at a time, the last one cut to the budget


def test_the_bars_show_on_a_terminal_and_stay_silent_elsewhere():
    shown = io.StringIO()
    with ReplayProgress(2, 30, Console(file=shown, force_terminal=True, width=100)) as bars:
        bars.start_replay("branin q=4 matloop seed 0")
        bars.experiments(12)
        bars.replay_done()
    assert "branin q=4 matloop seed 0" in shown.getvalue()
    quiet = io.StringIO()
    with ReplayProgress(2, 30, Console(file=quiet, force_terminal=False)) as bars:
        bars.start_replay("branin q=4 matloop seed 0")
        bars.experiments(40)  # beyond the budget: clipped, not an error
        bars.replay_done()
    assert quiet.getvalue() == ""

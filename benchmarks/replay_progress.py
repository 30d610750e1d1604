"""Progress of a long efficiency run on the terminal: how many replays are done, and how far the current one is.

Why: a full held-out comparison is hours of replays (BayBE's q=1 replays alone take 8-20 CPU-minutes per seed
here), and its table prints a line only when every seed of a problem and batch size is done. The bars go to
standard error and only to a terminal, so the printed table, the ``--per-seed`` files and anything that parses
standard output are unchanged.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ReplayProgress:
    """Two rich bars: replays done of ``total``, and the current replay's experiments of ``budget``."""

    def __init__(self, total: int, budget: int, console: Console | None = None) -> None:
        console = console or Console(file=sys.stderr)
        self.budget = budget
        # the table on standard output is routed above the bars only when it goes to a terminal too: a table
        # redirected to a file must stay in that file
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=True,
                                  disable=not console.is_terminal, redirect_stdout=sys.stdout.isatty(),
                                  redirect_stderr=False)
        self._replays = self._progress.add_task("replays", total=total)
        self._experiments = self._progress.add_task("experiments", total=budget)

    def __enter__(self) -> ReplayProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def start_replay(self, what: str) -> None:
        """A new replay (``what``: problem, batch size, strategy and seed) starts from no experiments."""
        self._progress.reset(self._experiments, total=self.budget, description=what)

    def experiments(self, done: int) -> None:
        """The current replay has made ``done`` experiments (its initial points included)."""
        self._progress.update(self._experiments, completed=min(done, self.budget))

    def replay_done(self) -> None:
        self._progress.advance(self._replays)

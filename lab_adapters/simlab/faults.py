"""Seeded fault injection: failed experiments, instrument outages, and flaky HTTP.

Every draw comes from a generator seeded by the lab seed plus a stable label (the
idempotency key, the instrument name), never from global randomness, so a test
that fixes the seed sees the same faults on every run, and a restarted lab makes
the same decisions about experiments it already accepted.
"""

from __future__ import annotations

import bisect
import random
import threading
from dataclasses import dataclass, field

import numpy as np

from matloop.types import stable_hash

SYNTHESIS_FAILURES = (
    "synthesis failed: precursor precipitated before deposition",
    "synthesis failed: film delaminated during calcination",
    "synthesis failed: dispensing robot reported a clogged nozzle",
)
INSTRUMENT_FAULTS = (
    "instrument fault: lost electrical contact with the sample",
    "instrument fault: reference electrode drifted out of calibration",
    "instrument fault: detector saturated; reading discarded",
)
COMPUTE_FAULTS = ("compute fault: SCF did not converge", "compute fault: node failure during the run")


def seeded_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator that depends only on the seed and the labels (stable across processes and restarts)."""
    return np.random.default_rng(int(stable_hash([seed, *labels], length=16), 16))


def failure_reason(instrument: str, rng: np.random.Generator) -> str:
    if "synthesis" in instrument:
        pool = SYNTHESIS_FAILURES
    elif "dft" in instrument or "evaluator" in instrument:
        pool = COMPUTE_FAULTS
    else:
        pool = INSTRUMENT_FAULTS
    return str(pool[int(rng.integers(len(pool)))])


@dataclass
class OutagePlan:
    """When each instrument is down, in lab hours since the lab's epoch (a Poisson process per instrument).

    ``rate`` is the expected number of outages per instrument per 100 lab hours and
    ``mean_hours`` their mean length (exponential).  Windows are drawn lazily as far
    ahead as the schedule needs.
    """

    seed: int
    rate: float = 0.0
    mean_hours: float = 8.0
    _windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _extend(self, instrument: str, until: float) -> list[tuple[float, float]]:
        windows = self._windows.setdefault(instrument, [])
        if self.rate <= 0:
            return windows
        rng_state = seeded_rng(self.seed, "outage", instrument)
        # Regenerate from the start each time we extend: cheap, and keeps windows independent of call order.
        windows.clear()
        t = 0.0
        while t <= until:
            t += float(rng_state.exponential(100.0 / self.rate))
            length = float(rng_state.exponential(self.mean_hours))
            windows.append((t, t + length))
            t += length
        return windows

    def windows(self, instrument: str, until: float) -> list[tuple[float, float]]:
        with self._lock:
            windows = self._windows.get(instrument, [])
            if self.rate > 0 and (not windows or windows[-1][0] <= until):
                windows = self._extend(instrument, until + 1000.0)
            return list(windows)

    def earliest_start(self, instrument: str, start: float, hours: float) -> float:
        """The first time at or after ``start`` when a step of ``hours`` fits without overlapping an outage."""
        if self.rate <= 0:
            return start
        while True:
            windows = self.windows(instrument, start + hours)
            starts = [w[0] for w in windows]
            i = bisect.bisect_right(starts, start + hours)
            clash = [w for w in windows[max(0, i - 2) : i] if w[0] < start + hours and w[1] > start]
            if not clash:
                return start
            start = max(w[1] for w in clash)

    def down_until(self, instrument: str, now: float) -> float | None:
        """End of the outage covering ``now``, or None when the instrument is up."""
        for lo, hi in self.windows(instrument, now):
            if lo <= now < hi:
                return hi
        return None


class HttpFaults:
    """Decides, request by request, whether to answer 5xx (before or after doing the work) or slowly."""

    def __init__(self, seed: int, error_rate: float = 0.0, slow_rate: float = 0.0, slow_seconds: float = 0.5) -> None:
        self.error_rate = error_rate
        self.slow_rate = slow_rate
        self.slow_seconds = slow_seconds
        self._rng = random.Random(f"http-faults-{seed}")
        self._lock = threading.Lock()
        self.counts = {"error_before": 0, "error_after": 0, "slow": 0}

    def draw(self) -> tuple[str | None, int, float]:
        """(None | "before" | "after", status code, delay in seconds) for the next request."""
        with self._lock:
            delay = self.slow_seconds if self._rng.random() < self.slow_rate else 0.0
            if delay:
                self.counts["slow"] += 1
            if self._rng.random() >= self.error_rate:
                return None, 200, delay
            when = "before" if self._rng.random() < 0.5 else "after"
            code = 500 if self._rng.random() < 0.5 else 503
            self.counts[f"error_{when}"] += 1
            return when, code, delay

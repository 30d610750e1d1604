"""Retries with capped exponential backoff and full jitter, shared by every HTTP-speaking adapter.

Full jitter (a uniform draw below the exponential cap, as in the AWS architecture
note on backoff) spreads the retries of many clients that failed together, so a lab
that answered 503 to everyone is not hit again by everyone at the same instant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class TransientFailure(Exception):
    """Raise inside a retried call for a failure worth retrying; ``retry_after`` (s) is a server's hint."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Backoff:
    """How often and how long to wait: ``max_retries`` retries after the first try."""

    max_retries: int = 5
    base: float = 0.2  # seconds: the cap of the first wait
    cap: float = 10.0  # seconds: no single wait is longer
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base < 0 or self.cap < 0:
            raise ValueError(f"backoff settings must be non-negative, got {self}")

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (0-based)."""
        ceiling = min(self.cap, self.base * (2**retry))
        return rng.uniform(0, ceiling) if self.jitter else ceiling


def call_with_retries(
    fn: Callable[[], T],
    backoff: Backoff,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` until it returns or raises something other than :class:`TransientFailure`.

    After ``backoff.max_retries`` retries the last :class:`TransientFailure` propagates
    with ``attempts`` set on it, so the caller can say how hard it tried.
    """
    rng = rng or random.Random()
    retry = 0
    while True:
        try:
            return fn()
        except TransientFailure as exc:
            if retry >= backoff.max_retries:
                exc.attempts = retry + 1  # type: ignore[attr-defined]
                raise
            wait = backoff.delay(retry, rng)
            if exc.retry_after is not None:
                wait = max(wait, min(exc.retry_after, backoff.cap))
            sleep(wait)
            retry += 1

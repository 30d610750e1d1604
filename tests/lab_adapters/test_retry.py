"""The shared backoff helper: capped exponential waits, server hints, and giving up with the attempt count."""

from __future__ import annotations

import random

import pytest

from lab_adapters.retry import Backoff, TransientFailure, call_with_retries


def test_waits_grow_exponentially_up_to_the_cap_and_honour_retry_after() -> None:
    waits: list[float] = []
    calls = iter([TransientFailure("503"), TransientFailure("503"), TransientFailure("503", retry_after=2.0), "ok"])

    def flaky() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    backoff = Backoff(max_retries=5, base=0.1, cap=1.5, jitter=False)
    assert call_with_retries(flaky, backoff, sleep=waits.append) == "ok"
    assert waits == [0.1, 0.2, 1.5]  # the server asked for 2 s; no wait exceeds the cap


def test_gives_up_after_max_retries_and_says_how_often_it_tried() -> None:
    attempts = []

    def always_down() -> None:
        attempts.append(1)
        raise TransientFailure("connection refused")

    with pytest.raises(TransientFailure) as info:
        call_with_retries(always_down, Backoff(max_retries=3, base=0.0), sleep=lambda _: None)
    assert len(attempts) == 4 and info.value.attempts == 4  # type: ignore[attr-defined]


def test_other_errors_are_not_retried() -> None:
    attempts = []

    def broken() -> None:
        attempts.append(1)
        raise ValueError("bad request")

    with pytest.raises(ValueError):
        call_with_retries(broken, Backoff(), sleep=lambda _: None)
    assert attempts == [1]


def test_full_jitter_stays_below_the_exponential_ceiling() -> None:
    backoff, rng = Backoff(base=0.5, cap=4.0), random.Random(0)
    for retry in range(8):
        assert 0 <= backoff.delay(retry, rng) <= min(4.0, 0.5 * 2**retry)

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.webhooks.schedule import (
    DISABLE_AFTER,
    JITTER,
    MAX_ATTEMPTS,
    RETRY_AFTER_MAX_FACTOR,
    RETRY_DELAYS_S,
    next_attempt_delay,
)

retriable = st.integers(min_value=1, max_value=MAX_ATTEMPTS - 1)


class FixedRandom(random.Random):
    """`uniform` returns the low end, midpoint or high end of the range."""

    def __init__(self, where: float) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.where


def test_schedule_shape() -> None:
    assert RETRY_DELAYS_S[:7] == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert all(d == 86400 for d in RETRY_DELAYS_S[7:])
    assert MAX_ATTEMPTS == 10
    assert list(RETRY_DELAYS_S) == sorted(RETRY_DELAYS_S)
    assert timedelta(days=3) <= timedelta(seconds=sum(RETRY_DELAYS_S)) <= timedelta(days=3.5)
    assert DISABLE_AFTER == timedelta(days=5)


def test_exact_delays_without_jitter() -> None:
    mid = FixedRandom(0.5)
    assert [next_attempt_delay(n, rng=mid) for n in range(1, MAX_ATTEMPTS)] == [
        pytest.approx(d) for d in RETRY_DELAYS_S
    ]
    assert next_attempt_delay(1, rng=FixedRandom(0.0)) == pytest.approx(4.0)
    assert next_attempt_delay(1, rng=FixedRandom(1.0)) == pytest.approx(6.0)


def test_gives_up_after_last_attempt() -> None:
    assert next_attempt_delay(MAX_ATTEMPTS - 1) is not None
    assert next_attempt_delay(MAX_ATTEMPTS) is None
    assert next_attempt_delay(MAX_ATTEMPTS + 5) is None
    with pytest.raises(ValueError):
        next_attempt_delay(0)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (2, 600.0, 600.0),  # within [scheduled, 2x scheduled]: honoured exactly
        (2, 3600.0, 600.0),  # beyond 2x: clamped
        (2, 10.0, 300.0),  # sooner than scheduled: the schedule wins
        (1, 0.0, 5.0),
        (1, 60.0, 10.0),
        (MAX_ATTEMPTS - 1, 10 * 86400.0, 2 * 86400.0),
    ],
)
def test_retry_after_is_clamped(attempt: int, retry_after: float, expected: float) -> None:
    delay = next_attempt_delay(attempt, retry_after=retry_after, rng=FixedRandom(0.5))
    assert delay == pytest.approx(expected)


def test_retry_after_after_last_attempt_still_gives_up() -> None:
    assert next_attempt_delay(MAX_ATTEMPTS, retry_after=5.0) is None


@given(retriable, st.randoms(use_true_random=False))
def test_delay_within_jitter_bounds(attempt: int, rng: random.Random) -> None:
    base = RETRY_DELAYS_S[attempt - 1]
    delay = next_attempt_delay(attempt, rng=rng)
    assert delay is not None
    assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


@given(retriable, st.floats(min_value=-1e9, max_value=1e9), st.randoms(use_true_random=False))
def test_delay_with_retry_after_within_bounds(
    attempt: int, retry_after: float, rng: random.Random
) -> None:
    base = RETRY_DELAYS_S[attempt - 1]
    delay = next_attempt_delay(attempt, retry_after=retry_after, rng=rng)
    assert delay is not None
    assert base * (1 - JITTER) <= delay <= base * max(1 + JITTER, RETRY_AFTER_MAX_FACTOR)


@given(st.randoms(use_true_random=False))
def test_total_span_is_about_three_days(rng: random.Random) -> None:
    delays = []
    attempt = 1
    while (delay := next_attempt_delay(attempt, rng=rng)) is not None:
        delays.append(delay)
        attempt += 1
    assert attempt == MAX_ATTEMPTS
    assert timedelta(days=2.5) <= timedelta(seconds=sum(delays)) <= timedelta(days=4)
    assert timedelta(seconds=sum(delays)) < DISABLE_AFTER

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.delivery.retry import (
    GIVE_UP_ATTEMPTS,
    GIVE_UP_TOO_OLD,
    GiveUp,
    RetryAt,
    RetryPolicy,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
# A short policy whose numbers are easy to check by hand; the defaults are tested apart.
POLICY = RetryPolicy(max_delay_s=600.0, max_attempts=10)


class FixedRandom(random.Random):
    def __init__(self, where: float) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.where


def test_defaults() -> None:
    default = RetryPolicy()
    assert default.base_delay_s == 2.0
    assert default.factor == 2.0
    assert default.max_delay_s == 900.0
    assert default.max_attempts == 50
    assert default.max_age == timedelta(hours=24)


def test_backoff_sequence() -> None:
    assert [POLICY.backoff(n) for n in range(1, 12)] == [
        2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600,
    ]  # fmt: skip
    assert POLICY.backoff(10_000) == 600.0
    with pytest.raises(ValueError):
        POLICY.backoff(0)


def test_equal_jitter_range() -> None:
    low = POLICY.decide(3, T0, T0, rng=FixedRandom(0.0))
    high = POLICY.decide(3, T0, T0, rng=FixedRandom(1.0))
    assert low == RetryAt(at=T0 + timedelta(seconds=4), delay_s=4.0)
    assert high == RetryAt(at=T0 + timedelta(seconds=8), delay_s=8.0)


def test_attempts_exhausted() -> None:
    assert POLICY.decide(9, T0, T0) != GiveUp(GIVE_UP_ATTEMPTS)
    assert POLICY.decide(10, T0, T0) == GiveUp(GIVE_UP_ATTEMPTS)
    assert RetryPolicy(max_attempts=1).decide(1, T0, T0) == GiveUp("attempts exhausted")


def test_too_old() -> None:
    policy = RetryPolicy(max_attempts=1000)
    late = T0 + timedelta(hours=24) - timedelta(seconds=100)
    assert isinstance(policy.decide(3, T0, late), RetryAt)
    assert policy.decide(20, T0, late) == GiveUp(GIVE_UP_TOO_OLD)  # 300-600 s would overrun
    assert policy.decide(1, T0, T0 + timedelta(days=2)) == GiveUp("too old")


def test_retry_after_is_a_clamped_floor() -> None:
    mid = FixedRandom(0.5)
    assert POLICY.decide(1, T0, T0, retry_after=30.0, rng=mid) == RetryAt(
        at=T0 + timedelta(seconds=30), delay_s=30.0
    )
    clamped = POLICY.decide(1, T0, T0, retry_after=86_400.0, rng=mid)
    assert isinstance(clamped, RetryAt) and clamped.delay_s == 1800.0
    assert POLICY.decide(1, T0, T0, retry_after=-5.0, rng=mid) == POLICY.decide(1, T0, T0, rng=mid)
    assert POLICY.decide(5, T0, T0, retry_after=0.0, rng=mid) == POLICY.decide(5, T0, T0, rng=mid)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay_s": 0.0},
        {"base_delay_s": 1000.0},
        {"factor": 0.5},
        {"max_attempts": 0},
        {"max_age": timedelta(0)},
        {"max_retry_after_s": -1.0},
    ],
)
def test_invalid_policies(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- property tests -----------------------------------------------------------------------

policies = st.builds(
    RetryPolicy,
    base_delay_s=st.floats(0.1, 10),
    factor=st.floats(1, 5),
    max_delay_s=st.floats(10, 3600),
    max_attempts=st.integers(1, 200),
    max_age=st.timedeltas(timedelta(seconds=1), timedelta(days=3)),
    max_retry_after_s=st.floats(0, 7200),
)
attempts = st.integers(1, 300)
ages = st.timedeltas(timedelta(0), timedelta(days=4))
retry_afters = st.none() | st.floats(-100, 1e6)


@given(policies | st.just(POLICY), attempts, ages, st.randoms(use_true_random=False))
def test_delay_never_exceeds_cap(
    policy: RetryPolicy, made: int, age: timedelta, rng: random.Random
) -> None:
    decision = policy.decide(made, T0, T0 + age, rng=rng)
    if isinstance(decision, RetryAt):
        assert policy.backoff(made) / 2 <= decision.delay_s <= policy.max_delay_s
        assert decision.at == T0 + age + timedelta(seconds=decision.delay_s)


@given(policies | st.just(POLICY), attempts, ages, retry_afters, st.randoms(use_true_random=False))
def test_never_retries_past_max_age_or_max_attempts(
    policy: RetryPolicy, made: int, age: timedelta, retry_after: float | None, rng: random.Random
) -> None:
    decision = policy.decide(made, T0, T0 + age, retry_after=retry_after, rng=rng)
    if made >= policy.max_attempts:
        assert decision == GiveUp(GIVE_UP_ATTEMPTS)
    elif isinstance(decision, RetryAt):
        assert decision.at <= T0 + policy.max_age
        assert decision.delay_s <= max(policy.max_delay_s, policy.max_retry_after_s)
        if retry_after is not None:
            assert decision.delay_s >= min(retry_after, policy.max_retry_after_s)
    else:
        assert decision == GiveUp(GIVE_UP_TOO_OLD)


@given(policies | st.just(POLICY), attempts)
def test_expected_delay_is_non_decreasing(policy: RetryPolicy, made: int) -> None:
    assert policy.backoff(made) <= policy.backoff(made + 1) <= policy.max_delay_s


@given(st.randoms(use_true_random=False))
def test_short_policy_runs_out_of_attempts_within_minutes(rng: random.Random) -> None:
    now, made = T0, 1
    while isinstance(decision := POLICY.decide(made, T0, now, rng=rng), RetryAt):
        now, made = decision.at, made + 1
    assert decision == GiveUp(GIVE_UP_ATTEMPTS) and made == POLICY.max_attempts
    assert timedelta(minutes=8) <= now - T0 <= timedelta(minutes=18)


@given(rng=st.randoms(use_true_random=False))
def test_default_policy_outlasts_an_afternoon_outage(rng: random.Random) -> None:
    default = RetryPolicy()
    now, made = T0, 1
    while isinstance(decision := default.decide(made, T0, now, rng=rng), RetryAt):
        now, made = decision.at, made + 1
    assert decision == GiveUp(GIVE_UP_ATTEMPTS) and made == default.max_attempts
    assert timedelta(hours=5) <= now - T0 <= timedelta(hours=11)

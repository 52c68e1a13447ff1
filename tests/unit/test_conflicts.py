"""Running a transaction again after a deadlock or a serialization conflict."""

from __future__ import annotations

import asyncpg
import pytest

from mailer.db.conflicts import retrying_conflicts


class Attempts:
    """A transaction whose calls end, in turn, as `outcomes` say: raising an exception, or
    answering a value; `calls` counts them."""

    def __init__(self, *outcomes: Exception | str) -> None:
        self._outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> str:
        outcome = self._outcomes[self.calls]
        self.calls += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def test_a_conflict_is_run_again_until_it_goes_through() -> None:
    attempt = Attempts(
        asyncpg.DeadlockDetectedError("deadlock"), asyncpg.SerializationError("s"), "stored"
    )
    assert await retrying_conflicts(attempt, action="test") == "stored"
    assert attempt.calls == 3


async def test_the_last_conflict_is_raised_and_other_errors_at_once() -> None:
    deadlocks = Attempts(*[asyncpg.DeadlockDetectedError("deadlock")] * 3, "stored")
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await retrying_conflicts(deadlocks, action="test", attempts=3)
    assert deadlocks.calls == 3

    breaks = Attempts(asyncpg.UniqueViolationError("duplicate"), "stored")
    with pytest.raises(asyncpg.UniqueViolationError):
        await retrying_conflicts(breaks, action="test")
    assert breaks.calls == 1

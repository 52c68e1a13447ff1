"""Running a transaction again after a deadlock or a serialization conflict."""

from __future__ import annotations

import asyncpg
import pytest

from mailer.db.conflicts import retrying_conflicts


async def test_a_conflict_is_run_again_until_it_goes_through() -> None:
    failures = [asyncpg.DeadlockDetectedError("deadlock"), asyncpg.SerializationError("s")]
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "stored"

    assert await retrying_conflicts(attempt, action="test") == "stored"
    assert calls == 3


async def test_the_last_conflict_is_raised_and_other_errors_at_once() -> None:
    calls = 0

    async def deadlocks() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.DeadlockDetectedError("deadlock")

    with pytest.raises(asyncpg.DeadlockDetectedError):
        await retrying_conflicts(deadlocks, action="test", attempts=3)
    assert calls == 3

    calls = 0

    async def breaks() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.UniqueViolationError("duplicate")

    with pytest.raises(asyncpg.UniqueViolationError):
        await retrying_conflicts(breaks, action="test")
    assert calls == 1

"""Running a transaction again when PostgreSQL aborted it for a deadlock or a serialization
conflict: nothing of it was stored, and the next attempt usually goes through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def retrying_conflicts(
    attempt: Callable[[], Awaitable[T]], *, action: str, attempts: int = 4
) -> T:
    """`attempt()`'s result, calling it again (after 10, 20, 30 ms) while it fails with a
    deadlock or a serialization conflict; the last such failure is raised. `attempt` must
    run a whole transaction (or one statement), so a failed one left nothing behind."""
    for number in range(1, attempts):
        try:
            return await attempt()
        except RETRYABLE as exc:
            log.info(
                "transaction conflicted; retrying",
                extra={"action": action, "error": type(exc).__name__},
            )
            await asyncio.sleep(0.01 * number)
    return await attempt()

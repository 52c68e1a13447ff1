"""The account's ceiling on Mailjet calls per second, shared by every worker.

Mailjet limits calls per API key, not per process, so the pace is kept in the database:
one row holds the earliest time the next call may start (a generic cell rate algorithm).
A worker books consecutive slots for all the calls of one claim in one statement and
starts each call at its slot, so all workers together never exceed the ceiling, and no
slot is ever handed out twice.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from mailer.db.queries import Queries
from mailer.delivery.rows import PacingRow

Q = Queries("mailer.delivery")


class MailjetPace:
    """Books start times for Mailjet calls at `calls_per_second` for the whole account."""

    def __init__(self, pool: asyncpg.Pool, calls_per_second: float) -> None:
        self._pool = pool
        self.calls_per_second = calls_per_second

    def most_calls(self, lease_seconds: float) -> int:
        """The most calls one claim should book: the last must start well within the
        lease (a quarter of it), or its jobs would be looked up as if their worker died."""
        return max(1, int(self.calls_per_second * lease_seconds / 4))

    async def book(self, calls: int) -> list[float]:
        """Book `calls` consecutive slots; answers each one's start, in `time.monotonic()`."""
        if calls <= 0:
            return []
        row = await self._pool.fetchrow(
            Q.reserve_mailjet_calls, calls, self.calls_per_second, record_class=PacingRow
        )
        assert row is not None  # an upsert with RETURNING answers its row
        first = time.monotonic() + (row.first_slot - row.now).total_seconds()
        return [first + index / self.calls_per_second for index in range(calls)]


async def wait_for_slot(start: float) -> None:
    """Sleep until the monotonic time `start` (at once if it has passed)."""
    delay = start - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)

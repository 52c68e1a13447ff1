"""Statistics and vacuum for the busiest tables, when the server's autovacuum is off.

PostgreSQL plans every query from table statistics that autovacuum gathers. A server
with autovacuum off (some CI set-ups turn it off) never gathers them: the planner then
assumes a job has hundreds of messages and, measured here, recorded each send result
with a scan of the whole `messages` table (69 ms a call at 100,000 messages, against
well under 1 ms with statistics). Dead rows of the queue are never reclaimed either.
A worker that finds autovacuum off says so and does that work itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.db.queries import Queries
from mailer.db.rows import Column, Row

Q = Queries("mailer.db")


class TableCareRow(Row):
    """Whether the hot tables want ANALYZE or VACUUM now."""

    analyze = Column[bool]()
    vacuum = Column[bool]()


# VACUUM of a large table may take longer than the pool's 60 s statement timeout.
_NO_LIMIT = 24 * 3600.0
log = logging.getLogger(__name__)


class Housekeeping:
    """While the server's autovacuum is off, look every `check_every` seconds whether the
    busiest tables changed enough to need ANALYZE or VACUUM (autovacuum's own rule), and
    run it."""

    def __init__(
        self, pool: asyncpg.Pool, *, check_every: float = 2.0, pause: float = 60.0
    ) -> None:
        self._pool = pool
        self._check_every = check_every
        # At most one ANALYZE or VACUUM a `pause`, as autovacuum's naptime: a busy queue
        # changes 10 % of its rows in seconds, and each run would cost more than it gains.
        # The first ANALYZE is not held back: plans without any statistics are the harm.
        self._pause = pause
        self._last_run: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check the server's autovacuum; if it is off, start the housekeeping loop."""
        if await self._pool.fetchval(Q.autovacuum_enabled):
            return
        if not await self._pool.fetchval(Q.owns_hot_tables):
            # PostgreSQL would only warn and skip each table: say it once, do nothing.
            log.warning(
                "autovacuum is off on this server and this role does not own the queue "
                "tables, so it cannot analyze or vacuum them; turn autovacuum on",
                extra={"action": "housekeeping_impossible"},
            )
            return
        log.warning(
            "autovacuum is off on this server: the worker analyzes and vacuums the queue "
            "tables itself; turn autovacuum on in production",
            extra={"action": "housekeeping_started"},
        )
        self._task = asyncio.create_task(self._loop())

    @property
    def running(self) -> bool:
        """Whether the loop runs (only while autovacuum is off)."""
        return self._task is not None

    async def stop(self) -> None:
        """Stop the loop (a statement in progress is cancelled; it changes no data)."""
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # never let it end the loop: stop() must stay quiet
                log.warning(
                    "housekeeping failed; trying again later",
                    extra={"action": "housekeeping_failed", "error": type(exc).__name__},
                )
            await asyncio.sleep(self._check_every)

    async def run_once(self) -> str | None:
        """Analyze or vacuum now if the tables need it; what was done, if anything."""
        if self._last_run is not None and time.monotonic() - self._last_run < self._pause:
            return None
        needs = await self._pool.fetchrow(Q.tables_needing_care, record_class=TableCareRow)
        assert needs is not None  # an aggregate always answers one row
        if needs.vacuum and self._last_run is not None:
            query, done = Q.vacuum_hot_tables, "vacuum"
        elif needs.analyze or needs.vacuum:
            query, done = Q.analyze_hot_tables, "analyze"
        else:
            return None
        # Counted from the start, so that a failing run also waits a `pause`.
        self._last_run = time.monotonic()
        await self._pool.execute(query, timeout=_NO_LIMIT)
        return done

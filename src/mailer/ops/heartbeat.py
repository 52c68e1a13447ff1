"""Worker heartbeats: a row per running worker, so the other processes can see it.

A worker writes its row when it starts, refreshes it every `interval` seconds and deletes it
when it stops cleanly. Readers count a worker as alive while its row was refreshed within
`ALIVE_WITHIN` seconds; a worker that died simply stops refreshing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime

import asyncpg

from mailer import __version__
from mailer.aio import cancel_and_wait
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.logs import describe
from mailer.ops.outage import is_unavailable
from mailer.ops.rows import WorkerRow

Q = Queries("mailer.ops")
log = logging.getLogger(__name__)

INTERVAL = 5.0
# Several missed beats in a row before a worker counts as gone: a busy database or a long
# GC pause must not make a live worker look dead.
ALIVE_WITHIN = 30.0
# Rows of workers that stopped without deleting theirs are pruned after this long.
FORGET_AFTER = 24 * 3600.0


class Heartbeat:
    """Keeps one worker's heartbeat row fresh while started."""

    def __init__(self, pool: asyncpg.Pool, worker_id: str, *, interval: float = INTERVAL) -> None:
        self._pool = pool
        self.worker_id = worker_id
        self._interval = interval
        self._started_at = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        """Write the row (failing loudly if the database is unreachable), then keep it fresh."""
        await self._beat()
        await self._pool.execute(Q.prune_workers, FORGET_AFTER)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop refreshing and delete the row (best effort: the row expires anyway)."""
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await self._pool.execute(Q.forget_worker, self.worker_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "could not delete the worker's heartbeat; it expires by itself",
                extra={"action": "heartbeat_forget_failed", "error": describe(exc)},
            )

    async def _beat(self) -> None:
        await self._pool.execute(
            Q.beat,
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            __version__,
            self._started_at,
        )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "heartbeat failed: the database is unreachable; retrying",
                        extra={"action": "heartbeat_failed", "error": describe(exc)},
                    )
                log.debug("heartbeat failed", exc_info=exc)
                continue
            if self._failing:
                self._failing = False
                log.info("heartbeat written again", extra={"action": "heartbeat_recovered"})


async def live_worker_count(conn: Conn, within: float = ALIVE_WITHIN) -> int:
    """How many workers refreshed their heartbeat within `within` seconds."""
    count: int = await conn.fetchval(Q.live_worker_count, within)
    return count


async def workers(conn: Conn, within: float = ALIVE_WITHIN) -> list[WorkerRow]:
    """Every worker with a heartbeat row, newest first, with its `alive` flag."""
    return list(await conn.fetch(Q.workers, within, record_class=WorkerRow))

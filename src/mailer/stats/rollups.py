"""Reading the hourly rollups per hour or day, with rates; folding hours that closed.

What a period shows, and its rates, is SQL (`stats_json`, migration 0013): PostgreSQL
builds the whole answer, so 720 hours cost no Python objects per period.

The counts are written where the things happen, in the same statements (migration 0013
describes the table): `accepted` when jobs are stored, `sent` when Mailjet's answer is
recorded, the rest when Mailjet's events are applied. Nothing here counts jobs or events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.db.pool import Conn
from mailer.db.queries import Queries

Q = Queries("mailer.stats")
log = logging.getLogger(__name__)

__all__ = ["MAX_PERIODS", "STEP", "Folder", "Granularity", "aligned", "read_stats"]

Granularity = Literal["hour", "day"]
STEP: dict[Granularity, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_PERIODS: dict[Granularity, int] = {"hour": 31 * 24, "day": 400}
"""The most periods one read answers: 31 days by the hour, 400 days by the day."""


def aligned(moment: datetime, granularity: Granularity, *, up: bool = False) -> datetime:
    """`moment` (UTC) rounded down (or `up`) to the start of its hour or day."""
    utc = moment.astimezone(UTC)
    floor = utc.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        floor = floor.replace(hour=0)
    if up and floor != utc:
        floor += STEP[granularity]
    return floor


async def read_stats(
    conn: Conn,
    app_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    *,
    tag: str = "",
) -> dict[str, Any]:
    """`{"periods": [...], "total": {...}}` from `start` to `end` (aligned by the caller:
    `aligned`), every period, empty ones as zeros: one document PostgreSQL builds from
    the rollups only (`stats_document`)."""
    document: dict[str, Any] = await conn.fetchval(
        Q.stats_document, app_id, start, end, granularity, tag
    )
    return document


class Folder:
    """Folds closed hours' per-connection rows into one row each, every `every` seconds
    (any number of workers may run one: folds skip what another holds)."""

    def __init__(self, pool: asyncpg.Pool, *, every: float = 60.0, batch: int = 10_000) -> None:
        self._pool = pool
        self._every = every
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start folding in the background."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop folding (a fold in progress is rolled back: nothing is lost)."""
        await cancel_and_wait(self._task)
        self._task = None

    async def fold_once(self) -> int:
        """Fold up to `batch` rows; answers how many were folded."""
        status: str = await self._pool.execute(Q.fold_closed_hours, self._batch)
        return int(status.rsplit(" ", 1)[-1])

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                for _ in range(100):  # bounded: what is left waits for the next turn
                    if await self.fold_once() == 0:
                        break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "folding the stats failed; trying again later",
                    extra={"action": "stats_fold_failed", "error": type(exc).__name__},
                )

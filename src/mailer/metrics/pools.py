"""The database pool gauges: each process samples its own pool every few seconds.

Sampled rather than read at scrape time, so that in multiprocess mode every process's pool
is counted (the process answering a scrape cannot see the others' pools).
"""

from __future__ import annotations

import asyncio

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.metrics import count
from mailer.metrics import families as f

SAMPLE_SECONDS = 2.0


class PoolSampler:
    """Keeps `mailer_db_pool_connections{pool=name}` up to date while started."""

    def __init__(self, pool: asyncpg.Pool, name: str, *, interval: float = SAMPLE_SECONDS):
        self._pool = pool
        self._interval = interval
        self._in_use = f.POOL_CONNECTIONS.labels(name, "in_use")
        self._idle = f.POOL_CONNECTIONS.labels(name, "idle")
        self._max = f.POOL_CONNECTIONS.labels(name, "max")
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Set the gauges from the pool now."""
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        self._in_use.set(size - idle)
        self._idle.set(idle)
        self._max.set(self._pool.get_max_size())

    def start(self) -> None:
        """Sample now and every `interval` seconds (nothing with metrics off)."""
        if count.enabled() and self._task is None:
            self.sample()
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.sample()

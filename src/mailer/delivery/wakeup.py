"""Wake idle workers when work is queued: LISTEN/NOTIFY as a hint, a slow poll as the net.

The listener holds one dedicated connection (a pooled one could not keep LISTEN). It is
probed regularly and re-opened after any failure, e.g. a database restart; after a
reconnect it wakes the worker once, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from mailer.aio import cancel_and_wait

log = logging.getLogger(__name__)

CHANNEL = "mailer_jobs"


class Wakeup:
    """An `asyncio.Event` set by NOTIFY on a channel, kept alive across reconnects."""

    def __init__(self, dsn: str, channel: str = CHANNEL, *, probe_every: float = 10.0) -> None:
        self._dsn = dsn
        self._channel = channel
        self._probe_every = probe_every
        self.event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        await cancel_and_wait(self._task)
        self._task = None

    async def wait(self, timeout: float) -> None:
        """Return when notified, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)

    def _notified(self, *_: Any) -> None:
        self.event.set()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(self._channel, self._notified)
                self.connected.set()
                self.event.set()
                backoff = 0.5
                while True:
                    await asyncio.sleep(self._probe_every)
                    await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning(
                    "job listener lost its connection; reconnecting",
                    extra={"action": "listener_reconnect", "error": type(exc).__name__},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)


async def finish_claim_loop(loop_task: asyncio.Task[None], *, within: float) -> None:
    """Let a claim loop that was asked to stop finish its current step, then return.

    Cancelled between a committed claim and the start of its work, a loop would strand the
    claimed rows until their lease ends; only a loop stuck past `within` is cancelled.
    """
    try:
        await asyncio.wait_for(asyncio.shield(loop_task), within)
    except TimeoutError:
        await cancel_and_wait(loop_task)

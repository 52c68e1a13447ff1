"""Wake idle loops when work is queued: LISTEN/NOTIFY as a hint, a slow poll as the net.

One listener holds one dedicated connection (a pooled one could not keep LISTEN) for every
channel a process listens on, and gives each channel its own :class:`Signal`. The
connection is probed regularly and re-opened after any failure, e.g. a database restart;
after a reconnect every signal is set once, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from mailer.aio import cancel_and_wait

log = logging.getLogger(__name__)


class Signal:
    """An `asyncio.Event` set when its channel is notified (or the listener reconnects)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return when notified, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)


class Wakeup:
    """One LISTEN connection for `channels`, kept alive across reconnects."""

    def __init__(self, dsn: str, channels: Iterable[str], *, probe_every: float = 10.0) -> None:
        self._dsn = dsn
        self._signals = {channel: Signal() for channel in channels}
        if not self._signals:
            raise ValueError("a listener needs at least one channel")
        self._probe_every = probe_every
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def signal(self, channel: str) -> Signal:
        """The signal of one of the channels listened on."""
        return self._signals[channel]

    async def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        await cancel_and_wait(self._task)
        self._task = None

    def _notified(self, _conn: Any, _pid: int, channel: str, _payload: object) -> None:
        self._signals[channel].event.set()

    def _wake_all(self) -> None:
        for signal in self._signals.values():
            signal.event.set()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                for channel in self._signals:
                    await conn.add_listener(channel, self._notified)
                self.connected.set()
                self._wake_all()
                backoff = 0.5
                while True:
                    await asyncio.sleep(self._probe_every)
                    await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning(
                    "listener lost its connection; reconnecting",
                    extra={"action": "listener_reconnect", "error": type(exc).__name__},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)

"""The worker's wake-up listener survives a database restart."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from mailer.db.embedded import EmbeddedPostgres
from mailer.db.pool import connect
from mailer.delivery.wakeup import CHANNEL, Wakeup


async def _notify(dsn: str) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
    finally:
        await conn.close()


async def test_listener_reconnects_after_a_database_restart() -> None:
    with tempfile.TemporaryDirectory(prefix="mailer-wakeup-") as tmp:
        os.chmod(tmp, 0o755)
        server = EmbeddedPostgres(Path(tmp))
        dsn = server.start()
        wakeup = Wakeup(dsn, probe_every=0.2)
        await wakeup.start()
        try:
            await asyncio.wait_for(wakeup.connected.wait(), 10)
            wakeup.event.clear()
            await _notify(dsn)
            await asyncio.wait_for(wakeup.event.wait(), 5)

            server.stop()
            await asyncio.wait_for(_until(lambda: not wakeup.connected.is_set()), 10)
            server = EmbeddedPostgres(Path(tmp), delete_on_stop=True)
            assert server.start() == dsn
            await asyncio.wait_for(wakeup.connected.wait(), 20)

            wakeup.event.clear()
            await _notify(dsn)
            await asyncio.wait_for(wakeup.event.wait(), 5)
        finally:
            await wakeup.stop()
            server.stop()


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.05)

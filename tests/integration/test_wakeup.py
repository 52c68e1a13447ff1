"""Waking the loops: one listener serves several channels and survives a database restart,
and an idle worker wakes at once on a notification."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import asyncpg

from mailer.db.embedded import EmbeddedPostgres
from mailer.db.pool import connect
from mailer.delivery.retry import RetryPolicy
from mailer.delivery.send import Sender
from mailer.delivery.worker import JOBS_CHANNEL, Worker
from mailer.mailjet.client import MailjetClient
from mailer.queue.wakeup import Signal, Wakeup
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET
from mailer.simulator.server import SimulatorServer

OTHER = "mailer_other"


async def _notify(dsn: str, channel: str = JOBS_CHANNEL) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute("SELECT pg_notify($1, '')", channel)
    finally:
        await conn.close()


async def test_listener_reconnects_after_a_database_restart() -> None:
    with tempfile.TemporaryDirectory(prefix="mailer-wakeup-") as tmp:
        os.chmod(tmp, 0o755)
        server = EmbeddedPostgres(Path(tmp))
        dsn = server.start()
        wakeup = Wakeup(dsn, (JOBS_CHANNEL, OTHER), probe_every=0.2)
        jobs, other = wakeup.signal(JOBS_CHANNEL), wakeup.signal(OTHER)
        await wakeup.start()
        try:
            await asyncio.wait_for(wakeup.connected.wait(), 10)
            jobs.event.clear()
            other.event.clear()
            await _notify(dsn)
            await asyncio.wait_for(jobs.event.wait(), 5)
            assert not other.event.is_set()  # each channel wakes only its own loop
            await _notify(dsn, OTHER)
            await asyncio.wait_for(other.event.wait(), 5)

            server.stop()
            await asyncio.wait_for(_until(lambda: not wakeup.connected.is_set()), 10)
            jobs.event.clear()
            other.event.clear()
            server = EmbeddedPostgres(Path(tmp), delete_on_stop=True)
            assert server.start() == dsn
            await asyncio.wait_for(wakeup.connected.wait(), 20)
            # Notifications sent while disconnected are lost: a reconnect wakes every loop.
            assert jobs.event.is_set() and other.event.is_set()

            jobs.event.clear()
            await _notify(dsn)
            await asyncio.wait_for(jobs.event.wait(), 5)
        finally:
            await wakeup.stop()
            server.stop()


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.05)


async def test_a_notification_wakes_an_idle_worker_while_it_asks_when_work_is_due(
    db_dsn: str, pool: asyncpg.Pool, simulator: SimulatorServer
) -> None:
    # An idle worker asks when work is next due while already listening: a notification
    # that comes meanwhile wakes it at once, however long the query takes (here it waits
    # for a lock on the jobs table).
    signal = Signal()  # no listener: the test sets it as a NOTIFY would
    async with MailjetClient(simulator.url, SIMULATOR_KEY, SIMULATOR_SECRET) as client:
        worker = Worker(pool, Sender(client, RetryPolicy()), signal)
        locker = await connect(db_dsn)
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
                idle = asyncio.create_task(worker.loop._idle())
                await asyncio.sleep(0.3)
                assert not idle.done()  # the next-due query is held up by the lock
                signal.event.set()
                await asyncio.wait_for(idle, 2)
        finally:
            await locker.close()

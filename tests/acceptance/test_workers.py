"""Several real worker processes on one queue: exactly-once under concurrency and crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import asyncpg
import pytest

from mailer.db.pool import connect
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.simulator.faults import FaultConfig
from mailer.simulator.server import SimulatorServer

pytestmark = pytest.mark.slow


class Workers:
    """Starts `mailer worker` processes against a database and a simulator."""

    def __init__(self, dsn: str, mailjet_url: str) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "MAILJET_API_URL": mailjet_url,
            "MAILER_POLL_INTERVAL": "0.2",
            "MAILER_LEASE_SECONDS": "8",
            "MAILER_MAILJET_TIMEOUT": "2",
            "MAILER_LOOKUP_GRACE_SECONDS": "0.5",
            "MAILER_LOG_LEVEL": "warning",
        }
        self.env.pop("MJ_APIKEY_PUBLIC", None)
        self.env.pop("MJ_APIKEY_PRIVATE", None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer.cli", "worker"], env=self.env, stdin=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(db_dsn: str, simulator: SimulatorServer) -> Iterator[Workers]:
    group = Workers(db_dsn, simulator.url)
    yield group
    group.stop_all()


async def queue_jobs(dsn: str, count: int) -> list[str]:
    conn = await connect(dsn)
    try:
        app_id = await conn.fetchval(
            "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'load') RETURNING id"
        )
        jobs = [
            new_job(
                app_id,
                EmailRequest.model_validate(
                    {
                        "from": {"email": "noreply@shop.example"},
                        "to": [{"email": f"user{i}@example.org"}],
                        "subject": "Hello",
                        "text": "Hi",
                    }
                ),
            )
            for i in range(count)
        ]
        async with conn.transaction():
            await insert_jobs(conn, jobs)
    finally:
        await conn.close()
    return [str(j.id) for j in jobs]


async def wait_until_finished(dsn: str, count: int, timeout: float) -> None:
    conn = await connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            finished = await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'")
            if finished == count:
                return
            if time.monotonic() > deadline:
                states = await conn.fetch("SELECT state, count(*) FROM jobs GROUP BY state")
                raise AssertionError(f"not finished: {[tuple(r) for r in states]}")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def wait_for_claims(conn: asyncpg.Connection, *, at_least: int) -> None:
    """Wait until a worker holds at least `at_least` jobs."""
    deadline = time.monotonic() + 20
    while await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'sending'") < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} jobs were ever claimed"
        await asyncio.sleep(0.05)


async def test_three_workers_send_2000_jobs_exactly_once(
    db_dsn: str, simulator: SimulatorServer, workers: Workers
) -> None:
    job_ids = await queue_jobs(db_dsn, 2000)
    for _ in range(3):
        workers.start()
    await wait_until_finished(db_dsn, 2000, timeout=90)
    assert len(simulator.state.accepted) == 2000
    assert all(simulator.state.count_for(job_id) == 1 for job_id in job_ids)
    assert max(simulator.state.calls) <= 50
    conn = await connect(db_dsn)
    try:
        missing_ids = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE message_id IS NULL OR status <> 'accepted'"
        )
    finally:
        await conn.close()
    assert missing_ids == 0


async def test_a_killed_worker_s_jobs_are_finished_by_another_exactly_once(
    db_dsn: str, simulator: SimulatorServer, workers: Workers
) -> None:
    job_ids = await queue_jobs(db_dsn, 100)
    # Slow Mailjet, so the first worker dies with calls in flight.
    simulator.set_faults(FaultConfig(latency_ms=1500))
    first = workers.start()
    conn = await connect(db_dsn)
    try:
        await wait_for_claims(conn, at_least=100)
    finally:
        await conn.close()
    await asyncio.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    workers.start()
    await wait_until_finished(db_dsn, 100, timeout=60)
    assert all(simulator.state.count_for(job_id) == 1 for job_id in job_ids)
    assert len(simulator.state.accepted) == 100


async def test_sigterm_drains_in_flight_calls(
    db_dsn: str, simulator: SimulatorServer, workers: Workers
) -> None:
    job_ids = await queue_jobs(db_dsn, 60)
    simulator.set_faults(FaultConfig(latency_ms=1000))
    proc = workers.start()
    conn = await connect(db_dsn)
    try:
        await wait_for_claims(conn, at_least=1)
        proc.send_signal(signal.SIGTERM)
        # Wait without blocking the loop: the simulator answering the worker runs on it.
        deadline = time.monotonic() + 20
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the worker did not drain in time"
            await asyncio.sleep(0.05)
        assert proc.returncode == 0
        rows = await conn.fetch("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        states = {row["state"]: row["n"] for row in rows}
    finally:
        await conn.close()
    # Everything claimed was either sent and recorded, or given back untouched.
    assert "sending" not in states
    sent = [j for j in job_ids if simulator.state.count_for(j)]
    assert states.get("done", 0) == len(sent)
    assert all(simulator.state.count_for(j) <= 1 for j in job_ids)

"""The running pieces a scenario asks for: Mailer's API and worker, the simulator, baselines.

`Bench` carries what every scenario shares (size, database server, load generator, report,
log folder) and starts processes as context managers, so each is stopped when its block
ends whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import infra
from bench.load import LoadGenerator, PythonLoad
from bench.report import Report
from bench.sizes import Size
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET

EVENTS_USER = "mailjet"
EVENTS_PASSWORD = "bench-events-secret"


@dataclass
class Simulator:
    """A `mailer simulator` process and its control API."""

    proc: infra.Proc
    url: str
    port: int
    http: aiohttp.ClientSession

    async def stats(self) -> dict[str, Any]:
        """`/_sim/stats`: accepted counts, duplicates, sends per CustomID."""
        async with self.http.get(self.url + "/_sim/stats") as response:
            data: dict[str, Any] = await response.json()
            return data

    async def messages(self) -> list[dict[str, Any]]:
        """`/_sim/messages`: every accepted recipient-level message."""
        async with self.http.get(self.url + "/_sim/messages") as response:
            data: dict[str, Any] = await response.json()
            rows: list[dict[str, Any]] = data["Data"]
            return rows

    async def reset(self) -> None:
        """Forget everything accepted so far."""
        async with self.http.post(self.url + "/_sim/reset") as response:
            response.raise_for_status()

    async def add_callback(self, url: str) -> None:
        """Register an event callback URL (used by the soak when events are posted)."""
        auth = aiohttp.BasicAuth(SIMULATOR_KEY, SIMULATOR_SECRET)
        for event_type in ("sent", "open", "click", "bounce", "spam", "blocked", "unsub"):
            body = {"EventType": event_type, "Url": url, "Version": 2}
            async with self.http.post(
                self.url + "/v3/REST/eventcallbackurl", json=body, auth=auth
            ) as response:
                await response.read()


@dataclass
class Bench:
    """What the scenarios share."""

    size: Size
    server: str
    load: LoadGenerator
    report: Report
    logs: Path
    worker_env: dict[str, str] = field(default_factory=dict)
    python: PythonLoad = field(default_factory=PythonLoad)

    def mailer_env(self, dsn: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment of a Mailer process on `dsn`."""
        env = {
            "DATABASE_URL": dsn,
            "MAILER_LOG_LEVEL": "warning",
            "MAILER_EVENTS_USER": EVENTS_USER,
            "MAILER_EVENTS_PASSWORD": EVENTS_PASSWORD,
        }
        env.update(extra or {})
        return env

    @contextlib.asynccontextmanager
    async def api(
        self, dsn: str, *, workers: int | None = None, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[infra.Proc]:
        """`mailer api --workers N` on a free port (`proc.port`), ready to serve."""
        port = infra.free_port()
        argv = infra.mailer_argv(
            "api", "--port", str(port), "--workers", str(workers or self.size.api_workers)
        )
        async with infra.process("api", argv, self.mailer_env(dsn, env), self.logs) as proc:
            proc.port = port
            await infra.wait_http(proc, f"http://127.0.0.1:{port}/healthz")
            yield proc

    @contextlib.asynccontextmanager
    async def worker(
        self, dsn: str, simulator: Simulator, env: Mapping[str, str] | None = None
    ) -> AsyncIterator[infra.Proc]:
        """`mailer worker` sending to the simulator, returned once it listens for jobs."""
        extra = {"MAILJET_API_URL": simulator.url, **self.worker_env, **(env or {})}
        argv = infra.mailer_argv("worker")
        async with infra.process("worker", argv, self.mailer_env(dsn, extra), self.logs) as proc:
            await wait_listening(proc, dsn)
            yield proc

    @contextlib.asynccontextmanager
    async def simulator(self, latency_ms: float) -> AsyncIterator[Simulator]:
        """`mailer simulator --latency-ms L` on a free port."""
        port = infra.free_port()
        argv = infra.mailer_argv("simulator", "--port", str(port), "--latency-ms", str(latency_ms))
        async with (
            infra.process("simulator", argv, {}, self.logs) as proc,
            aiohttp.ClientSession() as http,
        ):
            url = f"http://127.0.0.1:{port}"
            await infra.wait_http(proc, url + "/_sim/stats")
            yield Simulator(proc, url, port, http)

    @contextlib.asynccontextmanager
    async def bare(self, kind: str, workers: int | None = None) -> AsyncIterator[infra.Proc]:
        """A baseline server (`bench.bare`): queue, events or canned."""
        port = infra.free_port()
        argv = [sys.executable, "-m", "bench.bare", kind, "--port", str(port)]
        argv += ["--workers", str(workers or self.size.api_workers)]
        async with infra.process(f"bare-{kind}", argv, {}, self.logs) as proc:
            proc.port = port
            await infra.wait_http(proc, f"http://127.0.0.1:{port}/healthz")
            yield proc


async def wait_listening(proc: infra.Proc, dsn: str, timeout: float = 30.0) -> None:
    """Wait until a process holds a LISTEN connection on the database (a started worker)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            proc.check_alive()
            listening = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
            )
            if listening:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} never listened:\n{proc.tail()}")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def wait_drained(dsn: str, timeout: float, poll: float = 0.2) -> float:
    """Wait until no job is queued or being sent; return the time (perf_counter) it was seen."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.perf_counter() + timeout
        while True:
            busy = await conn.fetchval(_ANY_UNFINISHED)
            now = time.perf_counter()
            if not busy:
                return now
            if now > deadline:
                left = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE state IN ('queued', 'sending')"
                )
                raise RuntimeError(f"{left} jobs still queued or sending after {timeout} s")
            await asyncio.sleep(poll)
    finally:
        await conn.close()


# Whether any job is queued or being sent, each part a probe of the partial index that
# holds such jobs. The poll's connection is one of the database's backends, whose CPU the
# scenarios count as Mailer's: a count(*) of those jobs, a scan of the table, cost the
# delivery drain a tenth of its PostgreSQL CPU.
_ANY_UNFINISHED = """
SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' AND NOT held)
    OR EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' AND held)
    OR EXISTS (SELECT 1 FROM jobs WHERE state = 'sending')
"""

"""Sizing: emails per second per CPU core of the API, the worker and PostgreSQL.

Three phases on one database: enqueue one email per `POST /queue`, enqueue 500 per
`POST /queue/batch` (API processes running, no worker), then one `mailer worker` drains
everything through the simulator. Each phase measures, from /proc, the CPU seconds of the
Mailer processes at work (uvicorn's supervisor and its workers; the worker) and of the
PostgreSQL backends serving the database; emails ÷ CPU seconds is the rate one fully busy
core sustains. The server's shared processes (WAL writer, checkpointer, autovacuum) are
measured apart, as a note: on a shared server they work for other databases too. Time
spent waiting for the disk is not CPU; docs/deployment.md says how to read the figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncpg
import orjson

from bench import cpu, infra
from bench.load import raw_request
from bench.payloads import batch_body, email_body
from bench.report import Row
from bench.stack import Bench, wait_drained

BATCH = 500
SIMULATOR_LATENCY_MS = 50.0


@dataclass(frozen=True)
class Phase:
    """What one phase did: emails, wall seconds, CPU seconds by meter."""

    name: str
    emails: int
    seconds: float
    cpu: dict[str, float]


def _meters(mailer: infra.Proc, conn: asyncpg.Connection) -> dict[str, cpu.CpuMeter]:
    lock = asyncio.Lock()
    return {
        "mailer": cpu.CpuMeter(cpu.mailer_pids(mailer)),
        "pg": cpu.CpuMeter(cpu.pg_pids(conn, cpu.BACKENDS, lock)),
        "pg_shared": cpu.CpuMeter(cpu.pg_pids(conn, cpu.SHARED, lock)),
    }


async def _jobs(conn: asyncpg.Connection) -> int:
    """Jobs in the table (read while no meter samples on `conn`)."""
    return int(await conn.fetchval("SELECT count(*) FROM jobs"))


async def _measured(meters: dict[str, cpu.CpuMeter], phase: Awaitable[object]) -> dict[str, float]:
    """Start the meters, wait for `phase`, stop them: CPU seconds by meter name."""
    for meter in meters.values():
        await meter.start()
    await phase
    return {name: await meter.stop() for name, meter in meters.items()}


async def sizing(b: Bench) -> None:
    """Emails per CPU second of the API (single and batch), the worker and PostgreSQL."""
    if not cpu.available():
        b.report.note("sizing: no /proc here, so no CPU times: not measured")
        return
    async with infra.fresh_database(b.server) as dsn:
        _, key = await infra.create_app(dsn)
        meter_conn = await asyncpg.connect(dsn)
        try:
            if not await cpu.local_server(meter_conn):
                b.report.note("sizing: PostgreSQL is not on this machine: not measured")
                return
            rows = await _enqueue_phases(b, dsn, key, meter_conn)
            rows.append(await _send_phase(b, dsn, meter_conn))
        finally:
            await meter_conn.close()
    for phase in rows:
        _report(b, phase)


def _report(b: Bench, phase: Phase) -> None:
    process = "worker" if phase.name.startswith("send") else f"API ({b.size.api_workers} procs)"
    mailer, backends, shared = (phase.cpu[k] for k in ("mailer", "pg", "pg_shared"))
    note = f"{phase.emails:,} emails in {phase.seconds:.1f} s; {mailer:.1f} CPU s"
    b.report.add(
        Row("sizing", f"{process}: {phase.name}", phase.emails / mailer, "emails/s/core", note=note)
    )
    b.report.add(
        Row(
            "sizing",
            f"PostgreSQL backends: {phase.name}",
            phase.emails / backends,
            "emails/s/core",
            note=f"{backends:.1f} CPU s; the server's shared processes {shared:.1f} CPU s more",
        )
    )


async def _enqueue_phases(
    b: Bench, dsn: str, key: str, meter_conn: asyncpg.Connection
) -> list[Phase]:
    s = b.size
    auth = {"Authorization": f"Bearer {key}"}
    phases = [
        ("POST /queue, 1 email/request", "/queue", 1, s.single_connections),
        (f"POST /queue/batch, {BATCH}/request", "/queue/batch", BATCH, s.batch_connections),
    ]
    results = []
    async with b.api(dsn) as api:
        for number, (phase, path, per_request, connections) in enumerate(phases):
            offset = (number + 1) * 10_000_000
            if per_request == 1:
                bodies = [orjson.dumps(email_body(offset + i)) for i in range(s.single_bodies)]
            else:
                bodies = [batch_body(offset + i * BATCH, BATCH) for i in range(s.sizing_batches)]
            raws = [raw_request(api.port, "POST", path, body, auth) for body in bodies]
            before, began = await _jobs(meter_conn), time.perf_counter()
            load = asyncio.ensure_future(
                b.load.closed(
                    api.port, raws, connections=connections, duration=s.sizing_seconds, warmup=0
                )
            )
            used = await _measured(_meters(api, meter_conn), load)
            emails = await _jobs(meter_conn) - before
            results.append(Phase(phase, emails, time.perf_counter() - began, used))
    return results


async def _send_phase(b: Bench, dsn: str, meter_conn: asyncpg.Connection) -> Phase:
    """The worker drains what the API queued; measured from once it listens."""
    queued = await _jobs(meter_conn)
    async with b.simulator(SIMULATOR_LATENCY_MS) as sim, b.worker(dsn, sim) as worker:
        meters = _meters(worker, meter_conn)
        done_before = int(
            await meter_conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'")
        )
        began = time.perf_counter()
        drained = asyncio.ensure_future(wait_drained(dsn, timeout=600, poll=0.1))
        used = await _measured(meters, drained)
    emails = queued - done_before
    phase = f"send and record (simulator {SIMULATOR_LATENCY_MS:.0f} ms)"
    return Phase(phase, emails, drained.result() - began, used)

"""The delivery scenario's peers: PgQueuer and procrastinate draining no-op jobs, and
PgQueuer sending each job's email to the simulator.

    python -m bench.peers pgqueuer|procrastinate --dsn DSN --jobs N --concurrency 10 \
        [--batch-size 10] [--send URL] --cap S

Runs in its own process (the harness starts it, once per setting of PgQueuer's sweep),
enqueues N no-op jobs in bulk (not timed), then times the drain with `concurrency`
consumers (PgQueuer: QueueManagers, each on its own connection, dequeuing `batch-size`
jobs at a time; procrastinate: one worker's concurrency) and prints one JSON line:
`BENCH_JSON {"jobs": done, "seconds": s, "capped": bool}`. A drain still running after
`cap` seconds is stopped, and the rate is what it did until then.

With `--send URL` (PgQueuer only), each job holds one email and its handler makes the Send
API call a team would write beside PgQueuer: one message per call, through one aiohttp
session, to the simulator at URL; the result also counts the calls not answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.payloads import send_call_body
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET

CHUNK = 5000


async def pgqueuer(
    dsn: str,
    jobs: int,
    concurrency: int,
    cap: float,
    batch_size: int = 10,
    send_url: str | None = None,
) -> dict[str, Any]:
    """`concurrency` PgQueuer QueueManagers (asyncpg, `batch_size` jobs per dequeue)
    draining `jobs` no-ops, or with `send_url` sending each job's email there."""
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()
    for start in range(0, jobs, CHUNK):
        n = min(CHUNK, jobs - start)
        if send_url is None:
            await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
        else:
            emails: list[bytes | None] = [send_call_body(start + i, 1) for i in range(n)]
            await queries.enqueue(["send"] * n, emails, [0] * n)
    session = None
    failed = 0
    if send_url is not None:
        session = aiohttp.ClientSession(
            auth=aiohttp.BasicAuth(SIMULATOR_KEY, SIMULATOR_SECRET),
            headers={"Content-Type": "application/json"},
            connector=aiohttp.TCPConnector(limit=0),
        )

    managers = []
    connections = []
    for _ in range(concurrency):
        c = await asyncpg.connect(dsn)
        connections.append(c)
        qm = QueueManager(Queries(AsyncpgDriver(c)))

        @qm.entrypoint("noop")
        async def noop(job: Any) -> None:
            return None

        @qm.entrypoint("send")
        async def send(job: Any) -> None:
            nonlocal failed
            assert session is not None and send_url is not None
            async with session.post(send_url + "/v3.1/send", data=job.payload) as answer:
                await answer.read()
                failed += answer.status != 200

        managers.append(qm)

    began = time.perf_counter()
    runs = [
        asyncio.create_task(qm.run(batch_size=batch_size, mode=QueueExecutionMode.drain))
        for qm in managers
    ]
    _, pending = await asyncio.wait(runs, timeout=cap)
    capped = bool(pending)
    for qm in managers:
        qm.shutdown.set()
    await asyncio.gather(*runs, return_exceptions=True)
    seconds = time.perf_counter() - began
    left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
    for c in [conn, *connections]:
        await c.close()
    if session is not None:
        await session.close()
    return {"jobs": jobs - int(left), "seconds": seconds, "capped": capped, "failed": failed}


async def procrastinate(dsn: str, jobs: int, concurrency: int, cap: float) -> dict[str, Any]:
    """One procrastinate worker with `concurrency` sub-workers draining `jobs` no-ops."""
    import procrastinate as p

    app = p.App(connector=p.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, jobs, CHUNK):
            await noop.batch_defer_async(*([{}] * min(CHUNK, jobs - start)))
        began = time.perf_counter()
        worker = asyncio.create_task(
            app.run_worker_async(concurrency=concurrency, wait=False, install_signal_handlers=False)
        )
        done, _ = await asyncio.wait([worker], timeout=cap)
        capped = not done
        if capped:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        else:
            worker.result()
        seconds = time.perf_counter() - began
    conn = await asyncpg.connect(dsn)
    try:
        finished = await conn.fetchval(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
    finally:
        await conn.close()
    return {"jobs": int(finished), "seconds": seconds, "capped": capped}


def main() -> None:
    """Run one peer and print its result."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("peer", choices=["pgqueuer", "procrastinate"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=10, help="PgQueuer only")
    parser.add_argument("--send", metavar="URL", help="PgQueuer only: send to this simulator")
    parser.add_argument("--cap", type=float, default=300.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import uvloop

    if args.peer == "pgqueuer":
        run = pgqueuer(args.dsn, args.jobs, args.concurrency, args.cap, args.batch_size, args.send)
    else:
        run = procrastinate(args.dsn, args.jobs, args.concurrency, args.cap)
    result = uvloop.run(run)
    print("BENCH_JSON " + orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()

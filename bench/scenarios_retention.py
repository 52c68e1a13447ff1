"""The retention scenario: sending goes on while the workers remove an expired history.

A scaled-down form of issue #18's benchmark (10 million jobs do not fit a 2-core machine
shared with other work in a bench run): a database holds an expired history (finished
jobs from 500 days ago, each with its recipient and an event), and a backlog of new emails
is drained by one `mailer worker` through the simulator, once with retention off and once
with it on (every second, in the worker itself). Reported: emails/s of each drain, rows
retention removed, and the size of the three tables before and after.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from bench import infra
from bench.payloads import new_jobs
from bench.report import Row
from bench.stack import Bench, Simulator, wait_drained
from mailer.db.pool import connect
from mailer.delivery.enqueue import insert_jobs

SIMULATOR_LATENCY_MS = 50.0
TABLES = ("jobs", "messages", "events")

# Time-ordered ids (UUIDv7 layout) 500 days back, so that they sort before today's.
_HISTORY = """
WITH ids AS (
    SELECT g, (lpad(to_hex((extract(epoch FROM now() - interval '500 days') * 1000)::bigint + g),
                    12, '0') || '7000' || '8000' || lpad(to_hex(g), 12, '0'))::uuid AS id
    FROM generate_series(1, $2) g
), j AS (
    INSERT INTO jobs (id, app_id, message, state, created_at, updated_at, sent_at)
    SELECT id, $1, jsonb_build_object(
               'From', jsonb_build_object('Email', 'shop@example.org'),
               'To', jsonb_build_array(jsonb_build_object('Email', 'old' || g || '@example.org')),
               'Subject', 'An old order', 'TextPart', repeat('x', 200)),
           'done', now() - interval '500 days', now() - interval '500 days',
           now() - interval '500 days'
    FROM ids
    RETURNING id, message
)
INSERT INTO messages (job_id, position, app_id, kind, email, status, message_id)
SELECT id, 0, $1, 'to', message -> 'To' -> 0 ->> 'Email', 'opened', 1 FROM j;
"""

_HISTORY_EVENTS = """
INSERT INTO events (post_id, dedupe_key, type, understood, status, rank, occurred_at,
                    time_estimated, message_id, email, is_test, details, raw, app_id, job_id,
                    position, feed_xid, linked_at, received_at)
SELECT 0, sha256(convert_to(m.job_id::text, 'UTF8')), 'open', true, 'opened', 5,
       now() - interval '500 days', false, 1, m.email, false, '{}', '{}', m.app_id, m.job_id,
       0, pg_current_xact_id(), now() - interval '500 days', now() - interval '500 days'
FROM messages m;
"""


async def retention(b: Bench) -> None:
    """Drain new emails with retention off, then on, each over an expired history."""
    s = b.size
    history, sends = s.backlog_small * 10, s.delivery_jobs // 2
    results = {}
    async with b.simulator(SIMULATOR_LATENCY_MS) as sim:
        for mode in ("off", "on"):
            await sim.reset()
            results[mode] = await _drain_over_history(b, sim, history, sends, on=mode == "on")
    off, on = results["off"], results["on"]
    what = f"{sends:,} emails sent over {history:,} expired jobs"
    b.report.add(Row("retention", f"{what}, retention off", off["rate"], "emails/s"))
    b.report.add(
        Row(
            "retention",
            f"{what}, retention on",
            on["rate"],
            "emails/s",
            "retention off",
            off["rate"],
            target=">= 0.9x",
            met=on["rate"] >= 0.9 * off["rate"],
            note=f"removed {on['removed']:,} jobs in {on['removal_s']:.1f} s",
        )
    )
    for mode, result in results.items():
        b.report.add(
            Row(
                "retention",
                f"size of {', '.join(TABLES)} after, retention {mode}",
                result["after_mb"],
                "MB",
                "before",
                result["before_mb"],
            )
        )


async def _drain_over_history(
    b: Bench, sim: Simulator, history: int, sends: int, *, on: bool
) -> dict[str, float]:
    async with infra.fresh_database(b.server) as dsn:
        app_id, _ = await infra.create_app(dsn)
        conn = await connect(dsn)
        try:
            await conn.execute(_HISTORY, app_id, history)
            await conn.execute(_HISTORY_EVENTS)
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
            before = await _size_mb(conn)
            env = {"MAILER_RETENTION_INTERVAL_SECONDS": "1" if on else "0"}
            async with b.worker(dsn, sim, env=env):
                jobs = new_jobs(app_id, sends)
                began = time.perf_counter()
                await insert_jobs(conn, jobs)
                drained = await wait_drained(dsn, timeout=600, poll=0.1)
                removal = await _history_gone(conn, sends, began) if on else 0.0
            remaining = await conn.fetchval("SELECT count(*) FROM jobs")
            await conn.execute("VACUUM")  # as autovacuum would: freed pages become reusable
            after = await _size_mb(conn)
        finally:
            await conn.close()
    return {
        "rate": sends / (drained - began),
        "removed": history + sends - remaining,
        "removal_s": removal,
        "before_mb": before,
        "after_mb": after,
    }


async def _history_gone(conn: asyncpg.Connection, sends: int, began: float) -> float:
    """Wait until only the new jobs are left; return the seconds since `began`."""
    deadline = time.perf_counter() + 600
    while await conn.fetchval("SELECT count(*) FROM jobs") > sends:
        if time.perf_counter() > deadline:
            raise RuntimeError("retention did not remove the history within 600 s")
        await asyncio.sleep(0.2)
    return time.perf_counter() - began


async def _size_mb(conn: asyncpg.Connection) -> float:
    total = 0
    for table in TABLES:
        total += await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
    return total / 1e6

"""The retention scenario (issue #18): a table of jobs kept at its retention while sending
goes on, the send rate with retention running against without, and the database size.

One database holds a history of `retention_jobs` finished jobs (10 million at full size),
each with its recipient (made in SQL, a million per statement, foreign-key triggers off),
within the retention period (the last 399 days; time-ordered UUIDv7 ids), so retention
keeps all of them. Beside them, four bands of `retention_sends` expired jobs (500 days
old, each with its recipient and an event), held by apps whose override keeps them for
now (100 years). Then four phases, alternating off, on, off, on; each drains
`retention_sends` new emails through one `mailer worker` and the simulator, while the
phase's band expires (its app loses its override as the phase starts):

- on: retention runs every second in the worker, and removes the band while the emails
  are sent (at once, as fast as it goes: harder on sending than a steady trickle);
- off: retention is off in the worker; the band is removed once the drain is timed.

Every phase adds as many jobs as it removes, so the table stays at its retention: it ends
with as many rows as it began with, and its size should be flat (a `VACUUM` after each
phase, as autovacuum would do, makes the freed pages reusable by the next). Reported:
emails/s of each phase, the median of on over the median of off, how long each band took
to go while sending, and the sizes of the database and of `jobs`, `messages`, `events` at
the start, after the first round and at the end.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson

from bench import infra
from bench.payloads import new_jobs
from bench.report import Row
from bench.stack import Bench, Simulator
from mailer.db.pool import connect
from mailer.delivery.enqueue import insert_jobs
from mailer.lifecycle.retention import Periods, run_once

SIMULATOR_LATENCY_MS = 50.0
PHASES = ("off", "on", "off", "on")
TABLES = ("jobs", "messages", "events")
FILL_CHUNK = 1_000_000
KEEP = '{"jobs_days": 36500, "bodies_days": 36500}'

# Job `g` of a history, `$2` ms after the epoch of its first one and $3 ms apart: a
# time-ordered id (UUIDv7 layout, the time in the first 48 bits) and its creation time.
_TIME = "CROSS JOIN LATERAL (SELECT $2::bigint + (g * $3::float8)::bigint AS ms) t"
_ID = (
    "(lpad(to_hex(t.ms), 12, '0') || '7000' || '8'"
    " || lpad(to_hex($4::int), 3, '0') || lpad(to_hex(g), 12, '0'))::uuid"
)
_AT = "to_timestamp(t.ms / 1000.0)"
# One message for every job of a history (a constant, so the fill spends no time making
# it), with the size of a new email's: its recipient is in `messages`.
_MESSAGE = orjson.dumps(
    {
        "From": {"Email": "noreply@shop.example", "Name": "Shop"},
        "To": [{"Email": "old@example.org", "Name": "User"}],
        "Subject": "Your order #1000000 has shipped",
        "TextPart": "Hello User 1000000,\n\nyour order #1000000 is on its way.\n\nShop",
        "HTMLPart": "<p>Hello User 1000000,</p><p>your order <b>#1000000</b> is on its way.</p>",
    }
).decode()

# A chunk [$5, $6] of a history of app $1, done.
_FILL_JOBS = f"""
INSERT INTO jobs (id, app_id, message, state, created_at, updated_at, sent_at)
SELECT {_ID}, $1, '{_MESSAGE}'::jsonb, 'done', {_AT}, {_AT}, {_AT}
FROM generate_series($5::int, $6::int) g {_TIME}
"""
_FILL_MESSAGES = f"""
INSERT INTO messages (job_id, position, app_id, kind, email, status, message_id)
SELECT {_ID}, 0, $1, 'to', 'old' || g || '@example.org', 'opened', $4::bigint << 40 | g
FROM generate_series($5::int, $6::int) g {_TIME}
"""
_FILL_EVENTS = f"""
INSERT INTO events (post_id, dedupe_key, type, understood, status, rank, occurred_at,
                    time_estimated, message_id, email, is_test, details, raw, app_id, job_id,
                    position, feed_xid, linked_at, received_at)
SELECT 0, sha256(convert_to({_ID}::text, 'UTF8')), 'open', true, 'opened', 5, {_AT}, false,
       $4::bigint << 40 | g, 'old' || g || '@example.org', false, '{{}}', '{{}}', $1, {_ID}, 0,
       pg_current_xact_id(), {_AT}, {_AT}
FROM generate_series($5::int, $6::int) g {_TIME}
"""


async def retention(b: Bench) -> None:
    """Four drains over a history at its retention: off, on, off, on."""
    s = b.size
    # MAILER_BENCH_RETENTION_JOBS: another history size, to try one between smoke and full.
    history = int(os.environ.get("MAILER_BENCH_RETENTION_JOBS", s.retention_jobs))
    sends = s.retention_sends
    band = sends
    rates: dict[str, list[float]] = {"off": [], "on": []}
    removal: list[float] = []
    async with b.simulator(SIMULATOR_LATENCY_MS) as sim, infra.fresh_database(b.server) as dsn:
        app_id, _ = await infra.create_app(dsn, "shop")
        conn = await connect(dsn)
        try:
            began = time.perf_counter()
            bands = await _fill(conn, app_id, history, band, len(PHASES))
            fill_s = time.perf_counter() - began
            start = await _sizes(conn)
            start_rows = await conn.fetchval("SELECT count(*) FROM jobs")
            for phase, mode in enumerate(PHASES):
                await sim.reset()
                running = mode == "on"
                rate, gone_s = await _phase(b, sim, dsn, conn, app_id, sends, bands[phase], running)
                rates[mode].append(rate)
                if gone_s is not None:
                    removal.append(gone_s)
                else:  # the same removal, once the drain is timed: the table stays level
                    await run_once(conn, Periods(), now=datetime.now(UTC))
                await conn.execute("VACUUM")  # as autovacuum would: freed pages reusable
                if phase == 1:
                    settled = await _sizes(conn)  # one round (off, on) in: the steady state
            end = await _sizes(conn)
            end_rows = await conn.fetchval("SELECT count(*) FROM jobs")
        finally:
            await conn.close()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    what = f"{sends:,} emails sent over {history:,} jobs at their retention"
    listed = ", ".join(f"{r:,.0f}" for r in rates["off"])
    b.report.add(
        Row("retention", f"{what}, retention off", off, "emails/s", note=f"runs: {listed}")
    )
    b.report.add(
        Row(
            "retention",
            f"{what}, retention on (removing {band:,} expired jobs meanwhile)",
            on,
            "emails/s",
            "retention off",
            off,
            target=">= 0.9x",
            met=on >= 0.9 * off,
            note="runs: "
            + ", ".join(f"{r:,.0f}" for r in rates["on"])
            + "; expired jobs gone in "
            + ", ".join(f"{t:.1f} s" for t in removal),
        )
    )
    b.report.add(
        Row(
            "retention",
            f"database size at the end ({end_rows:,} jobs)",
            end["database"],
            "MB",
            f"at the start ({start_rows:,} jobs)",
            start["database"],
            target="<= 1.05x",
            met=end["database"] <= 1.05 * start["database"],
            note=f"history filled in {fill_s:.0f} s",
        )
    )
    # The first round grows the files by what it inserts before any page is freed; from
    # then on the inserts reuse the pages the removals free.
    b.report.add(
        Row(
            "retention",
            "database size at the end",
            end["database"],
            "MB",
            "after the first off and on",
            settled["database"],
            target="<= 1.05x",
            met=end["database"] <= 1.05 * settled["database"],
        )
    )
    b.report.add(
        Row(
            "retention",
            f"size of {', '.join(TABLES)} at the end",
            end["tables"],
            "MB",
            "at the start",
            start["tables"],
            target="<= 1.05x",
            met=end["tables"] <= 1.05 * start["tables"],
        )
    )


async def _fill(
    conn: asyncpg.Connection, app_id: uuid.UUID, history: int, band: int, bands: int
) -> list[uuid.UUID]:
    """The history of `app_id` within its retention, and `bands` expired bands held by
    apps that keep them for now; return those apps' ids."""
    # The sending app keeps bodies as long as jobs: the scenario is about whole jobs going.
    await conn.execute(
        "UPDATE apps SET retention = '{\"bodies_days\": 400}'::jsonb WHERE id = $1", app_id
    )
    await conn.execute("SET session_replication_role = replica")  # no FK triggers
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    # The history over the last 399 days, the newest one day ago.
    first = now_ms - 399 * day_ms
    step = (398 * day_ms) / max(history, 1)
    await _chunks(conn, (_FILL_JOBS, _FILL_MESSAGES), app_id, first, step, 1, history)
    held = []
    for number in range(2, bands + 2):
        band_app: uuid.UUID = await conn.fetchval(
            "INSERT INTO apps (id, name, retention) "
            "VALUES (gen_random_uuid(), $1, $2::text::jsonb) RETURNING id",
            f"expiring-{number}",
            KEEP,
        )
        start = now_ms - 500 * day_ms + number * day_ms
        await _chunks(
            conn, (_FILL_JOBS, _FILL_MESSAGES, _FILL_EVENTS), band_app, start, 1.0, number, band
        )
        held.append(band_app)
    await conn.execute("RESET session_replication_role")
    await conn.execute("VACUUM ANALYZE")
    await conn.execute("CHECKPOINT")
    return held


async def _chunks(
    conn: asyncpg.Connection,
    statements: tuple[str, ...],
    app_id: uuid.UUID,
    first_ms: int,
    step_ms: float,
    series: int,
    count: int,
) -> None:
    for low in range(1, count + 1, FILL_CHUNK):
        high = min(low + FILL_CHUNK - 1, count)
        for statement in statements:
            await conn.execute(statement, app_id, first_ms, step_ms, series, low, high)


async def _phase(
    b: Bench,
    sim: Simulator,
    dsn: str,
    conn: asyncpg.Connection,
    app_id: uuid.UUID,
    sends: int,
    expiring: uuid.UUID,
    on: bool,
) -> tuple[float, float | None]:
    """One drain of `sends` new emails, as `expiring`'s jobs expire; retention on or off in
    the worker. Return emails/s and (on) the seconds until the expired jobs were gone."""
    env = {"MAILER_RETENTION_INTERVAL_SECONDS": "1" if on else "0"}
    async with b.worker(dsn, sim, env=env):
        jobs = new_jobs(app_id, sends, run=str(expiring))
        began = time.perf_counter()
        await conn.execute("UPDATE apps SET retention = NULL WHERE id = $1", expiring)
        await insert_jobs(conn, jobs)
        drained = await _drained(conn)
        gone = await _band_gone(conn, expiring, began) if on else None
    return sends / (drained - began), gone


async def _drained(conn: asyncpg.Connection) -> float:
    """Wait until no job is queued or being sent (each probe through its partial index,
    not a count over the whole table); return the time (perf_counter) it was seen."""
    deadline = time.perf_counter() + 600
    while await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued') "
        "OR EXISTS (SELECT 1 FROM jobs WHERE state = 'sending')"
    ):
        if time.perf_counter() > deadline:
            raise RuntimeError("the backlog was not drained within 600 s")
        await asyncio.sleep(0.1)
    return time.perf_counter()


async def _band_gone(conn: asyncpg.Connection, app_id: uuid.UUID, began: float) -> float:
    """Wait until the app's expired jobs are gone; return the seconds since `began`."""
    deadline = time.perf_counter() + 600
    while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE app_id = $1)", app_id):
        if time.perf_counter() > deadline:
            raise RuntimeError("retention did not remove the expired jobs within 600 s")
        await asyncio.sleep(0.2)
    return time.perf_counter() - began


async def _sizes(conn: asyncpg.Connection) -> dict[str, float]:
    tables = 0
    for table in TABLES:
        tables += await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
    database = await conn.fetchval("SELECT pg_database_size(current_database())")
    return {"tables": tables / 1e6, "database": database / 1e6}

"""`jobs`: `GET /jobs` pages at 10 million jobs, against the same pages at a small size.

The jobs are made in SQL (generate_series, a million per statement, foreign-key triggers
off for the load), spread over 30 days with UUIDv7 ids from their creation time as the API
makes them, with one recipient each, tags on a third, an idempotency key on a tenth, and
the statuses of a service that has run a while: most sent or opened, some bounced, failed,
scheduled or canceled. A second app holds a tenth of the rows, so that every page is
scoped. Each page is read with the code the route calls (`job_search.list_jobs`).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import infra
from bench.report import Row
from bench.stack import Bench
from mailer.db.pool import create_pool
from mailer.delivery.job_search import JobFilters, encode_cursor, list_jobs

_CHUNK = 1_000_000
_SPAN = timedelta(days=30)

# Jobs $5..$6 of app $1 (every tenth of app $2); job i created at $3 + i * $4 seconds.
_JOBS = """
INSERT INTO jobs (id, app_id, state, message, metadata, tags, idempotency_key, run_at,
                  created_at, updated_at, sent_at, attempts)
SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::int8), 12, '0') || '7000'
        || '8' || lpad(to_hex(i), 15, '0'))::uuid,
       CASE WHEN i % 10 = 0 THEN $2::uuid ELSE $1::uuid END,
       CASE WHEN i % 100 = 1 THEN 'queued' WHEN i % 100 = 2 THEN 'canceled'
            WHEN i % 100 < 6 THEN 'failed' ELSE 'done' END,
       jsonb_build_object('Subject', 'Order #' || i),
       jsonb_build_object('order', i),
       CASE WHEN i % 100000 = 7 THEN ARRAY['rare', 't' || i % 20]
            WHEN i % 3 = 0 THEN ARRAY['t' || i % 20] END,
       CASE WHEN i % 10 = 3 THEN 'key-' || i END,
       t.at, t.at, t.at,
       CASE WHEN i % 100 >= 6 THEN t.at END,
       1
FROM generate_series($5::int8, $6::int8) AS i
CROSS JOIN LATERAL (SELECT $3::timestamptz + i * make_interval(secs => $4)) AS t(at);
"""

_MESSAGES = """
INSERT INTO messages (job_id, position, app_id, kind, email, status)
SELECT j.id, 0, j.app_id, 'to',
       CASE WHEN n % 100 = 51 THEN 'ops@example.org'
            ELSE 'user' || n % 500000 || '@example.org' END,
       CASE j.state WHEN 'queued' THEN 'queued' WHEN 'canceled' THEN 'queued'
            WHEN 'failed' THEN 'failed'
            ELSE (ARRAY['sent', 'opened', 'sent', 'clicked', 'sent', 'opened', 'sent',
                        'sent', 'opened', 'bounced'])[n % 10 + 1] END
FROM (SELECT id, app_id, state, (metadata ->> 'order')::int8 AS n
      FROM jobs WHERE id >= $1 AND id < $2) AS j;
"""

_TAGS = """
INSERT INTO job_tags (app_id, tag, job_id)
SELECT app_id, unnest(tags), id FROM jobs WHERE tags IS NOT NULL AND id >= $1 AND id < $2;
"""


async def _load(dsn: str, count: int) -> tuple[uuid.UUID, datetime]:
    """`count` jobs over the last 30 days; the main app's id and the first job's time."""
    app_id, _ = await infra.create_app(dsn, "bench")
    other_id, _ = await infra.create_app(dsn, "other")
    start = datetime.now(UTC) - _SPAN
    step = _SPAN.total_seconds() / count
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        for lo in range(1, count + 1, _CHUNK):
            hi = min(lo + _CHUNK - 1, count)
            await conn.execute(_JOBS, app_id, other_id, start, step, lo, hi)
            bounds = [_id_at(start + timedelta(seconds=x * step)) for x in (lo, hi + 1)]
            await conn.execute(_MESSAGES, *bounds)
            await conn.execute(_TAGS, *bounds)
        for table in ("jobs", "messages", "job_tags"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return app_id, start


def _id_at(when: datetime) -> uuid.UUID:
    return uuid.UUID(int=int(when.timestamp() * 1000) << 80)


def _pages(start: datetime) -> list[tuple[str, JobFilters, bool, bool]]:
    """(what, filters, from the middle of the list, finds jobs): the pages timed."""
    day = start + timedelta(days=15)
    day_end = day + timedelta(days=1)
    return [
        ("newest", JobFilters(), False, True),
        ("from the middle (cursor)", JobFilters(), True, True),
        ("recipient (~20 jobs)", JobFilters(recipient="User123@example.org"), False, True),
        ("recipient (1% of jobs)", JobFilters(recipient="ops@example.org"), True, True),
        ("tag (1 in 60 jobs)", JobFilters(tag="t3"), True, True),
        ("tag (1 in 100,000 jobs)", JobFilters(tag="rare"), False, True),
        ("status=queued (1%)", JobFilters(status="queued"), True, True),
        ("status=canceled (1%)", JobFilters(status="canceled"), False, True),
        ("status=sent", JobFilters(status="sent"), True, True),
        ("status=bounced (~10% of sent)", JobFilters(status="bounced"), True, True),
        ("status=blocked (none: a scan budget)", JobFilters(status="blocked"), True, False),
        (
            "recipient 1% and tag (none)",
            JobFilters(recipient="ops@example.org", tag="t4"),
            True,
            False,
        ),
        ("one day, 2 weeks ago", JobFilters(created_from=day, created_to=day_end), False, True),
        (
            "tag t3, one day",
            JobFilters(tag="t3", created_from=day, created_to=day_end),
            False,
            True,
        ),
        ("idempotency key", JobFilters(idempotency_key="key-1003"), False, True),
    ]


async def _time_pages(
    dsn: str, app_id: uuid.UUID, start: datetime, runs: int
) -> tuple[list[float], list[int]]:
    """Median milliseconds of each page of `_pages` (20 jobs a page), and its job count."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    medians = []
    counts = []
    try:
        middle = encode_cursor(_id_at(start + _SPAN / 2))
        for _, filters, from_middle, _ in _pages(start):
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                page = await list_jobs(pool, app_id, filters, after=middle if from_middle else None)
                times.append(time.perf_counter() - began)
            medians.append(sorted(times)[len(times) // 2] * 1000)
            counts.append(len(page.jobs))
    finally:
        await pool.close()
    return medians, counts


async def jobs(b: Bench) -> None:
    """Filtered `GET /jobs` pages with many jobs against the same pages with few."""
    s = b.size
    async with (
        infra.fresh_database(b.server) as small_dsn,
        infra.fresh_database(b.server) as large_dsn,
    ):
        began = time.perf_counter()
        large_app, large_start = await _load(large_dsn, s.jobs_large)
        b.report.note(f"jobs: {s.jobs_large:,} jobs loaded in {time.perf_counter() - began:.0f} s")
        small_app, small_start = await _load(small_dsn, s.jobs_small)
        small, _ = await _time_pages(small_dsn, small_app, small_start, s.page_runs)
        large, found = await _time_pages(large_dsn, large_app, large_start, s.page_runs)
    pages = _pages(large_start)
    for (what, _, _, matches), few, many, count in zip(pages, small, large, found, strict=True):
        expected = "jobs" if matches else "none"
        b.report.check(f"jobs: {what} finds {expected}", (count > 0) == matches)
        b.report.add(
            Row(
                "jobs",
                f"page of 20, {what}, {s.jobs_large:,} jobs (median)",
                many,
                "ms",
                f"{s.jobs_small:,} jobs",
                few,
                target="< 50 ms",
                met=many < 50,
            )
        )

"""The dashboard's pages on a small and a large database: each page over HTTP from
`mailer api`, logged in as an operator, the median time per page (issue 17: < 300 ms).

Both databases hold finished jobs spread over the last 30 days (ids are UUIDv7 of their
creation time, as the service makes them), one recipient each, in three apps, with every
hundredth address suppressed. The requests alternate between the two, so that a slow phase
of the machine weighs on both sizes alike.
"""

from __future__ import annotations

import re
import statistics
import time

import aiohttp
import asyncpg

from bench import infra
from bench.report import Row
from bench.stack import Bench
from mailer.dashboard.operators import Role, add_operator
from mailer.db.pool import connect

TARGET_MS = 300.0
ADDRESSES = 50_000  # distinct recipients: each gets jobs / ADDRESSES messages

_JOBS = """
WITH spread AS (
    SELECT i, now() - make_interval(secs => 30 * 86400 * (1 - i::float8 / $2)) AS t
    FROM generate_series(1, $2) AS i
)
INSERT INTO jobs (id, app_id, state, message, metadata, created_at, updated_at, sent_at,
                  run_at, attempts, idempotency_key)
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7000'
        || '8' || lpad(to_hex(i), 15, '0'))::uuid,
       ($1::uuid[])[1 + i % cardinality($1::uuid[])],
       'done',
       jsonb_build_object(
           'From', jsonb_build_object('Email', 'noreply@shop.example'),
           'To', jsonb_build_array(jsonb_build_object('Email', 'user' || i % $3 || '@example.org')),
           'Subject', 'Your order #' || i, 'TextPart', 'Hello'),
       jsonb_build_object('order', i), t, t, t, t, 1, 'order-' || i
FROM spread;
"""

_MESSAGES = """
INSERT INTO messages (job_id, position, app_id, kind, email, status, message_id, updated_at)
SELECT id, 0, app_id, 'to', message -> 'To' -> 0 ->> 'Email',
       (ARRAY['sent', 'opened', 'clicked', 'sent', 'opened', 'sent', 'sent', 'bounced',
              'blocked', 'failed'])[1 + (metadata ->> 'order')::int % 10],
       (metadata ->> 'order')::bigint, updated_at
FROM jobs;
"""

_SUPPRESSIONS = """
INSERT INTO suppressions (app_id, email, reason)
SELECT DISTINCT app_id, email, 'hard_bounce' FROM messages WHERE status = 'bounced'
ON CONFLICT DO NOTHING;
"""

# The Queue page's backlog: every 50th job waits, scheduled an hour ahead (2 % of the
# table, 20,000 of 1,000,000), and as many more failed; the audit log holds one entry per
# 10 jobs, by three operators, for the Audit page.
_QUEUED = """
UPDATE jobs SET state = 'queued', run_at = now() + interval '1 hour', sent_at = NULL
WHERE (metadata ->> 'order')::int % 50 = 0;
UPDATE jobs SET state = 'failed', sent_at = NULL WHERE (metadata ->> 'order')::int % 50 = 1;
"""

_AUDIT = """
INSERT INTO audit_log (at, app_id, actor, action, target, source)
SELECT now() - make_interval(secs => i), ($1::uuid[])[1 + i % cardinality($1::uuid[])],
       'operator:' || (ARRAY['ann', 'bob', 'cy'])[1 + i % 3],
       (ARRAY['job.canceled', 'app.paused', 'suppression.removed', 'operator.login'])[1 + i % 4],
       i::text, '127.0.0.1'
FROM generate_series(1, $2) AS i;
"""

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _build(dsn: str, jobs: int) -> tuple[str, str, str]:
    """Fill the database; return an operator's password, one job id and an app's id."""
    apps = [(await infra.create_app(dsn, name))[0] for name in ("shop", "blog", "billing")]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_JOBS, apps, jobs, ADDRESSES)
        await conn.execute(_MESSAGES)
        await conn.execute(_SUPPRESSIONS)
        await conn.execute(_QUEUED)
        await conn.execute(_AUDIT, apps, jobs // 10)
        for table in ("jobs", "messages", "suppressions", "audit_log"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        await conn.execute("CHECKPOINT")  # see scenarios_queue._build_backlog
        job_id = str(await conn.fetchval("SELECT id FROM jobs ORDER BY id DESC LIMIT 1"))
        app_id = str(apps[0])
    finally:
        await conn.close()
    own = await connect(dsn)
    try:
        added = await add_operator(own, "bench", Role.ADMIN)  # admin: the bulk count page
    finally:
        await own.close()
    assert added is not None
    return added[1], job_id, app_id


async def _log_in(http: aiohttp.ClientSession, base: str, password: str) -> None:
    async with http.get(f"{base}/dashboard/login") as page:
        found = _CSRF.search(await page.text())
    assert found is not None
    form = {"csrf": found.group(1), "name": "bench", "password": password}
    async with http.post(f"{base}/dashboard/login", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()


def _pages(job_id: str, app_id: str) -> dict[str, str]:
    return {
        "overview, 24 h": "/dashboard?period=24h",
        "overview, 30 d": "/dashboard?period=30d",
        "messages, latest": "/dashboard/messages",
        "messages to one recipient": "/dashboard/messages?recipient=user4242%40example.org",
        "messages, bounced only": "/dashboard/messages?status=bounced",
        "messages, a status none has": "/dashboard/messages?status=deferred",
        "one message": f"/dashboard/messages/{job_id}",
        "suppressions by prefix": "/dashboard/suppressions?q=user12",
        "mailjet": "/dashboard/mailjet",
        "queue": "/dashboard/queue",
        "bulk cancel, count": f"/dashboard/queue/bulk?action=cancel&app={app_id}",
        "bulk retry, count": f"/dashboard/queue/bulk?action=retry&app={app_id}",
        "audit, latest": "/dashboard/audit",
        "audit, one operator": "/dashboard/audit?actor=operator%3Abob",
        "audit, one app and action": f"/dashboard/audit?app={app_id}&action=app.paused",
    }


async def dashboard(b: Bench) -> None:
    """Median time of each dashboard page, small against large database."""
    s = b.size
    async with (
        infra.fresh_database(b.server) as small_dsn,
        infra.fresh_database(b.server) as large_dsn,
    ):
        small_password, small_job, small_app = await _build(small_dsn, s.backlog_small)
        large_password, large_job, large_app = await _build(large_dsn, s.backlog_large)
        async with (
            b.api(small_dsn, workers=1) as small_api,
            b.api(large_dsn, workers=1) as large_api,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as small_http,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as large_http,
        ):
            sides = [
                (small_http, f"http://127.0.0.1:{small_api.port}", _pages(small_job, small_app)),
                (large_http, f"http://127.0.0.1:{large_api.port}", _pages(large_job, large_app)),
            ]
            await _log_in(small_http, sides[0][1], small_password)
            await _log_in(large_http, sides[1][1], large_password)
            for name in sides[0][2]:
                small, large = await _time_page(sides, name, s.claims)
                _report(b, name, small, large)


async def _time_page(
    sides: list[tuple[aiohttp.ClientSession, str, dict[str, str]]], name: str, rounds: int
) -> list[float]:
    times: list[list[float]] = [[] for _ in sides]
    for turn in range(rounds + 2):
        for index, (http, base, pages) in enumerate(sides):
            began = time.perf_counter()
            async with http.get(base + pages[name], allow_redirects=False) as answer:
                await answer.read()
                assert answer.status == 200, (name, answer.status)
            if turn >= 2:  # the first two warm the caches and the prepared statements
                times[index].append(time.perf_counter() - began)
    return [statistics.median(t) for t in times]


def _report(b: Bench, name: str, small: float, large: float) -> None:
    s = b.size
    b.report.add(
        Row(
            "dashboard",
            f"{name}, {s.backlog_large:,} jobs (median)",
            large * 1000,
            "ms",
            f"{s.backlog_small:,} jobs",
            small * 1000,
            target=f"<= {TARGET_MS:.0f} ms",
            met=large * 1000 <= TARGET_MS,
        )
    )

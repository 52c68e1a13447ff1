"""The dashboard's pages on a small and a large database: each page over HTTP from
`mailer api`, logged in as an operator, the median time per page (issue 17: < 300 ms with
10 million jobs).

Both databases hold finished jobs spread over the last 30 days (ids are UUIDv7 of their
creation time, as the service makes them), one recipient each, in three apps, with every
hundredth address suppressed; the stats rollups of those jobs per app and hour (what the
send path writes); and for every tenth job a webhook delivery to its app's endpoint with
one attempt (one in twenty failed; one app's endpoint disabled). They are made in SQL, a
million jobs per statement, foreign-key triggers off for the load. The requests alternate
between the two sizes, so that a slow phase of the machine weighs on both alike.
"""

from __future__ import annotations

import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from bench import infra
from bench.report import Row
from bench.stack import Bench
from mailer.dashboard.operators import Role, add_operator
from mailer.db.pool import connect

TARGET_MS = 300.0
ADDRESSES = 50_000  # distinct recipients: each gets jobs / ADDRESSES messages
_CHUNK = 1_000_000
_SPAN = timedelta(days=30)

# Jobs $3..$4 over the apps $1, job i created at $5 + i * $6 seconds.
_JOBS = """
INSERT INTO jobs (id, app_id, state, message, metadata, created_at, updated_at, sent_at,
                  run_at, attempts, idempotency_key)
SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::int8), 12, '0') || '7000'
        || '8' || lpad(to_hex(i), 15, '0'))::uuid,
       ($1::uuid[])[1 + i % cardinality($1::uuid[])],
       'done',
       jsonb_build_object(
           'From', jsonb_build_object('Email', 'noreply@shop.example'),
           'To', jsonb_build_array(jsonb_build_object('Email', 'user' || i % $2 || '@example.org')),
           'Subject', 'Your order #' || i, 'TextPart', 'Hello'),
       jsonb_build_object('order', i), t.at, t.at, t.at, t.at, 1, 'order-' || i
FROM generate_series($3::int8, $4::int8) AS i
CROSS JOIN LATERAL (SELECT $5::timestamptz + i * make_interval(secs => $6)) AS t(at);
"""

_MESSAGES = """
INSERT INTO messages (job_id, position, app_id, kind, email, status, message_id, updated_at)
SELECT id, 0, app_id, 'to', message -> 'To' -> 0 ->> 'Email',
       (ARRAY['sent', 'opened', 'clicked', 'sent', 'opened', 'sent', 'sent', 'bounced',
              'blocked', 'failed'])[1 + (metadata ->> 'order')::int % 10],
       (metadata ->> 'order')::bigint, updated_at
FROM jobs WHERE id >= $1 AND id < $2;
"""

# Every tenth job's webhook delivery (event ids as the message page finds a recipient's
# own events: evt_failed_<job>_<position>) with its one attempt.
_WEBHOOKS = """
WITH made AS (
    INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_id, event_type, body,
                                    state, attempts, next_attempt_at, created_at,
                                    finished_at, last_status)
    SELECT gen_random_uuid(), w.id, j.app_id, 'evt_failed_' || j.id || '_0', 'email.sent',
           '{}', CASE WHEN (j.metadata ->> 'order')::int8 % 200 = 0 THEN 'failed'
                      ELSE 'delivered' END,
           1, j.created_at, j.created_at, j.created_at,
           CASE WHEN (j.metadata ->> 'order')::int8 % 200 = 0 THEN 500 ELSE 200 END
    FROM jobs j JOIN webhook_endpoints w ON w.app_id = j.app_id
    WHERE j.id >= $1 AND j.id < $2 AND (j.metadata ->> 'order')::int8 % 10 = 0
    RETURNING id, endpoint_id, event_id, last_status, created_at
)
INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, status_code,
                              duration_ms, created_at)
SELECT id, endpoint_id, event_id, 1, last_status, 12, created_at FROM made ORDER BY created_at;
"""

_ENDPOINTS = """
INSERT INTO webhook_endpoints (id, app_id, url, secret, enabled, disabled_reason, disabled_at)
SELECT gen_random_uuid(), app_id, 'https://hooks.example/' || app_id, 'sealed-bench',
       n > 1, CASE WHEN n = 1 THEN 'the endpoint answered 410 Gone' END,
       CASE WHEN n = 1 THEN now() END
FROM unnest($1::uuid[]) WITH ORDINALITY AS a(app_id, n);
"""

# The rollups of the jobs: per app and hour, what the send path and the events write.
_ROLLUPS = """
INSERT INTO stats_hourly (app_id, tag, hour, shard, accepted, sent, delivered, bounced_hard,
                          blocked, opened, opened_unique, clicked, clicked_unique)
SELECT app_id, '', date_trunc('hour', updated_at, 'UTC'), 0, count(*),
       count(*) FILTER (WHERE status <> 'failed'),
       count(*) FILTER (WHERE status IN ('sent', 'opened', 'clicked')),
       count(*) FILTER (WHERE status = 'bounced'),
       count(*) FILTER (WHERE status = 'blocked'),
       count(*) FILTER (WHERE status IN ('opened', 'clicked')),
       count(*) FILTER (WHERE status IN ('opened', 'clicked')),
       count(*) FILTER (WHERE status = 'clicked'),
       count(*) FILTER (WHERE status = 'clicked')
FROM messages
GROUP BY 1, 3;
"""

_SUPPRESSIONS = """
INSERT INTO suppressions (app_id, email, reason)
SELECT DISTINCT app_id, email, 'hard_bounce' FROM messages WHERE status = 'bounced'
ON CONFLICT DO NOTHING;
"""

# The Queue page's backlog: every 50th job waits, scheduled an hour ahead (2 % of the
# table), and as many more failed; the audit log holds one entry per 10 jobs, by three
# operators, for the Audit page.
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


def _id_at(when: datetime) -> uuid.UUID:
    return uuid.UUID(int=int(when.timestamp() * 1000) << 80)


async def _build(dsn: str, jobs: int) -> tuple[str, str, str, str]:
    """Fill the database; return an operator's password, the newest job's id and an
    enabled endpoint's id."""
    apps = [(await infra.create_app(dsn, name))[0] for name in ("shop", "blog", "billing")]
    start = datetime.now(UTC) - _SPAN
    step = _SPAN.total_seconds() / jobs
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.execute(_ENDPOINTS, apps)
        for lo in range(1, jobs + 1, _CHUNK):
            hi = min(lo + _CHUNK - 1, jobs)
            await conn.execute(_JOBS, apps, ADDRESSES, lo, hi, start, step)
            bounds = [_id_at(start + timedelta(seconds=x * step)) for x in (lo, hi + 1)]
            await conn.execute(_MESSAGES, *bounds)
            await conn.execute(_WEBHOOKS, *bounds)
        await conn.execute(_ROLLUPS)
        await conn.execute(_SUPPRESSIONS)
        await conn.execute(_QUEUED)
        await conn.execute(_AUDIT, apps, jobs // 10)
        tables = ("jobs", "messages", "suppressions", "stats_hourly", "audit_log")
        for table in (*tables, "webhook_deliveries", "webhook_attempts"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        await conn.execute("CHECKPOINT")  # see scenarios_queue._build_backlog
        job_id = str(await conn.fetchval("SELECT id FROM jobs ORDER BY id DESC LIMIT 1"))
        endpoint_id = str(
            await conn.fetchval("SELECT id FROM webhook_endpoints WHERE enabled LIMIT 1")
        )
    finally:
        await conn.close()
    own = await connect(dsn)
    try:
        added = await add_operator(own, "bench", Role.ADMIN)  # admin: the bulk count pages
    finally:
        await own.close()
    assert added is not None
    return added[1], job_id, endpoint_id, str(apps[0])


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _url_of(api: infra.Proc) -> str:
    return f"http://127.0.0.1:{api.port}"


async def _log_in(http: aiohttp.ClientSession, base: str, password: str) -> None:
    async with http.get(f"{base}/dashboard/login") as page:
        found = _CSRF.search(await page.text())
    assert found is not None
    form = {"csrf": found.group(1), "name": "bench", "password": password}
    async with http.post(f"{base}/dashboard/login", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()


def _pages(job_id: str, endpoint_id: str, app_id: str) -> dict[str, str]:
    return {
        "overview, 24 h": "/dashboard?period=24h",
        "overview, 30 d": "/dashboard?period=30d",
        "overview, 90 d": "/dashboard?period=90d",
        "messages, latest": "/dashboard/messages",
        "messages to one recipient": "/dashboard/messages?recipient=user4242%40example.org",
        "messages, bounced only": "/dashboard/messages?status=bounced",
        "messages, a status none has": "/dashboard/messages?status=deferred",
        "one message (events, webhook deliveries)": f"/dashboard/messages/{job_id}",
        "webhooks, delivery log": "/dashboard/webhooks",
        "webhooks, failed only (1 in 20)": "/dashboard/webhooks?outcome=failed",
        "webhooks, one endpoint": f"/dashboard/webhooks?endpoint={endpoint_id}",
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
        began = time.perf_counter()
        small_password, small_job, small_endpoint, small_app = await _build(small_dsn, s.jobs_small)
        large_password, large_job, large_endpoint, large_app = await _build(large_dsn, s.jobs_large)
        b.report.note(
            f"dashboard: {s.jobs_small:,} and {s.jobs_large:,} jobs loaded in "
            f"{time.perf_counter() - began:.0f} s"
        )
        # The API refuses to start without it once webhook endpoints exist (their secrets
        # are sealed with it; the bench's are placeholders that nothing opens).
        env = {"MAILER_SECRET_KEY": Fernet.generate_key().decode()}
        async with (
            b.api(small_dsn, workers=1, env=env) as small_api,
            b.api(large_dsn, workers=1, env=env) as large_api,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as small_http,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as large_http,
        ):
            sides = [
                (small_http, _url_of(small_api), _pages(small_job, small_endpoint, small_app)),
                (large_http, _url_of(large_api), _pages(large_job, large_endpoint, large_app)),
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
            f"{name}, {s.jobs_large:,} jobs (median)",
            large * 1000,
            "ms",
            f"{s.jobs_small:,} jobs",
            small * 1000,
            target=f"<= {TARGET_MS:.0f} ms",
            met=large * 1000 <= TARGET_MS,
        )
    )

"""The stats scenario: `GET /stats` for 30 days with 10 million events stored, against
counting the same 30 days from the events table, which is what the rollups spare; also
`GET /stats?tag=` of a tag that a third of the emails carry (its rollup rows beside the
total's)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bench import infra
from bench.report import Row
from bench.stack import Bench
from mailer.db.pool import connect

APPS = 10  # the measured app has half the events, nine others share the rest
DAYS = 90  # events spread over the last 90 days; the query reads the last 30

# Linked events of every type, half of them the measured app's ($1), the others spread over
# the other apps ($2), one minute apart from now backwards (tens of seconds apart at 10 M).
# Opens and clicks are human two times in three; a third of the emails are tagged `news`.
TAG = "news"
_EVENTS = """
INSERT INTO events (post_id, dedupe_key, type, understood, status, rank, occurred_at,
                    time_estimated, message_id, email, is_test, details, raw, app_id,
                    job_id, position, feed_xid, linked_at, machine_reason, tags)
SELECT 1, int8send(i), t.type, true, t.status, 0,
       now() - make_interval(secs => i * ($3::float8 * 86400 / $4)), false,
       1000000000 + i, 'r' || (i % 100000) || '@example.org', false, '{}', '{}',
       CASE WHEN i % 2 = 0 THEN $1 ELSE ($2::uuid[])[1 + (i / 2) % cardinality($2)] END,
       lpad(to_hex(i), 32, '0')::uuid, 0, '1'::xid8, now(),
       CASE WHEN t.type IN ('open', 'click') AND i % 3 = 0 THEN 'bot' END,
       CASE WHEN i % 3 = 1 THEN '{news}'::text[] END
FROM generate_series(1::int8, $4::int8) AS i
CROSS JOIN LATERAL (
    SELECT (ARRAY['sent', 'sent', 'open', 'open', 'click', 'bounce', 'bounce', 'blocked',
                  'spam', 'unsub'])[1 + i % 10] AS type
) AS k
CROSS JOIN LATERAL (
    SELECT k.type,
           CASE k.type WHEN 'bounce' THEN CASE WHEN i % 20 < 10 THEN 'bounced' ELSE 'deferred'
                                          END
                       ELSE k.type END AS status
) AS t
"""

# What applying those events would have written, per (app, tag, hour), in one pass (folded:
# shard 0): '' for all, and the tag's rows; unique opens and clicks counted as a fifth of
# all of them.
_ROLLUPS = """
INSERT INTO stats_hourly (app_id, tag, hour, shard, delivered, bounced_hard, bounced_soft,
                          blocked, complained, unsubscribed, opened, opened_unique,
                          opened_human, opened_human_unique, clicked, clicked_unique,
                          clicked_human, clicked_human_unique, accepted, sent)
SELECT app_id, tag, hour, 0, d, bh, bs, bl, sp, un, o, o / 5, oh, oh / 5, c, c / 5, ch, ch / 5,
       d + bh + bs, d + bh + bs
FROM (
    SELECT app_id, k.tag, date_trunc('hour', occurred_at, 'UTC') AS hour,
           count(*) FILTER (WHERE type = 'sent') AS d,
           count(*) FILTER (WHERE type = 'bounce' AND status = 'bounced') AS bh,
           count(*) FILTER (WHERE type = 'bounce' AND status = 'deferred') AS bs,
           count(*) FILTER (WHERE type = 'blocked') AS bl,
           count(*) FILTER (WHERE type = 'spam') AS sp,
           count(*) FILTER (WHERE type = 'unsub') AS un,
           count(*) FILTER (WHERE type = 'open') AS o,
           count(*) FILTER (WHERE type = 'open' AND machine_reason IS NULL) AS oh,
           count(*) FILTER (WHERE type = 'click') AS c,
           count(*) FILTER (WHERE type = 'click' AND machine_reason IS NULL) AS ch
    FROM events
    CROSS JOIN LATERAL unnest(array_prepend('', tags)) AS k(tag)
    GROUP BY 1, 2, 3
) AS per_hour
"""

# The last two hours not folded yet: a row per writing connection (20 here, empty).
_UNFOLDED = """
INSERT INTO stats_hourly (app_id, hour, shard)
SELECT $1, date_trunc('hour', now(), 'UTC') - make_interval(hours => h), shard
FROM generate_series(0, 1) AS h, generate_series(1, 20) AS shard
"""

# The baseline: the same 30 days counted from the events table (of the tag $4, or all).
_COUNT_EVENTS = """
SELECT date_trunc('day', occurred_at, 'UTC') AS day,
       count(*) FILTER (WHERE type = 'sent') AS delivered,
       count(*) FILTER (WHERE type = 'open') AS opened,
       count(*) FILTER (WHERE type = 'click') AS clicked
FROM events
WHERE app_id = $1 AND occurred_at >= $2 AND occurred_at < $3
  AND ($4::text IS NULL OR tags @> ARRAY[$4::text])
GROUP BY 1
"""


async def stats(b: Bench) -> None:
    """Load the events and their rollups by SQL, then time `GET /stats` for 30 days by
    the day and by the hour (median), and the same days counted from the events table."""
    s = b.size
    async with infra.fresh_database(b.server) as dsn:
        apps = [await infra.create_app(dsn, f"app{n}") for n in range(APPS)]
        (app_id, key), others = apps[0], [a for a, _ in apps[1:]]
        loaded = await _load(dsn, app_id, others, s.stats_events)
        # Whole UTC days, today the last, so both granularities cover the same hours.
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        end = today + timedelta(days=1)
        start = end - timedelta(days=30)
        async with b.api(dsn) as api, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{api.port}/stats"
            headers = {"Authorization": f"Bearer {key}"}
            by_day, day_answer = await _time_reads(
                http, url, headers, {"from": start.isoformat(), "to": end.isoformat()}, s.claims
            )
            by_hour, hour_answer = await _time_reads(
                http,
                url,
                headers,
                {"from": start.isoformat(), "to": end.isoformat(), "granularity": "hour"},
                s.claims,
            )
            by_tag, tag_answer = await _time_reads(
                http,
                url,
                headers,
                {"from": start.isoformat(), "to": end.isoformat(), "tag": TAG},
                s.claims,
            )
        counted, expected = await _count_events(dsn, app_id, start, end, None)
        counted_tagged, expected_tagged = await _count_events(dsn, app_id, start, end, TAG)
    note = f"{loaded:,} events over {DAYS} days, {APPS} apps, the measured app half of them"
    baseline = "counting the events table"
    for measure, value, answer, agreed, counting in (
        ("30 days by the day", by_day, day_answer, expected, counted),
        ("30 days by the hour", by_hour, hour_answer, expected, counted),
        (f"tag={TAG}, 30 days by the day", by_tag, tag_answer, expected_tagged, counted_tagged),
    ):
        b.report.add(
            Row(
                "stats",
                f"GET /stats, {measure} (median of {s.claims})",
                value * 1000,
                "ms",
                baseline,
                counting * 1000,
                target="< 50 ms",
                met=value < 0.050,
                note=note,
            )
        )
        total = answer["total"]
        b.report.check(
            f"stats: {measure} agrees with the events table",
            (total["delivered"], total["opened"], total["clicked"]) == agreed,
        )


async def _load(dsn: str, app_id: uuid.UUID, others: list[uuid.UUID], events: int) -> int:
    conn = await connect(dsn)
    try:
        await conn.execute(_EVENTS, app_id, others, float(DAYS), events, timeout=3600)
        await conn.execute(_ROLLUPS, timeout=3600)
        await conn.execute(_UNFOLDED, app_id)
        await conn.execute("VACUUM ANALYZE stats_hourly")
        await conn.execute("CHECKPOINT", timeout=3600)
        count: int = await conn.fetchval("SELECT count(*) FROM events", timeout=3600)
    finally:
        await conn.close()
    return count


async def _time_reads(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    params: dict[str, str],
    reads: int,
) -> tuple[float, dict[str, Any]]:
    """Median seconds of `reads` requests, and the last answer."""
    times: list[float] = []
    answer: dict[str, Any] = {}
    for _ in range(reads + 1):  # the first warms the API's caches; not counted
        began = time.perf_counter()
        async with http.get(url, params=params, headers=headers) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
        times.append(time.perf_counter() - began)
    return sorted(times[1:])[len(times[1:]) // 2], answer


async def _count_events(
    dsn: str, app_id: uuid.UUID, start: datetime, end: datetime, tag: str | None
) -> tuple[float, tuple[int, int, int]]:
    """Seconds to count the 30 days (of `tag`, or all) from the events table, and its
    totals."""
    conn = await connect(dsn)
    try:
        began = time.perf_counter()
        rows = await conn.fetch(_COUNT_EVENTS, app_id, start, end, tag, timeout=3600)
        seconds = time.perf_counter() - began
    finally:
        await conn.close()
    totals = tuple(sum(r[c] for r in rows) for c in ("delivered", "opened", "clicked"))
    return seconds, (totals[0], totals[1], totals[2])

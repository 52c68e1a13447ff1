-- Queries of the stats: reading the hourly rollups, folding closed hours. The rollups are
-- written by the statements that accept, record and apply (delivery and tracking queries).

-- name: stats_document
-- App $1's counts (tag $5, '' for all) for every period ($4: 'hour' or 'day', UTC) from
-- $2 to $3 (aligned by the caller), empty periods as zeros, and their total: one JSON
-- document, {"periods": [...], "total": {...}}, built here (stats_json, migration 0013).
WITH sums AS (
    SELECT date_trunc($4, hour, 'UTC') AS start,
           sum(accepted) AS accepted, sum(sent) AS sent, sum(delivered) AS delivered,
           sum(bounced_hard) AS bounced_hard, sum(bounced_soft) AS bounced_soft,
           sum(blocked) AS blocked, sum(complained) AS complained,
           sum(unsubscribed) AS unsubscribed, sum(opened) AS opened,
           sum(opened_unique) AS opened_unique, sum(opened_human) AS opened_human,
           sum(opened_human_unique) AS opened_human_unique, sum(clicked) AS clicked,
           sum(clicked_unique) AS clicked_unique, sum(clicked_human) AS clicked_human,
           sum(clicked_human_unique) AS clicked_human_unique
    FROM stats_hourly
    WHERE app_id = $1 AND tag = $5 AND hour >= $2 AND hour < $3
    GROUP BY 1
), periods AS (
    -- Periods counted in UTC wall time, so a day is 24 hours whatever the session's zone.
    SELECT g.start AS period, s.*
    FROM generate_series($2 AT TIME ZONE 'UTC', $3 AT TIME ZONE 'UTC' - ('1 ' || $4)::interval,
                         ('1 ' || $4)::interval) AS g(start)
    LEFT JOIN sums s ON s.start = g.start AT TIME ZONE 'UTC'
)
SELECT jsonb_build_object(
    'periods', coalesce(jsonb_agg(
        jsonb_build_object('start', to_char(p.period, 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))
        || stats_json(
            coalesce(p.accepted, 0)::int8, coalesce(p.sent, 0)::int8,
            coalesce(p.delivered, 0)::int8, coalesce(p.bounced_hard, 0)::int8,
            coalesce(p.bounced_soft, 0)::int8, coalesce(p.blocked, 0)::int8,
            coalesce(p.complained, 0)::int8, coalesce(p.unsubscribed, 0)::int8,
            coalesce(p.opened, 0)::int8, coalesce(p.opened_unique, 0)::int8,
            coalesce(p.opened_human, 0)::int8, coalesce(p.opened_human_unique, 0)::int8,
            coalesce(p.clicked, 0)::int8, coalesce(p.clicked_unique, 0)::int8,
            coalesce(p.clicked_human, 0)::int8, coalesce(p.clicked_human_unique, 0)::int8)
        ORDER BY p.period), '[]'::jsonb),
    'total', stats_json(
        coalesce(sum(p.accepted), 0)::int8, coalesce(sum(p.sent), 0)::int8,
        coalesce(sum(p.delivered), 0)::int8, coalesce(sum(p.bounced_hard), 0)::int8,
        coalesce(sum(p.bounced_soft), 0)::int8, coalesce(sum(p.blocked), 0)::int8,
        coalesce(sum(p.complained), 0)::int8, coalesce(sum(p.unsubscribed), 0)::int8,
        coalesce(sum(p.opened), 0)::int8, coalesce(sum(p.opened_unique), 0)::int8,
        coalesce(sum(p.opened_human), 0)::int8, coalesce(sum(p.opened_human_unique), 0)::int8,
        coalesce(sum(p.clicked), 0)::int8, coalesce(sum(p.clicked_unique), 0)::int8,
        coalesce(sum(p.clicked_human), 0)::int8, coalesce(sum(p.clicked_human_unique), 0)::int8)
) AS document
FROM periods p;

-- name: fold_closed_hours
-- Fold the per-connection rows of hours that closed over an hour ago into one row per
-- (app, tag, hour), shard 0, so a 30-day read sums ~720 rows per app. Rows a writer holds
-- are skipped (SKIP LOCKED: the fold never waits, so never deadlocks with a writer) and
-- folded next time; shard-0 rows are taken in key order (two folds cannot deadlock).
WITH picked AS (
    SELECT app_id, tag, hour, shard FROM stats_hourly
    WHERE shard <> 0 AND hour < date_trunc('hour', now(), 'UTC') - interval '1 hour'
    ORDER BY app_id, tag, hour, shard
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), moved AS (
    DELETE FROM stats_hourly s
    USING picked p
    WHERE (s.app_id, s.tag, s.hour, s.shard) = (p.app_id, p.tag, p.hour, p.shard)
    RETURNING s.*
)
INSERT INTO stats_hourly AS s (
    app_id, tag, hour, shard, accepted, sent, delivered, bounced_hard, bounced_soft, blocked,
    complained, unsubscribed, opened, opened_unique, opened_human, opened_human_unique,
    clicked, clicked_unique, clicked_human, clicked_human_unique
)
SELECT app_id, tag, hour, 0, sum(accepted), sum(sent), sum(delivered), sum(bounced_hard),
       sum(bounced_soft), sum(blocked), sum(complained), sum(unsubscribed), sum(opened),
       sum(opened_unique), sum(opened_human), sum(opened_human_unique), sum(clicked),
       sum(clicked_unique), sum(clicked_human), sum(clicked_human_unique)
FROM moved
GROUP BY app_id, tag, hour
ORDER BY app_id, tag, hour
ON CONFLICT (app_id, tag, hour, shard) DO UPDATE
SET accepted = s.accepted + EXCLUDED.accepted,
    sent = s.sent + EXCLUDED.sent,
    delivered = s.delivered + EXCLUDED.delivered,
    bounced_hard = s.bounced_hard + EXCLUDED.bounced_hard,
    bounced_soft = s.bounced_soft + EXCLUDED.bounced_soft,
    blocked = s.blocked + EXCLUDED.blocked,
    complained = s.complained + EXCLUDED.complained,
    unsubscribed = s.unsubscribed + EXCLUDED.unsubscribed,
    opened = s.opened + EXCLUDED.opened,
    opened_unique = s.opened_unique + EXCLUDED.opened_unique,
    opened_human = s.opened_human + EXCLUDED.opened_human,
    opened_human_unique = s.opened_human_unique + EXCLUDED.opened_human_unique,
    clicked = s.clicked + EXCLUDED.clicked,
    clicked_unique = s.clicked_unique + EXCLUDED.clicked_unique,
    clicked_human = s.clicked_human + EXCLUDED.clicked_human,
    clicked_human_unique = s.clicked_human_unique + EXCLUDED.clicked_human_unique;

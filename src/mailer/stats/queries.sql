-- Queries of the stats: reading the hourly rollups, folding closed hours. The rollups are
-- written by the statements that accept, record and apply (delivery and tracking queries).

-- name: stats_periods
-- App $1's counts per period ($4: 'hour' or 'day', UTC) with $2 <= hour < $3, tag $5 (''
-- for all); periods without any row are left out (the caller fills them with zeros).
SELECT date_trunc($4, hour, 'UTC') AS start,
       sum(accepted)::int8 AS accepted,
       sum(sent)::int8 AS sent,
       sum(delivered)::int8 AS delivered,
       sum(bounced_hard)::int8 AS bounced_hard,
       sum(bounced_soft)::int8 AS bounced_soft,
       sum(blocked)::int8 AS blocked,
       sum(complained)::int8 AS complained,
       sum(unsubscribed)::int8 AS unsubscribed,
       sum(opened)::int8 AS opened,
       sum(opened_unique)::int8 AS opened_unique,
       sum(opened_human)::int8 AS opened_human,
       sum(opened_human_unique)::int8 AS opened_human_unique,
       sum(clicked)::int8 AS clicked,
       sum(clicked_unique)::int8 AS clicked_unique,
       sum(clicked_human)::int8 AS clicked_human,
       sum(clicked_human_unique)::int8 AS clicked_human_unique
FROM stats_hourly
WHERE app_id = $1 AND tag = $5 AND hour >= $2 AND hour < $3
GROUP BY 1
ORDER BY 1;

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

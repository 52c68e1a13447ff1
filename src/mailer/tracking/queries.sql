-- Queries of tracking: event intake, linking, status application, feed, suppressions.
-- Statuses are compared by rank: $chain is STATUS_CHAIN (lowest first), so the rank of a
-- status is array_position($chain, status) - 1, the same number as STATUS_RANK in Python.

-- name: insert_events
-- Store new events (a redelivered one conflicts on its dedupe key and is skipped), each
-- linked at once to its recipient message: by MessageID, else by CustomID (our job id) and
-- address; a linked event takes its message's tags (the feed's tag filter, the stats). Ids are drawn in the order given (event time, then body order), rows are
-- inserted in dedupe-key order (concurrent writers of overlapping bodies then take the
-- unique index's locks in one order: no deadlock). The inserted rows come back; those
-- without job_id wait for their message.
-- The body itself is stored by the same statement: $1 items, $2 bytes, $3 arrival time
-- (the time given to events without one, so reprocessing reproduces it); unless $21 names
-- the post stored already (a large body's events come in several chunks).
WITH post AS (
    INSERT INTO event_posts (event_count, body, received_at)
    SELECT $1, $2, $3 WHERE $22::int8 IS NULL
    RETURNING id
),
numbered AS (
    -- A CTE with nextval() is materialised: ids follow the sorted subquery's order.
    SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id, i.*
    FROM (
        SELECT *
        FROM unnest($4::bytea[], $5::text[], $6::bool[], $7::text[], $8::int2[],
                    $9::timestamptz[], $10::bool[], $11::int8[], $12::text[], $13::text[],
                    $14::text[], $15::uuid[], $16::text[], $17::bool[], $18::text[],
                    $19::jsonb[], $20::jsonb[], $21::text[])
             WITH ORDINALITY
             AS u(dedupe_key, type, understood, status, rank, occurred_at, time_estimated,
                  message_id, message_uuid, email, custom_id, custom_job_id, payload,
                  is_test, suppress_reason, details, raw, machine_reason, ord)
        ORDER BY ord
    ) i
)
INSERT INTO events (
    id, post_id, dedupe_key, type, understood, status, rank, occurred_at, time_estimated,
    message_id, message_uuid, email, custom_id, custom_job_id, payload, is_test,
    suppress_reason, details, raw, machine_reason, app_id, job_id, position, tags, feed_xid,
    linked_at
)
OVERRIDING SYSTEM VALUE
SELECT u.id, coalesce($22::int8, (SELECT id FROM post)), u.dedupe_key, u.type, u.understood, u.status, u.rank,
       u.occurred_at, u.time_estimated, u.message_id, u.message_uuid, u.email, u.custom_id,
       u.custom_job_id, u.payload, u.is_test, u.suppress_reason, u.details, u.raw,
       u.machine_reason, t.app_id, t.job_id, t.position, t.tags,
       CASE WHEN t.job_id IS NOT NULL THEN pg_current_xact_id() END,
       CASE WHEN t.job_id IS NOT NULL THEN now() END
FROM numbered u
LEFT JOIN LATERAL (
    (SELECT m.app_id, m.job_id, m.position, m.tags FROM messages m
     WHERE u.message_id <> 0 AND m.message_id = u.message_id
     LIMIT 1)
    UNION ALL
    (SELECT m.app_id, m.job_id, m.position, m.tags FROM messages m
     WHERE m.job_id = u.custom_job_id AND m.email = u.email
     LIMIT 1)
    LIMIT 1
) t ON true
-- The same event rebuilt by a backfill earlier (migration 0010): not stored again.
WHERE NOT EXISTS (
    SELECT 1 FROM events b
    WHERE b.raw ? 'mailer_backfill' AND b.message_id = u.message_id AND b.type = u.type
      AND b.occurred_at = u.occurred_at AND u.message_id <> 0
)
ORDER BY u.dedupe_key
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, message_id, job_id, position, rank, suppress_reason, type, app_id;

-- name: engagement_context
-- For the messages a body about to be stored has opens or clicks of (one event's
-- MessageID, CustomID and address each, $1 numbering them), the recipient message (found
-- like insert_events links: MessageID, else CustomID and address) and what timing
-- classification needs of it (tracking/timing.py): its
-- earliest stored `sent` event, the time Mailer recorded Mailjet's acceptance of its job,
-- and its stored clicks. Every lookup is an index probe (messages by MessageID or by
-- primary key, events by events_message); a message has a handful of events.
WITH k AS (
    SELECT u.ord, t.job_id, t.position
    FROM unnest($1::int4[], $2::int8[], $3::uuid[], $4::text[])
         AS u(ord, message_id, custom_job_id, email)
    CROSS JOIN LATERAL (
        (SELECT m.job_id, m.position FROM messages m
         WHERE u.message_id <> 0 AND m.message_id = u.message_id
         LIMIT 1)
        UNION ALL
        (SELECT m.job_id, m.position FROM messages m
         WHERE m.job_id = u.custom_job_id AND m.email = u.email
         LIMIT 1)
        LIMIT 1
    ) t
),
msg AS (
    SELECT DISTINCT job_id, position FROM k
),
ctx AS (
    SELECT msg.job_id, msg.position, s.sent_at, j.sent_at AS accepted_at, c.urls, c.times
    FROM msg
    LEFT JOIN jobs j ON j.id = msg.job_id
    CROSS JOIN LATERAL (
        SELECT min(e.occurred_at) AS sent_at FROM events e
        WHERE e.job_id = msg.job_id AND e.position = msg.position AND e.type = 'sent'
    ) s
    CROSS JOIN LATERAL (
        SELECT array_agg(e.details ->> 'url') AS urls, array_agg(e.occurred_at) AS times
        FROM events e
        WHERE e.job_id = msg.job_id AND e.position = msg.position AND e.type = 'click'
    ) c
)
SELECT k.ord, k.job_id, k.position, ctx.sent_at, ctx.accepted_at,
       ctx.urls AS click_urls, ctx.times AS click_times
FROM k JOIN ctx ON ctx.job_id = k.job_id AND ctx.position = k.position;

-- name: insert_post_if_stored
-- A body all of whose events are stored already (a redelivery) is stored as received, on its
-- own: insert_events would insert, link and apply none of its events. $4: their dedupe
-- keys. Stores nothing and answers NULL when any of them is new (migration 0022).
SELECT store_post_if_stored($1, $2, $3, $4::bytea[]);

-- name: insert_post
-- A large body is stored first, on its own; its events follow in chunks (insert_events $22).
INSERT INTO event_posts (event_count, body, received_at) VALUES ($1, $2, $3) RETURNING id;

-- name: lock_message_ids
-- Serialises linking by MessageID with the writing of MessageIDs (docs/tracking.md,
-- "Linking"): writers take the bucket shared, inserters of pending events exclusive.
SELECT lock_message_id_buckets($1::int8[], false);

-- name: lock_message_ids_exclusive
SELECT lock_message_id_buckets($1::int8[], true);

-- name: link_events
-- Retry linking these pending events (by MessageID, else CustomID and address), after the
-- MessageID buckets are locked, or after reprocessing changed what they carry.
WITH found AS (
    SELECT DISTINCT ON (c.id) c.id, c.app_id, c.job_id, c.position, c.tags
    FROM (
        SELECT e.id, m.app_id, m.job_id, m.position, m.tags, 0 AS pref
        FROM events e JOIN messages m ON m.message_id = e.message_id
        WHERE e.id = ANY($1::int8[]) AND e.job_id IS NULL AND e.message_id <> 0
        UNION ALL
        SELECT e.id, m.app_id, m.job_id, m.position, m.tags, 1 AS pref
        FROM events e JOIN messages m ON m.job_id = e.custom_job_id AND m.email = e.email
        WHERE e.id = ANY($1::int8[]) AND e.job_id IS NULL
    ) c
    ORDER BY c.id, c.pref, c.job_id, c.position
)
UPDATE events e
SET app_id = f.app_id, job_id = f.job_id, position = f.position, tags = f.tags,
    feed_xid = pg_current_xact_id(), linked_at = now()
FROM found f
WHERE e.id = f.id AND e.job_id IS NULL
RETURNING e.id, e.message_id, e.job_id, e.position, e.rank, e.suppress_reason, e.type,
          e.app_id;

-- name: link_pending_events
-- Link the events that waited for these messages (their send results were just recorded,
-- or an event just gave them their MessageID): by MessageID, or CustomID and address.
WITH m AS (
    SELECT m.app_id, m.job_id, m.position, m.email, m.message_id, m.tags
    FROM messages m
    JOIN unnest($1::uuid[], $2::int2[]) AS k(job_id, position)
      ON m.job_id = k.job_id AND m.position = k.position
),
found AS (
    SELECT DISTINCT ON (c.id) c.id, c.app_id, c.job_id, c.position, c.tags
    FROM (
        SELECT e.id, m.app_id, m.job_id, m.position, m.tags, 0 AS pref
        FROM m JOIN events e
          ON e.message_id = m.message_id AND e.job_id IS NULL AND e.message_id <> 0
        UNION ALL
        SELECT e.id, m.app_id, m.job_id, m.position, m.tags, 1 AS pref
        FROM m JOIN events e
          ON e.custom_job_id = m.job_id AND e.email = m.email AND e.job_id IS NULL
             AND e.custom_job_id IS NOT NULL
    ) c
    ORDER BY c.id, c.pref
)
UPDATE events e
SET app_id = f.app_id, job_id = f.job_id, position = f.position, tags = f.tags,
    feed_xid = pg_current_xact_id(), linked_at = now()
FROM found f
WHERE e.id = f.id AND e.job_id IS NULL
RETURNING e.id, e.message_id, e.job_id, e.position, e.rank, e.suppress_reason, e.type,
          e.app_id;

-- name: apply_events
-- Apply linked events to their messages: the status moves to the highest rank seen (never
-- back), a message without a MessageID takes the event's, a recipient's first open and
-- click (all, and human only) are noted once, and suppressing events put the message's
-- address on its app's suppression list. Rows are locked in key order so that concurrent
-- posts cannot deadlock. The hourly stats count the events ($8: unless they were applied
-- before, as reprocessing re-applies them) and the first opens and clicks, in this
-- connection's own row (no waiting on a shared counter), under '' and each tag of the
-- event's job (the event's and message's copy of them: no lookup of the job). Returns the messages that just
-- got their MessageID, then one row (job_id NULL) per address newly suppressed, with its
-- reason.
WITH ev AS (
    SELECT u.*, e.app_id, e.type, e.status, e.occurred_at, e.machine_reason IS NULL AS human,
           e.tags
    FROM unnest($1::int8[], $2::uuid[], $3::int2[], $4::int2[], $5::int8[], $6::text[])
        AS u(id, job_id, position, rank, message_id, suppress_reason)
    JOIN events e ON e.id = u.id
),
per_message AS (
    SELECT job_id, position, max(rank) AS rank, max(NULLIF(message_id, 0)) AS message_id,
           min(occurred_at) FILTER (WHERE type = 'open') AS opened_at,
           min(occurred_at) FILTER (WHERE type = 'open' AND human) AS human_opened_at,
           min(occurred_at) FILTER (WHERE type = 'click') AS clicked_at,
           min(occurred_at) FILTER (WHERE type = 'click' AND human) AS human_clicked_at
    FROM ev
    GROUP BY job_id, position
),
locked AS (
    SELECT m.job_id, m.position, m.app_id, p.rank, p.message_id,
           (m.message_id IS NULL AND p.message_id IS NOT NULL) AS fills_id,
           p.opened_at, p.human_opened_at, p.clicked_at, p.human_clicked_at,
           (m.first_opened_at IS NULL AND p.opened_at IS NOT NULL) AS first_open,
           (m.first_human_opened_at IS NULL AND p.human_opened_at IS NOT NULL)
               AS first_human_open,
           (m.first_clicked_at IS NULL AND p.clicked_at IS NOT NULL) AS first_click,
           (m.first_human_clicked_at IS NULL AND p.human_clicked_at IS NOT NULL)
               AS first_human_click
    FROM messages m
    JOIN per_message p ON m.job_id = p.job_id AND m.position = p.position
    WHERE coalesce(array_position($7::text[], m.status) - 1, 0) < p.rank
       OR (m.message_id IS NULL AND p.message_id IS NOT NULL)
       OR (m.first_opened_at IS NULL AND p.opened_at IS NOT NULL)
       OR (m.first_human_opened_at IS NULL AND p.human_opened_at IS NOT NULL)
       OR (m.first_clicked_at IS NULL AND p.clicked_at IS NOT NULL)
       OR (m.first_human_clicked_at IS NULL AND p.human_clicked_at IS NOT NULL)
    ORDER BY m.job_id, m.position
    FOR NO KEY UPDATE OF m
),
updated AS (
    UPDATE messages m
    SET status = CASE
            WHEN coalesce(array_position($7::text[], m.status) - 1, 0) < l.rank
            THEN ($7::text[])[l.rank + 1]
            ELSE m.status
        END,
        message_id = coalesce(m.message_id, l.message_id),
        first_opened_at = coalesce(m.first_opened_at, l.opened_at),
        first_human_opened_at = coalesce(m.first_human_opened_at, l.human_opened_at),
        first_clicked_at = coalesce(m.first_clicked_at, l.clicked_at),
        first_human_clicked_at = coalesce(m.first_human_clicked_at, l.human_clicked_at),
        updated_at = now()
    FROM locked l
    WHERE m.job_id = l.job_id AND m.position = l.position
    RETURNING m.job_id, m.position, m.message_id, l.fills_id, l.app_id, m.tags,
              l.opened_at, l.human_opened_at, l.clicked_at, l.human_clicked_at,
              l.first_open, l.first_human_open, l.first_click, l.first_human_click
),
suppressed AS (
    INSERT INTO suppressions (app_id, email, reason, event_id)
    SELECT DISTINCT ON (m.app_id, m.email) m.app_id, m.email, ev.suppress_reason, ev.id
    FROM ev
    JOIN messages m ON m.job_id = ev.job_id AND m.position = ev.position
    WHERE ev.suppress_reason IS NOT NULL
    ORDER BY m.app_id, m.email, ev.id
    ON CONFLICT (app_id, email) DO UPDATE
        SET reason = EXCLUDED.reason, event_id = EXCLUDED.event_id, created_at = now(),
            expires_at = NULL
        WHERE suppressions.expires_at <= now()  -- an expired entry is replaced
    RETURNING reason
),
tallies AS (
    -- One row per thing counted: (app, when, what, tags).
    SELECT ev.app_id, ev.occurred_at AS at, t.metric, ev.tags
    FROM ev
    CROSS JOIN LATERAL (VALUES
        (CASE ev.type
            WHEN 'sent' THEN 'delivered'
            WHEN 'bounce' THEN CASE WHEN ev.status = 'bounced' THEN 'bounced_hard'
                                    ELSE 'bounced_soft' END
            WHEN 'blocked' THEN 'blocked'
            WHEN 'spam' THEN 'complained'
            WHEN 'unsub' THEN 'unsubscribed'
            WHEN 'open' THEN 'opened'
            WHEN 'click' THEN 'clicked'
        END),
        (CASE WHEN ev.human AND ev.type = 'open' THEN 'opened_human'
              WHEN ev.human AND ev.type = 'click' THEN 'clicked_human' END)
    ) AS t(metric)
    WHERE $8::boolean AND t.metric IS NOT NULL
    UNION ALL
    SELECT u.app_id, f.at, f.metric, u.tags
    FROM updated u
    CROSS JOIN LATERAL (VALUES
        (u.first_open, u.opened_at, 'opened_unique'),
        (u.first_human_open, u.human_opened_at, 'opened_human_unique'),
        (u.first_click, u.clicked_at, 'clicked_unique'),
        (u.first_human_click, u.human_clicked_at, 'clicked_human_unique')
    ) AS f(first, at, metric)
    WHERE f.first
),
counted AS (
    INSERT INTO stats_hourly AS s (
        app_id, tag, hour, shard, delivered, bounced_hard, bounced_soft, blocked, complained,
        unsubscribed, opened, opened_unique, opened_human, opened_human_unique, clicked,
        clicked_unique, clicked_human, clicked_human_unique
    )
    SELECT app_id, k.tag, date_trunc('hour', at, 'UTC'), pg_backend_pid(),
           count(*) FILTER (WHERE metric = 'delivered'),
           count(*) FILTER (WHERE metric = 'bounced_hard'),
           count(*) FILTER (WHERE metric = 'bounced_soft'),
           count(*) FILTER (WHERE metric = 'blocked'),
           count(*) FILTER (WHERE metric = 'complained'),
           count(*) FILTER (WHERE metric = 'unsubscribed'),
           count(*) FILTER (WHERE metric = 'opened'),
           count(*) FILTER (WHERE metric = 'opened_unique'),
           count(*) FILTER (WHERE metric = 'opened_human'),
           count(*) FILTER (WHERE metric = 'opened_human_unique'),
           count(*) FILTER (WHERE metric = 'clicked'),
           count(*) FILTER (WHERE metric = 'clicked_unique'),
           count(*) FILTER (WHERE metric = 'clicked_human'),
           count(*) FILTER (WHERE metric = 'clicked_human_unique')
    FROM tallies
    CROSS JOIN LATERAL unnest(array_prepend('', tallies.tags)) AS k(tag)
    GROUP BY 1, 2, 3
    ON CONFLICT (app_id, tag, hour, shard) DO UPDATE
    SET delivered = s.delivered + EXCLUDED.delivered,
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
        clicked_human_unique = s.clicked_human_unique + EXCLUDED.clicked_human_unique
)
SELECT job_id, position, message_id, NULL::text AS suppressed FROM updated WHERE fills_id
UNION ALL
SELECT NULL, NULL, NULL, reason FROM suppressed;

-- name: job_events
-- A job's linked events, for its status document: per recipient, in time order.
SELECT id, job_id, position, type, status, occurred_at, message_id, email, is_test, details,
       machine_reason
FROM events
WHERE job_id = $1
ORDER BY position, occurred_at, rank NULLS FIRST, id;

-- name: feed_page
-- One page of an app's feed in (feed_xid, id) order, after the cursor. Only events whose
-- linking transaction is older than every transaction still running are served: no event
-- can later appear before them, so a cursor never skips one (docs/tracking.md).
SELECT e.id, e.feed_xid::text AS feed_xid, e.type, e.status, e.occurred_at, e.message_id,
       e.email, e.is_test, e.details, e.machine_reason, e.job_id, j.metadata, j.tags
FROM events e
JOIN jobs j ON j.id = e.job_id
WHERE e.app_id = $1
  AND (e.feed_xid, e.id) > ($2::text::xid8, $3::int8)
  AND e.feed_xid < pg_snapshot_xmin(pg_current_snapshot())
  AND ($4::text[] IS NULL OR e.status = ANY($4::text[]))  -- the types' statuses
  AND ($5::timestamptz IS NULL OR e.occurred_at >= $5)
  AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
ORDER BY e.feed_xid, e.id
LIMIT $7;

-- name: feed_page_tagged
-- `feed_page` of the events of jobs with tag $8 (the event's copy of its job's tags, set when
-- it was linked), found through `events_by_tag` (GIN, migration 0017) when the tag is rare
-- rather than by walking the app's whole feed; a statement of its own so that no generic
-- plan has to serve both (`@>`, not `= ANY`: the form the index serves).
SELECT e.id, e.feed_xid::text AS feed_xid, e.type, e.status, e.occurred_at, e.message_id,
       e.email, e.is_test, e.details, e.machine_reason, e.job_id, j.metadata, j.tags
FROM events e
JOIN jobs j ON j.id = e.job_id
WHERE e.app_id = $1
  AND e.tags @> ARRAY[$8::text]
  AND (e.feed_xid, e.id) > ($2::text::xid8, $3::int8)
  AND e.feed_xid < pg_snapshot_xmin(pg_current_snapshot())
  AND ($4::text[] IS NULL OR e.status = ANY($4::text[]))  -- the types' statuses
  AND ($5::timestamptz IS NULL OR e.occurred_at >= $5)
  AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
ORDER BY e.feed_xid, e.id
LIMIT $7;

-- name: list_suppressions
-- The app's entries in force (an expired one no longer counts), by address.
SELECT email, reason, event_id, created_at, expires_at
FROM suppressions
WHERE app_id = $1 AND email > $2 AND (expires_at IS NULL OR expires_at > now())
ORDER BY email
LIMIT $3;

-- name: add_suppression
-- Returns the row and whether it is new: an entry in force keeps its reason; an expired
-- one is replaced. $4: when the new entry expires (NULL: never).
WITH inserted AS (
    INSERT INTO suppressions (app_id, email, reason, expires_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (app_id, email) DO UPDATE
        SET reason = EXCLUDED.reason, event_id = NULL, created_at = now(),
            expires_at = EXCLUDED.expires_at
        WHERE suppressions.expires_at <= now()
    RETURNING email, reason, event_id, created_at, expires_at
)
SELECT email, reason, event_id, created_at, expires_at, true AS created FROM inserted
UNION ALL
SELECT email, reason, event_id, created_at, expires_at, false FROM suppressions
WHERE app_id = $1 AND email = $2 AND NOT EXISTS (SELECT 1 FROM inserted);

-- name: set_change_context
-- Why and by whom suppressions change in this transaction (read by the history trigger,
-- migration 0010).
SELECT set_config('mailer.suppression_reason', $1, true), set_config('mailer.actor', $2, true);

-- name: delete_suppression
-- Reactivate an address: only an entry in force counts (an expired one changed nothing).
DELETE FROM suppressions
WHERE app_id = $1 AND email = $2 AND (expires_at IS NULL OR expires_at > now())
RETURNING email;

-- name: current_suppression
SELECT email, reason, event_id, created_at, expires_at,
       (expires_at IS NULL OR expires_at > now()) AS in_force
FROM suppressions
WHERE app_id = $1 AND email = $2;

-- name: suppression_history
-- Every change of an address's entry, oldest first (the latest $3).
SELECT * FROM (
    SELECT id, action, reason, event_id, expires_at, actor, at
    FROM suppression_history
    WHERE app_id = $1 AND email = $2
    ORDER BY id DESC
    LIMIT $3
) latest
ORDER BY id;

-- name: delete_erased_suppression
-- A suppression kept as the keyed hash $2 of an erased address (migration 0011).
DELETE FROM erased_suppressions WHERE app_id = $1 AND address_hash = $2 RETURNING app_id;

-- name: posts_after
-- Reprocessing reads the stored bodies in arrival order, a batch at a time.
SELECT id, received_at, body FROM event_posts WHERE id > $1 ORDER BY id LIMIT $2;

-- name: reparse_events
-- Rewrite what a fixed parser derives from events already stored (identity, link and feed
-- position stay), and insert those it had not stored. Returns what changed.
WITH u AS (
    SELECT * FROM unnest($2::bytea[], $3::text[], $4::bool[], $5::text[], $6::int2[],
                         $7::timestamptz[], $8::bool[], $9::int8[], $10::text[], $11::text[],
                         $12::text[], $13::uuid[], $14::text[], $15::bool[], $16::text[],
                         $17::jsonb[], $18::jsonb[], $19::text[])
        AS u(dedupe_key, type, understood, status, rank, occurred_at, time_estimated,
             message_id, message_uuid, email, custom_id, custom_job_id, payload, is_test,
             suppress_reason, details, raw, machine_reason)
)
INSERT INTO events AS e (
    post_id, dedupe_key, type, understood, status, rank, occurred_at, time_estimated,
    message_id, message_uuid, email, custom_id, custom_job_id, payload, is_test,
    suppress_reason, details, raw, machine_reason
)
SELECT $1, u.dedupe_key, u.type, u.understood, u.status, u.rank, u.occurred_at,
       u.time_estimated, u.message_id, u.message_uuid, u.email, u.custom_id, u.custom_job_id,
       u.payload, u.is_test, u.suppress_reason, u.details, u.raw, u.machine_reason
FROM u
ORDER BY u.dedupe_key
ON CONFLICT (dedupe_key) DO UPDATE
SET type = excluded.type, understood = excluded.understood, status = excluded.status,
    rank = excluded.rank, occurred_at = excluded.occurred_at,
    time_estimated = excluded.time_estimated, message_id = excluded.message_id,
    message_uuid = excluded.message_uuid, email = excluded.email,
    custom_id = excluded.custom_id, custom_job_id = excluded.custom_job_id,
    payload = excluded.payload, is_test = excluded.is_test,
    suppress_reason = excluded.suppress_reason, details = excluded.details,
    machine_reason = excluded.machine_reason
WHERE (e.type, e.understood, e.status, e.rank, e.occurred_at, e.time_estimated,
       e.message_id, e.message_uuid, e.email, e.custom_id, e.custom_job_id, e.payload,
       e.is_test, e.suppress_reason, e.details, e.machine_reason)
      IS DISTINCT FROM
      (excluded.type, excluded.understood, excluded.status, excluded.rank,
       excluded.occurred_at, excluded.time_estimated, excluded.message_id,
       excluded.message_uuid, excluded.email, excluded.custom_id, excluded.custom_job_id,
       excluded.payload, excluded.is_test, excluded.suppress_reason, excluded.details,
       excluded.machine_reason)
RETURNING e.id, e.job_id, e.position, e.message_id, (e.xmax = 0) AS inserted;

-- name: recompute_statuses
-- Re-derive these messages' statuses from scratch: our own verdict (queued, suppressed,
-- failed or accepted), raised by the highest-ranked linked event. A status above `accepted`
-- came from events, so the verdict under it is inferred: `failed` if Mailjet's error is
-- kept, else `accepted`. $4 is the rank of `accepted`.
WITH k AS (
    SELECT DISTINCT job_id, position FROM unnest($1::uuid[], $2::int2[]) AS k(job_id, position)
),
derived AS (
    SELECT m.job_id, m.position, m.status AS current,
           CASE
               WHEN coalesce(array_position($3::text[], m.status) - 1, 0) <= $4 THEN m.status
               WHEN m.error IS NOT NULL THEN 'failed'
               ELSE 'accepted'
           END AS own,
           (SELECT max(e.rank) FROM events e
            WHERE e.job_id = m.job_id AND e.position = m.position) AS event_rank
    FROM messages m
    JOIN k ON m.job_id = k.job_id AND m.position = k.position
),
target AS (
    SELECT job_id, position,
           CASE
               WHEN event_rank > coalesce(array_position($3::text[], own) - 1, 0)
               THEN ($3::text[])[event_rank + 1]
               ELSE own
           END AS status
    FROM derived
)
UPDATE messages m
SET status = t.status, updated_at = now()
FROM target t
WHERE m.job_id = t.job_id AND m.position = t.position AND m.status <> t.status
RETURNING m.job_id, m.position;

-- name: drop_unwarranted_suppressions
-- Suppressions made by these events, which (reparsed) no longer suppress, are removed,
-- unless another event of the app still suppresses the address. Manual ones stay.
WITH dropped AS (
    DELETE FROM suppressions s
    USING events e
    WHERE s.event_id = e.id AND e.id = ANY($1::int8[]) AND e.suppress_reason IS NULL
    RETURNING s.app_id, s.email
),
still AS (
    INSERT INTO suppressions (app_id, email, reason, event_id)
    SELECT DISTINCT ON (d.app_id, d.email) d.app_id, d.email, e.suppress_reason, e.id
    FROM dropped d
    JOIN messages m ON m.app_id = d.app_id AND m.email = d.email
    JOIN events e ON e.job_id = m.job_id AND e.position = m.position
    WHERE e.suppress_reason IS NOT NULL
    ORDER BY d.app_id, d.email, e.id
    ON CONFLICT (app_id, email) DO NOTHING
    RETURNING app_id, email
)
SELECT (SELECT count(*) FROM dropped) - (SELECT count(*) FROM still) AS removed;

-- name: pending_events_after
-- Unlinked events that could still find their message (reprocessing retries them all).
SELECT id, job_id, message_id FROM events
WHERE job_id IS NULL AND id > $1 AND (message_id <> 0 OR custom_job_id IS NOT NULL)
ORDER BY id
LIMIT $2;

-- name: linked_events
SELECT id, message_id, job_id, position, rank, suppress_reason, type, app_id
FROM events
WHERE id = ANY($1::int8[]) AND job_id IS NOT NULL;

-- name: stored_events
-- Tracking events (the `events` table) linked to an app, as their webhooks need them.
SELECT e.id, e.app_id, e.type, e.status, e.occurred_at, e.job_id, e.email,
       nullif(e.message_id, 0) AS message_id, e.details, e.machine_reason, j.metadata, j.tags
FROM events e
JOIN jobs j ON j.id = e.job_id
WHERE e.id = ANY ($1::bigint[]) AND e.app_id IS NOT NULL AND e.status IS NOT NULL
  -- Most apps have no endpoint: don't build payloads nobody will be sent.
  AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.app_id = e.app_id AND w.enabled);

-- name: insert_canceled_events
-- Mailer's own `canceled` event for each recipient of job $1 not sent (still queued), in
-- the events table beside Mailjet's, linked at once (no post, no MessageID); called in
-- the transaction that cancels the job, which happens once. Answers them as webhooks
-- need them.
INSERT INTO events AS e (
    post_id, dedupe_key, type, understood, status, occurred_at, time_estimated, message_id,
    email, is_test, details, raw, app_id, job_id, position, tags, feed_xid, linked_at
)
SELECT 0, sha256(convert_to('canceled:' || m.job_id || ':' || m.position, 'UTF8')),
       'canceled', true, 'canceled', now(), false, 0, m.email, false, '{}', '{}', m.app_id,
       m.job_id, m.position, m.tags, pg_current_xact_id(), now()
FROM messages m
WHERE m.job_id = $1 AND m.status = 'queued'
ORDER BY m.position
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING e.id, e.app_id, e.type, e.status, e.occurred_at, e.job_id, e.email,
          NULL::int8 AS message_id, e.details, e.machine_reason,
          (SELECT j.metadata FROM jobs j WHERE j.id = e.job_id) AS metadata,
          (SELECT j.tags FROM jobs j WHERE j.id = e.job_id) AS tags;
-- name: sender_addresses_in_use
-- The sending domains in use (`mailer mailjet doctor`): every app's configured sender
-- domains (address NULL) and the From addresses of the latest $1 jobs (a bounded backward
-- scan of the primary key: job ids are time-ordered).
SELECT DISTINCT domain, address FROM (
    SELECT lower(d) AS domain, NULL::text AS address
    FROM apps, unnest(sender_domains) AS d
    UNION ALL
    SELECT split_part(a, '@', 2), a
    FROM (SELECT lower(message->'From'->>'Email') AS a FROM jobs ORDER BY id DESC LIMIT $1) j
    WHERE a LIKE '%_@_%'
) used
ORDER BY domain, address;

-- name: backfill_messages
-- Our recipient messages for rows of Mailjet's /message list ($1 MessageIDs, $2 CustomIDs
-- that are our job ids, $3 lower-cased addresses; `ord` numbers them from 1): by
-- MessageID, else by job and address; with their status and the type and time (Unix
-- seconds) of every event they have, so a backfill skips what callbacks brought.
SELECT k.ord, t.job_id, t.position, t.status,
       coalesce(x.types, '{}') AS known_types, coalesce(x.times, '{}') AS known_times
FROM unnest($1::int8[], $2::uuid[], $3::text[]) WITH ORDINALITY AS k(message_id, job_id, email, ord)
JOIN LATERAL (
    (SELECT m.job_id, m.position, m.status FROM messages m
     WHERE m.message_id = k.message_id LIMIT 1)
    UNION ALL
    (SELECT m.job_id, m.position, m.status FROM messages m
     WHERE m.job_id = k.job_id AND m.email = k.email LIMIT 1)
    LIMIT 1
) t ON true
LEFT JOIN LATERAL (
    SELECT array_agg(e.type) AS types,
           array_agg(extract(epoch FROM e.occurred_at)::int8) AS times
    FROM events e
    WHERE e.job_id = t.job_id AND e.position = t.position AND e.type IS NOT NULL
) x ON true
ORDER BY k.ord;

-- name: backfill_resume
-- The latest unfinished backfill (of the window starting at $1, unless $1 is NULL).
SELECT id, from_ts, to_ts, next_offset, total, messages_seen, histories_fetched,
       events_stored, calls
FROM mailjet_backfills
WHERE ($1::timestamptz IS NULL OR from_ts = $1) AND finished_at IS NULL
ORDER BY id DESC
LIMIT 1;

-- name: backfill_start
INSERT INTO mailjet_backfills (from_ts, to_ts) VALUES ($1, $2)
RETURNING id, from_ts, to_ts, next_offset, total, messages_seen, histories_fetched,
          events_stored, calls;

-- name: backfill_checkpoint
-- Where a backfill stands ($8: finished).
UPDATE mailjet_backfills
SET next_offset = $2, total = $3, messages_seen = $4, histories_fetched = $5,
    events_stored = $6, calls = $7, updated_at = now(),
    finished_at = CASE WHEN $8 THEN now() END
WHERE id = $1;

-- The data lifecycle: erasure and retention, across the other parts' tables.

-- name: sealed_secret
SELECT sealed FROM sealed_secrets WHERE name = $1;

-- name: add_sealed_secret
INSERT INTO sealed_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING;

-- name: all_sealed_secrets
SELECT name, sealed FROM sealed_secrets ORDER BY name FOR UPDATE;

-- name: set_sealed_secret
UPDATE sealed_secrets SET sealed = $2 WHERE name = $1;

-- name: count_erased_suppressions
SELECT count(*) FROM erased_suppressions;

-- name: jobs_of_address
-- Every job addressed to $1 (a recipient), or naming it as a JSON string in its message or
-- metadata (From, Reply-To, headers, variables), of app $2 (null: every app).
SELECT DISTINCT job_id AS id FROM messages
WHERE email = $1 AND ($2::uuid IS NULL OR app_id = $2)
UNION
SELECT id FROM jobs
WHERE ($2::uuid IS NULL OR app_id = $2)
  AND (strpos(lower(message::text), '"' || $1 || '"') > 0
       OR strpos(lower(coalesce(metadata::text, '')), '"' || $1 || '"') > 0);

-- name: erase_events
-- The address's events (linked to app $2, or to none yet) and every event of the jobs $3.
DELETE FROM events
WHERE (email = $1 AND ($2::uuid IS NULL OR app_id = $2 OR app_id IS NULL))
   OR job_id = ANY ($3::uuid[])
RETURNING post_id;

-- name: erase_deliveries
-- Webhook deliveries (their attempts go with them) about the address or the jobs $3.
DELETE FROM webhook_deliveries
WHERE ($2::uuid IS NULL OR app_id = $2)
  AND (strpos(lower(body), '"' || $1 || '"') > 0
       OR body LIKE ANY (ARRAY(SELECT '%' || j::text || '%' FROM unnest($3::uuid[]) j)))
RETURNING id;

-- name: erase_attempt_answers
-- Attempt log entries whose answer or error (a receiver's echo) names the address.
DELETE FROM webhook_attempts a
USING webhook_endpoints w
WHERE w.id = a.endpoint_id AND ($2::uuid IS NULL OR w.app_id = $2)
  AND (strpos(lower(coalesce(a.response, '')), $1) > 0
       OR strpos(lower(coalesce(a.error, '')), $1) > 0)
RETURNING a.id;

-- name: erase_jobs
DELETE FROM jobs WHERE id = ANY ($1::uuid[]) RETURNING id;

-- name: erase_suppressions
-- The address's suppressions become keyed hashes ($3, HMAC-SHA256): still suppressed.
WITH gone AS (
    DELETE FROM suppressions
    WHERE email = $1 AND ($2::uuid IS NULL OR app_id = $2)
    RETURNING app_id, reason, created_at
), kept AS (
    INSERT INTO erased_suppressions (app_id, address_hash, reason, created_at)
    SELECT app_id, $3, reason, created_at FROM gone
    ON CONFLICT (app_id, address_hash) DO NOTHING
    RETURNING app_id
), flagged AS (
    -- The claim checks erased addresses only for apps so flagged.
    UPDATE apps SET erased_any = true
    WHERE id IN (SELECT app_id FROM gone) AND NOT erased_any
)
SELECT app_id FROM gone;

-- name: erase_suppression_history
-- The address's suppression history (migration 0010), after erase_suppressions: its delete
-- writes the last history row, which goes with the rest.
DELETE FROM suppression_history WHERE email = $1 AND ($2::uuid IS NULL OR app_id = $2);

-- name: posts_naming_address
-- Raw callback bodies that carry the address, by the events erased ($2) or by their text.
SELECT id, body FROM event_posts
WHERE id = ANY ($2::bigint[])
   OR strpos(lower(encode(body, 'escape')), '"' || $1 || '"') > 0
ORDER BY id
FOR UPDATE;

-- name: rewrite_post
UPDATE event_posts SET body = $2, event_count = $3 WHERE id = $1;

-- name: delete_post
DELETE FROM event_posts WHERE id = $1;

-- name: redact_audit
-- Audit entries about the address (suppressions added or removed by hand) keep what
-- happened, not to whom.
UPDATE audit_log SET target = 'erased address'
WHERE lower(target) = $1
RETURNING id;

-- name: app_retention
-- Each app's overrides (null: the settings' periods).
SELECT id, retention FROM apps ORDER BY id;

-- name: set_app_retention
UPDATE apps SET retention = $2 WHERE id = $1 RETURNING id;

-- name: expire_jobs
-- The app's oldest $2 jobs (by the time-ordered id); of those, the finished ones created
-- before $3 go, with their recipients (cascade) and events. Returns how many of each.
WITH head AS (
    SELECT id, state, created_at FROM jobs WHERE app_id = $1 ORDER BY id LIMIT $2
), gone AS (
    DELETE FROM jobs j USING head h
    WHERE j.id = h.id AND h.created_at < $3 AND h.state IN ('done', 'failed')
    RETURNING j.id
), events_gone AS (
    DELETE FROM events e USING gone g WHERE e.job_id = g.id RETURNING e.id
)
SELECT (SELECT count(*) FROM gone) AS jobs, (SELECT count(*) FROM events_gone) AS events;

-- name: bodies_progress
SELECT bodies_upto FROM retention_progress WHERE app_id = $1;

-- name: remove_bodies
-- The app's next $3 jobs after $2 (by id): those finished and created before $4 lose their
-- bodies and attachments. Returns the last id passed (a job not finished stops it there).
WITH head AS (
    SELECT id, state, created_at FROM jobs
    WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT $3
), blocked AS (
    SELECT id FROM head WHERE created_at >= $4 OR state NOT IN ('done', 'failed')
    ORDER BY id LIMIT 1
), passed AS (
    SELECT h.id FROM head h WHERE NOT EXISTS (SELECT 1 FROM blocked b WHERE h.id >= b.id)
), stripped AS (
    UPDATE jobs j
    SET message = j.message - 'HTMLPart' - 'TextPart' - 'Attachments' - 'InlinedAttachments',
        bodies_removed_at = now()
    FROM passed p
    WHERE j.id = p.id AND j.bodies_removed_at IS NULL
    RETURNING j.id
)
SELECT (SELECT id FROM passed ORDER BY id DESC LIMIT 1) AS upto,
       (SELECT count(*) FROM stripped) AS count;

-- name: save_bodies_progress
INSERT INTO retention_progress (app_id, bodies_upto) VALUES ($1, $2)
ON CONFLICT (app_id) DO UPDATE SET bodies_upto = excluded.bodies_upto;

-- name: expire_events_unlinked
-- Events never linked to a job (about messages Mailer does not know) received before $2,
-- $1 at a time, found through the index of events still waiting for their message.
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE job_id IS NULL AND message_id <> 0 AND received_at < $2
    LIMIT $1
)
RETURNING id;

-- name: expire_posts
-- The oldest $1 raw callback bodies; those received before $2 go.
WITH head AS (SELECT id, received_at FROM event_posts ORDER BY id LIMIT $1)
DELETE FROM event_posts p USING head h WHERE p.id = h.id AND h.received_at < $2
RETURNING p.id;

-- name: expire_attempts
-- The oldest $1 webhook attempts; those made before $2 go.
WITH head AS (SELECT id, created_at FROM webhook_attempts ORDER BY id LIMIT $1)
DELETE FROM webhook_attempts a USING head h WHERE a.id = h.id AND h.created_at < $2
RETURNING a.id;

-- name: expire_deliveries
-- Finished webhook deliveries created before $2 (their attempts go with them), $1 at a time.
DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE created_at < $2 AND state <> 'pending'
    LIMIT $1
)
RETURNING id;

-- name: retention_lock
-- One retention run at a time across every worker (released at the end of the session's use).
SELECT pg_try_advisory_lock(7315002018);

-- name: retention_unlock
SELECT pg_advisory_unlock(7315002018);

-- name: day_partitions
-- The day partitions of table $1 (<table>_pYYYYMMDD), oldest first.
SELECT c.relname AS name
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::text::regclass AND c.relname ~ ('^' || $1 || '_p[0-9]{8}$')
ORDER BY c.relname;

-- name: drop_emptied_leftover
-- Drop $1's partition $2 of the rows from before partitioning if retention emptied it.
SELECT mailer_drop_emptied_leftover($1, $2);

-- name: add_day_partition
SELECT mailer_add_day_partition($1, $2::date);

-- name: drop_day_partition
SELECT mailer_drop_day_partition($1, $2);

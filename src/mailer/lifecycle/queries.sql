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
)
INSERT INTO erased_suppressions (app_id, address_hash, reason, created_at)
SELECT app_id, $3, reason, created_at FROM gone
ON CONFLICT (app_id, address_hash) DO NOTHING
RETURNING app_id;

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

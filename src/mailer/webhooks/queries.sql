-- Queries of outbound webhooks: endpoints, the outbox, claims, results, the attempt log.

-- name: fan_out
-- One delivery per (event, enabled endpoint of its app that wants the event's type).
INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_id, event_type, body)
SELECT gen_random_uuid(), w.id, e.app_id, e.event_id, e.event_type, e.body
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS e(app_id, event_id, event_type, body)
JOIN webhook_endpoints w
  ON w.app_id = e.app_id
 AND w.enabled
 AND (w.event_types IS NULL OR e.event_type = ANY (w.event_types))
ON CONFLICT (endpoint_id, event_id) DO NOTHING;

-- name: notify
SELECT pg_notify('mailer_webhooks', '');

-- name: claim
-- Lease up to $1 due deliveries to dispatcher $3 until $2 + $4 seconds ($2 is "now"), oldest
-- due first (migration 0020: a function, so that its plan cannot sort every due delivery).
SELECT id, endpoint_id, event_id, body, attempts, manual, created_at, url, secrets
FROM claim_webhook_deliveries($1, $2, $3, $4);

-- name: next_due
SELECT min(d.next_attempt_at)
FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
WHERE d.state = 'pending' AND w.enabled;

-- name: record_attempts
-- A batch of attempts in one round trip (migration 0020): per delivery $1 its new state $2,
-- next attempt $3 (pending), time $4, status $5, error $6, answer $7, duration $8, attempt
-- number $9, endpoint $10 and event $11; only those dispatcher $12 still holds are written.
-- $13: how long only failures disable an endpoint. One row per delivery written.
SELECT delivery_id, disabled
FROM record_webhook_attempts($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                             $5::integer[], $6::text[], $7::text[], $8::integer[],
                             $9::integer[], $10::uuid[], $11::text[], $12::text,
                             make_interval(secs => $13));

-- name: release
-- A draining dispatcher gives back claims it did not start: no attempt was made.
UPDATE webhook_deliveries
SET attempts = attempts - 1, next_attempt_at = $3, locked_by = NULL
WHERE id = ANY ($1::uuid[]) AND state = 'pending' AND locked_by = $2;

-- name: insert_endpoint
INSERT INTO webhook_endpoints (id, app_id, url, description, event_types, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: list_endpoints
SELECT * FROM webhook_endpoints WHERE app_id = $1 ORDER BY created_at, id;

-- name: get_endpoint
SELECT * FROM webhook_endpoints WHERE id = $1 AND app_id = $2;

-- name: update_endpoint
-- NULL leaves a field as it is; $7 true clears the event type filter (all types).
-- Enabling clears the reason it was disabled and the run of failures.
UPDATE webhook_endpoints
SET url = coalesce($3, url),
    description = coalesce($4, description),
    event_types = CASE WHEN $7 THEN NULL ELSE coalesce($5, event_types) END,
    enabled = coalesce($6, enabled),
    disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason
                           WHEN $6 THEN NULL ELSE 'disabled by the app' END,
    disabled_at = CASE WHEN $6 IS NULL THEN disabled_at
                       WHEN $6 THEN NULL ELSE coalesce(disabled_at, now()) END,
    first_failure_at = CASE WHEN $6 THEN NULL ELSE first_failure_at END,
    updated_at = now()
WHERE id = $1 AND app_id = $2
RETURNING *;

-- name: delete_endpoint
DELETE FROM webhook_endpoints WHERE id = $1 AND app_id = $2 RETURNING id;

-- name: rotate_secret
-- The old secret keeps signing for $3 seconds.
UPDATE webhook_endpoints
SET previous_secret = secret,
    previous_expires_at = now() + make_interval(secs => $3),
    secret = $4,
    updated_at = now()
WHERE id = $1 AND app_id = $2
RETURNING *;

-- name: list_attempts
SELECT a.id, a.delivery_id, a.event_id, a.attempt, a.status_code, a.duration_ms, a.error,
       a.response, a.created_at
FROM webhook_attempts a
JOIN webhook_endpoints w ON w.id = a.endpoint_id
WHERE a.endpoint_id = $1 AND w.app_id = $2 AND ($3::bigint IS NULL OR a.id < $3)
ORDER BY a.id DESC
LIMIT $4;

-- name: resend
-- One more attempt of one delivery, now: a finished one gets a single (manual) attempt, a
-- pending one not currently claimed is brought forward on its schedule.
UPDATE webhook_deliveries d
SET state = 'pending', manual = d.manual OR d.state <> 'pending', next_attempt_at = now(),
    finished_at = NULL
FROM webhook_endpoints w
WHERE d.id = $1 AND d.endpoint_id = $2 AND w.id = d.endpoint_id AND w.app_id = $3
  AND (d.state <> 'pending' OR d.locked_by IS NULL)
RETURNING d.id;

-- name: delivery_exists
SELECT d.state FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
WHERE d.id = $1 AND d.endpoint_id = $2 AND w.app_id = $3;

-- name: recover
-- Re-queue, for one attempt each, the endpoint's deliveries that failed since $3.
UPDATE webhook_deliveries d
SET state = 'pending', manual = true, next_attempt_at = now(), finished_at = NULL,
    locked_by = NULL
FROM webhook_endpoints w
WHERE d.endpoint_id = $1 AND w.id = d.endpoint_id AND w.app_id = $2
  AND d.state = 'failed' AND d.finished_at >= $3
RETURNING d.id;

-- name: insert_test_delivery
INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_id, event_type, body, manual)
SELECT $1, w.id, w.app_id, $4, 'webhook.test', $5, true
FROM webhook_endpoints w
WHERE w.id = $2 AND w.app_id = $3
RETURNING id;

-- name: count_endpoints
SELECT count(*) FROM webhook_endpoints;

-- name: clear_endpoint_secrets
-- Secrets stored before they were sealed (clear values start with whsec_).
SELECT id, secret, previous_secret FROM webhook_endpoints
WHERE starts_with(secret, 'whsec_') OR starts_with(previous_secret, 'whsec_')
FOR UPDATE;

-- name: all_endpoint_secrets
SELECT id, secret, previous_secret FROM webhook_endpoints ORDER BY id FOR UPDATE;

-- name: set_endpoint_secrets
UPDATE webhook_endpoints SET secret = $2, previous_secret = $3 WHERE id = $1;

-- Queries of the operator dashboard: operators, sessions, failed logins, and what the pages
-- read. Operators see every app: these queries are reachable by operators only, never by
-- an app's key. Each page query is bounded (LIMIT, or an id range) and indexed.

-- name: add_operator
INSERT INTO operators (id, name, role, password_hash) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING
RETURNING id, name, role, created_at, disabled_at;

-- name: list_operators
SELECT o.id, o.name, o.role, o.created_at, o.disabled_at,
       (SELECT max(s.last_seen_at) FROM operator_sessions s WHERE s.operator_id = o.id)
           AS last_seen_at
FROM operators o
ORDER BY o.name;

-- name: remove_operator
-- Its sessions go with it (ON DELETE CASCADE).
DELETE FROM operators WHERE name = $1 RETURNING id;

-- name: disable_operator
-- No more logins, and its open sessions end now.
WITH disabled AS (
    UPDATE operators SET disabled_at = coalesce(disabled_at, now())
    WHERE name = $1
    RETURNING id
), ended AS (
    DELETE FROM operator_sessions WHERE operator_id IN (SELECT id FROM disabled)
)
SELECT id FROM disabled;

-- name: operator_for_login
SELECT id, name, role, password_hash FROM operators WHERE name = $1 AND disabled_at IS NULL;

-- name: recent_login_failures
-- Failed logins within the last $3 seconds for the name and for the address.
SELECT (SELECT count(*) FROM operator_login_failures
        WHERE name = $1 AND failed_at > now() - make_interval(secs => $3))::int AS by_name,
       (SELECT count(*) FROM operator_login_failures
        WHERE ip = $2 AND failed_at > now() - make_interval(secs => $3))::int AS by_ip;

-- name: record_login_failure
-- Also forgets the failures that no longer count ($3 seconds), so the table stays small.
WITH pruned AS (
    DELETE FROM operator_login_failures WHERE failed_at < now() - make_interval(secs => $3)
)
INSERT INTO operator_login_failures (name, ip) VALUES ($1, $2);

-- name: create_session
-- Also ends the sessions idle for longer than $5 seconds (operator_sessions_last_seen).
WITH pruned AS (
    DELETE FROM operator_sessions WHERE last_seen_at < now() - make_interval(secs => $5)
)
INSERT INTO operator_sessions (token_hash, operator_id, csrf_token, ip) VALUES ($1, $2, $3, $4);

-- name: session_for_token
-- The live session of a token hash: idle under $2 seconds, younger than $3, its operator
-- not disabled. Its last use is written at most every 30 s, not on every page.
WITH found AS (
    SELECT s.token_hash, s.csrf_token, s.last_seen_at, o.id AS operator_id, o.name, o.role
    FROM operator_sessions s
    JOIN operators o ON o.id = s.operator_id
    WHERE s.token_hash = $1
      AND o.disabled_at IS NULL
      AND s.last_seen_at > now() - make_interval(secs => $2)
      AND s.created_at > now() - make_interval(secs => $3)
), touched AS (
    UPDATE operator_sessions s SET last_seen_at = now()
    FROM found f
    WHERE s.token_hash = f.token_hash AND f.last_seen_at < now() - interval '30 seconds'
)
SELECT operator_id, name, role, csrf_token FROM found;

-- name: end_session
DELETE FROM operator_sessions WHERE token_hash = $1;

-- name: apps
SELECT id, name FROM apps ORDER BY name;

-- name: queue_depth
-- From the partial indexes jobs_due, jobs_held (a paused or rate-limited app's jobs) and
-- jobs_lease: cheap however many jobs are done.
WITH waiting AS (
    SELECT run_at FROM jobs WHERE state = 'queued' AND NOT held
    UNION ALL
    SELECT run_at FROM jobs WHERE state = 'queued' AND held
)
SELECT (SELECT count(*) FROM waiting)::int AS queued,
       (SELECT count(*) FROM waiting WHERE run_at <= now())::int AS due,
       (SELECT count(*) FROM jobs WHERE state = 'sending')::int AS sending,
       (SELECT extract(epoch FROM now() - min(run_at)) FROM waiting
        WHERE run_at <= now())::float8 AS oldest_due_seconds;

-- name: messages_to_recipient
-- Recipient messages to one address across the given apps, newest first, before the
-- cursor ($6, $7), within the job id range [$3, $4) (messages_by_app_email), of jobs
-- tagged $9 when it is given.
SELECT m.job_id, m.position, m.email, m.kind, m.status, m.updated_at,
       j.app_id, a.name AS app, j.state, j.created_at, j.message ->> 'Subject' AS subject
FROM messages m
JOIN jobs j ON j.id = m.job_id
JOIN apps a ON a.id = j.app_id
WHERE m.app_id = ANY ($1::uuid[]) AND m.email = $2
  AND m.job_id >= $3 AND m.job_id < $4
  AND ($5::text IS NULL OR m.status = $5)
  AND ($9::text IS NULL OR $9 = ANY (j.tags))
  AND (m.job_id, m.position) < ($6, $7)
ORDER BY m.job_id DESC, m.position DESC
LIMIT $8;

-- name: recent_messages
-- The latest recipient messages of the given apps, in the given status, of jobs tagged
-- $9 when given, among the $8 latest before the cursor ($5, $6) in the job id range
-- [$2, $3): a backward scan of the primary key that stops after $8 rows whatever the
-- filters keep (see scan_edge).
WITH scanned AS (
    SELECT job_id, position, app_id, email, kind, status, updated_at
    FROM messages
    WHERE job_id >= $2 AND job_id < $3 AND (job_id, position) < ($5, $6)
    ORDER BY job_id DESC, position DESC
    LIMIT $8
)
SELECT s.job_id, s.position, s.email, s.kind, s.status, s.updated_at,
       j.app_id, a.name AS app, j.state, j.created_at, j.message ->> 'Subject' AS subject
FROM scanned s
JOIN jobs j ON j.id = s.job_id
JOIN apps a ON a.id = j.app_id
WHERE s.app_id = ANY ($1::uuid[]) AND ($4::text IS NULL OR s.status = $4)
  AND ($9::text IS NULL OR $9 = ANY (j.tags))
ORDER BY s.job_id DESC, s.position DESC
LIMIT $7;

-- name: scan_edge
-- The last message recent_messages looked at when it looked at all $5 it may (else no
-- row): where the search goes on, older. The primary key alone answers it.
SELECT job_id, position
FROM messages
WHERE job_id >= $1 AND job_id < $2 AND (job_id, position) < ($3, $4)
ORDER BY job_id DESC, position DESC
OFFSET $5 - 1
LIMIT 1;

-- name: job_header
-- One job of any app, for the message page (the recipients come from delivery.job_status).
SELECT j.id, j.app_id, a.name AS app, j.idempotency_key, j.state, j.created_at,
       j.message ->> 'Subject' AS subject, j.message -> 'From' ->> 'Email' AS sender
FROM jobs j
JOIN apps a ON a.id = j.app_id
WHERE j.id = $1;

-- name: search_suppressions
-- Suppressed addresses of the given apps starting with $2 (and below $3, its successor, to
-- bound the scan of the primary key), after the cursor ($4, $5), with the event that
-- caused each.
SELECT s.app_id, a.name AS app, s.email, s.reason, s.event_id, s.created_at,
       e.type AS event_type, e.occurred_at AS event_at
FROM suppressions s
JOIN apps a ON a.id = s.app_id
LEFT JOIN events e ON e.id = s.event_id
WHERE s.app_id = ANY ($1::uuid[])
  AND s.email >= $2 AND ($3::text IS NULL OR s.email < $3) AND starts_with(s.email, $2)
  AND (s.app_id, s.email) > ($4, $5)
ORDER BY s.app_id, s.email
LIMIT $6;

-- name: message_events
-- The events kept for one job's recipients, as Mailjet posted them (events_message); a job
-- has a few per recipient, $2 bounds a pathological one.
SELECT id, position, email, type, occurred_at, received_at, understood, raw
FROM events
WHERE job_id = $1
ORDER BY position, occurred_at, id
LIMIT $2;

-- name: message_deliveries
-- The webhook deliveries of job $1's events to its app's endpoints, each with its latest
-- $2 attempts (webhook_attempts_delivery). A delivery's event id is its webhook-id: evt_<id>
-- of a stored event (events_message finds the job's), or evt_failed_<job>_<position> (and
-- _retry<n> after the app's n-th retry) or evt_suppressed_<job>_<position> for Mailer's own
-- (delivery/store.py); the unique (endpoint_id, event_id) index finds each.
WITH job AS (
    SELECT id, app_id, coalesce(jsonb_array_length(history), 0) AS retries
    FROM jobs WHERE id = $1
), ids AS (
    SELECT 'evt_' || e.id AS event_id FROM events e WHERE e.job_id = $1
    UNION ALL
    SELECT 'evt_failed_' || j.id || '_' || m.position
           || CASE WHEN r > 0 THEN '_retry' || r ELSE '' END
    FROM job j JOIN messages m ON m.job_id = j.id, generate_series(0, j.retries) AS r
    UNION ALL
    SELECT 'evt_suppressed_' || j.id || '_' || m.position
    FROM job j JOIN messages m ON m.job_id = j.id
)
SELECT d.id, d.endpoint_id, w.url, d.event_id, d.event_type, d.state, d.attempts,
       d.next_attempt_at, d.created_at, d.finished_at,
       coalesce(
           (SELECT jsonb_agg(jsonb_build_object(
                       'attempt', a.attempt, 'status_code', a.status_code,
                       'duration_ms', a.duration_ms, 'error', a.error,
                       'created_at', a.created_at) ORDER BY a.id)
            FROM (SELECT * FROM webhook_attempts
                  WHERE delivery_id = d.id ORDER BY id DESC LIMIT $2) a),
           '[]'::jsonb) AS attempt_log
FROM job j
JOIN webhook_endpoints w ON w.app_id = j.app_id
JOIN webhook_deliveries d ON d.endpoint_id = w.id
WHERE d.event_id IN (SELECT event_id FROM ids)
ORDER BY d.created_at, d.id;

-- name: webhook_endpoints
-- Every app's endpoints (never their secrets), or app $1's; few per app.
SELECT w.id, w.app_id, a.name AS app, w.url, w.description, w.event_types, w.enabled,
       w.disabled_reason, w.disabled_at, w.first_failure_at, w.created_at
FROM webhook_endpoints w
JOIN apps a ON a.id = w.app_id
WHERE $1::uuid IS NULL OR w.app_id = $1
ORDER BY a.name, w.created_at, w.id
LIMIT $2;

-- name: recent_attempts
-- The delivery log, newest first: among the $5 latest attempts before the cursor $2 to the
-- endpoints $1 (NULL: all), those of outcome $3 ('delivered': a 2xx; 'failed': anything
-- else; NULL: both), at most $4. A backward scan of the primary key that stops after $5
-- rows whatever the filters keep (see attempt_scan_edge).
WITH scanned AS (
    SELECT id, delivery_id, endpoint_id, event_id, attempt, status_code, duration_ms, error,
           created_at
    FROM webhook_attempts
    WHERE ($1::uuid[] IS NULL OR endpoint_id = ANY ($1::uuid[])) AND id < $2
    ORDER BY id DESC
    LIMIT $5
)
SELECT s.id, s.delivery_id, s.endpoint_id, w.app_id, a.name AS app, w.url, s.event_id,
       d.event_type, d.state, s.attempt, s.status_code, s.duration_ms, s.error, s.created_at
FROM scanned s
JOIN webhook_endpoints w ON w.id = s.endpoint_id
JOIN apps a ON a.id = w.app_id
JOIN webhook_deliveries d ON d.id = s.delivery_id
WHERE $3::text IS NULL
   OR ($3 = 'delivered') = coalesce(s.status_code BETWEEN 200 AND 299, false)
ORDER BY s.id DESC
LIMIT $4;

-- name: attempt_scan_edge
-- The newest attempt recent_attempts did not look at, when it looked at all $3 it may and
-- there are older ones (else no row): where the log goes on.
SELECT id FROM webhook_attempts
WHERE ($1::uuid[] IS NULL OR endpoint_id = ANY ($1::uuid[])) AND id < $2
ORDER BY id DESC
OFFSET $3
LIMIT 1;

-- name: webhook_delivery
-- One delivery of any app, for the replay confirmation (never the endpoint's secret).
SELECT d.id, d.endpoint_id, w.app_id, a.name AS app, w.url, w.enabled, d.event_id,
       d.event_type, d.state, d.attempts, d.last_status, d.last_error, d.created_at
FROM webhook_deliveries d
JOIN webhook_endpoints w ON w.id = d.endpoint_id
JOIN apps a ON a.id = w.app_id
WHERE d.id = $1;

-- name: webhook_endpoint
-- One endpoint of any app (never its secrets), for the recover confirmation.
SELECT w.id, w.app_id, a.name AS app, w.url, w.description, w.event_types, w.enabled,
       w.disabled_reason, w.disabled_at, w.first_failure_at, w.created_at
FROM webhook_endpoints w
JOIN apps a ON a.id = w.app_id
WHERE w.id = $1;
-- name: queue_by_app
-- Each app's jobs not done, by state, each count stopping at $1 (so a big backlog costs at
-- most $1 index entries per app and state): one range of jobs_by_app_state per count.
-- `state <> 'done'` lets the planner use that partial index for a state known only at run
-- time. Done jobs are not counted here (they are the bulk of the table).
SELECT a.id AS app_id, a.name AS app, s.state,
       (SELECT count(*) FROM (
            SELECT 1 FROM jobs j
            WHERE j.app_id = a.id AND j.state = s.state AND j.state <> 'done'
            LIMIT $1) AS capped)::int AS jobs
FROM apps a
CROSS JOIN unnest($2::text[]) AS s (state)
ORDER BY a.name, s.state;

-- name: queued_by_wait
-- Why each app's queued jobs wait, grouped by what decides it (delivery.job_status's
-- waiting_of): whether the job's time is ahead, and whether an attempt was made; of the
-- app's oldest $1 queued jobs (jobs_by_app_state, then each job's row: the cost is $1
-- heap reads per app, hence a sample). `first_run_at`: the group's
-- earliest; `oldest_created_at`: the app's oldest queued job's creation.
SELECT a.id AS app_id, w.ahead, w.attempted, count(*)::int AS jobs,
       min(w.run_at) AS first_run_at, min(w.created_at) AS oldest_created_at,
       now() AS now
FROM apps a
CROSS JOIN LATERAL (
    SELECT j.run_at > now() AS ahead, (j.attempts > 0 OR j.last_error IS NOT NULL) AS attempted,
           j.run_at, j.created_at
    FROM (
        -- The sample's ids from the index alone, then only their rows.
        SELECT id FROM jobs
        WHERE app_id = a.id AND state = 'queued' AND state <> 'done'
        ORDER BY id
        LIMIT $1
    ) AS s
    JOIN jobs j ON j.id = s.id
    WHERE j.state = 'queued'
) AS w
GROUP BY a.id, w.ahead, w.attempted;

-- name: limited_apps
-- The apps paused or limited (one app_limits row each; none for the others).
SELECT l.app_id, a.name AS app, l.paused_at, l.rate_per_second, l.daily_quota
FROM app_limits l
JOIN apps a ON a.id = l.app_id
ORDER BY a.name;

-- name: audit_page
-- Audit entries newest first, older than entry $4, of app $1 / actor $2 / action $3 (each
-- null: any), at most $5. The first filter given leads (audit_page_by_app, _by_actor,
-- _by_action: one range of audit_log_app, audit_log_actor, audit_log_action; else the
-- primary key), and at most $6 entries of that range are looked at per page whatever the
-- other filters keep: `scan_floor` and `scanned` say where the look stopped (one row with
-- only those when nothing matched).
WITH scanned AS MATERIALIZED (
    SELECT id, at, app_id, actor, action, target, source, details
    FROM audit_log
    WHERE id < $4
    ORDER BY id DESC
    LIMIT $6
), page AS (
    SELECT s.id, s.at, s.app_id, a.name AS app, s.actor, s.action, s.target, s.source,
           s.details
    FROM scanned s
    LEFT JOIN apps a ON a.id = s.app_id
    WHERE ($1::uuid IS NULL OR s.app_id = $1)
      AND ($2::text IS NULL OR s.actor = $2)
      AND ($3::text IS NULL OR s.action = $3)
    ORDER BY s.id DESC
    LIMIT $5
)
SELECT p.*, (SELECT min(id) FROM scanned) AS scan_floor,
       (SELECT count(*) FROM scanned)::int AS scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
ORDER BY p.id DESC;

-- name: audit_page_by_app
WITH scanned AS MATERIALIZED (
    SELECT id, at, app_id, actor, action, target, source, details
    FROM audit_log
    WHERE app_id = $1 AND id < $4
    ORDER BY id DESC
    LIMIT $6
), page AS (
    SELECT s.id, s.at, s.app_id, a.name AS app, s.actor, s.action, s.target, s.source,
           s.details
    FROM scanned s
    LEFT JOIN apps a ON a.id = s.app_id
    WHERE ($1::uuid IS NULL OR s.app_id = $1)
      AND ($2::text IS NULL OR s.actor = $2)
      AND ($3::text IS NULL OR s.action = $3)
    ORDER BY s.id DESC
    LIMIT $5
)
SELECT p.*, (SELECT min(id) FROM scanned) AS scan_floor,
       (SELECT count(*) FROM scanned)::int AS scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
ORDER BY p.id DESC;

-- name: audit_page_by_actor
WITH scanned AS MATERIALIZED (
    SELECT id, at, app_id, actor, action, target, source, details
    FROM audit_log
    WHERE actor = $2 AND id < $4
    ORDER BY id DESC
    LIMIT $6
), page AS (
    SELECT s.id, s.at, s.app_id, a.name AS app, s.actor, s.action, s.target, s.source,
           s.details
    FROM scanned s
    LEFT JOIN apps a ON a.id = s.app_id
    WHERE ($1::uuid IS NULL OR s.app_id = $1)
      AND ($2::text IS NULL OR s.actor = $2)
      AND ($3::text IS NULL OR s.action = $3)
    ORDER BY s.id DESC
    LIMIT $5
)
SELECT p.*, (SELECT min(id) FROM scanned) AS scan_floor,
       (SELECT count(*) FROM scanned)::int AS scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
ORDER BY p.id DESC;

-- name: audit_page_by_action
WITH scanned AS MATERIALIZED (
    SELECT id, at, app_id, actor, action, target, source, details
    FROM audit_log
    WHERE action = $3 AND id < $4
    ORDER BY id DESC
    LIMIT $6
), page AS (
    SELECT s.id, s.at, s.app_id, a.name AS app, s.actor, s.action, s.target, s.source,
           s.details
    FROM scanned s
    LEFT JOIN apps a ON a.id = s.app_id
    WHERE ($1::uuid IS NULL OR s.app_id = $1)
      AND ($2::text IS NULL OR s.actor = $2)
      AND ($3::text IS NULL OR s.action = $3)
    ORDER BY s.id DESC
    LIMIT $5
)
SELECT p.*, (SELECT min(id) FROM scanned) AS scan_floor,
       (SELECT count(*) FROM scanned)::int AS scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
ORDER BY p.id DESC;

-- name: bulk_jobs
-- The jobs of app $1 in queue state $2 a bulk action is for: newest first, below id $3 and
-- at or above $4 (the created range $5..$6 widened to ids), tagged $7 (null: any), at most
-- $9 of them among the $8 newest of that state (one range of jobs_by_app_state, however
-- many jobs are done; the scan stops as soon as $9 matched).
SELECT j.id
FROM (
    SELECT id FROM jobs
    WHERE app_id = $1 AND state = $2 AND state <> 'done' AND id < $3 AND id >= $4
    ORDER BY id DESC
    LIMIT $8
) AS s
JOIN jobs j ON j.id = s.id
WHERE j.state = $2
  AND ($5::timestamptz IS NULL OR j.created_at >= $5)
  AND ($6::timestamptz IS NULL OR j.created_at < $6)
  AND ($7::text IS NULL OR j.tags @> ARRAY[$7::text])
ORDER BY s.id DESC
LIMIT $9;

-- name: bulk_scan_full
-- Whether bulk_jobs' look at the newest $5 jobs of that state in the id range stopped at
-- $5 (so older jobs may match): an index-only count, bounded by $5.
SELECT count(*) >= $5 AS full
FROM (
    SELECT 1 FROM jobs
    WHERE app_id = $1 AND state = $2 AND state <> 'done' AND id < $3 AND id >= $4
    LIMIT $5
) AS s;

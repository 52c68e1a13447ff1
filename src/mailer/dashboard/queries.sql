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

-- name: period_counts
-- Recipients by app, time bucket and status, of the latest $4 recipients of the jobs
-- created in [$1, $2): one backward range scan of messages' primary key, no join. Job ids
-- are UUIDv7, so a job's creation time is its id's first 48 bits (Unix milliseconds):
-- `bucket` is the index of the $3-millisecond bucket after $5 (Unix ms) it falls in.
-- `counted` = $4 means the period had more recipients than were counted.
WITH recent AS (
    SELECT job_id, app_id, status FROM messages
    WHERE job_id >= $1 AND job_id < $2
    ORDER BY job_id DESC, position DESC
    LIMIT $4
)
SELECT app_id,
       ((('x' || encode(substring(uuid_send(job_id) FROM 1 FOR 6), 'hex'))::bit(48)::int8
         - $5) / $3)::int AS bucket,
       status,
       count(*)::int AS recipients,
       (SELECT count(*) FROM recent)::int AS counted
FROM recent
GROUP BY 1, 2, 3;

-- name: messages_to_recipient
-- Recipient messages to one address across the given apps, newest first, before the
-- cursor ($6, $7), within the job id range [$3, $4) (messages_by_app_email).
SELECT m.job_id, m.position, m.email, m.kind, m.status, m.updated_at,
       j.app_id, a.name AS app, j.state, j.created_at, j.message ->> 'Subject' AS subject
FROM messages m
JOIN jobs j ON j.id = m.job_id
JOIN apps a ON a.id = j.app_id
WHERE m.app_id = ANY ($1::uuid[]) AND m.email = $2
  AND m.job_id >= $3 AND m.job_id < $4
  AND ($5::text IS NULL OR m.status = $5)
  AND (m.job_id, m.position) < ($6, $7)
ORDER BY m.job_id DESC, m.position DESC
LIMIT $8;

-- name: recent_messages
-- The latest recipient messages of the given apps, in the given status, among the $8
-- latest before the cursor ($5, $6) in the job id range [$2, $3): a backward scan of the
-- primary key that stops after $8 rows whatever the filters keep (see scan_edge).
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

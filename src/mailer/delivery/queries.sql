-- Queries of the send path: enqueue, claim, record, retry, recover.

-- name: insert_jobs
-- Store jobs and their recipients in one statement, atomic even outside a transaction
-- block (one round trip, no BEGIN/COMMIT). $1 is a JSON array, one object per job, its
-- `recipients` an array of [kind, email] in position order; `merged` null or, per
-- position (a string), the mentions folded into that recipient; `request_hash` is hex. A job
-- whose idempotency key exists already is skipped with its recipients. If a stored job is
-- due now, NOTIFY once (the extra NULL row). Answers the stored jobs' ids.
WITH input AS (
    SELECT *
    FROM jsonb_to_recordset($1::jsonb)
         AS t(id uuid, app_id uuid, message jsonb, metadata jsonb, idempotency_key text,
              request_hash text, run_at timestamptz, recipients jsonb, merged jsonb)
), stored AS (
    INSERT INTO jobs (id, app_id, message, metadata, idempotency_key, request_hash, run_at)
    SELECT id, app_id, message, metadata, idempotency_key, decode(request_hash, 'hex'),
           coalesce(run_at, now())
    FROM input
    ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, run_at
), recipients AS (
    INSERT INTO messages (job_id, position, app_id, kind, email, merged)
    SELECT i.id, r.position - 1, i.app_id, r.recipient ->> 0, r.recipient ->> 1,
           i.merged -> (r.position - 1)::text
    FROM input i
    JOIN stored s ON s.id = i.id
    CROSS JOIN LATERAL jsonb_array_elements(i.recipients) WITH ORDINALITY
         AS r(recipient, position)
)
SELECT id FROM stored
UNION ALL
SELECT NULL FROM (
    SELECT pg_notify('mailer_jobs', '') FROM stored WHERE run_at <= now() LIMIT 1
) AS notified;

-- name: transaction_now
-- The run_at of jobs due now, stored by COPY (which cannot call now() itself).
SELECT now();

-- name: notify_jobs
SELECT pg_notify('mailer_jobs', '');

-- name: jobs_by_idempotency_key
SELECT j.id, j.app_id, j.idempotency_key, j.request_hash
FROM jobs j
JOIN unnest($1::uuid[], $2::text[]) AS k(app_id, idempotency_key)
  ON j.app_id = k.app_id AND j.idempotency_key = k.idempotency_key;

-- name: claim_jobs
-- Take up to $1 due jobs that no one holds, lease them to worker $3 for $2 seconds, oldest
-- due first, each with its recipients as arrays in position order; recipients on their
-- app's suppression list (or erased from it, as a keyed hash) are marked so now. One
-- statement: one round trip per claim.
WITH due AS (
    SELECT id FROM jobs
    WHERE state = 'queued' AND run_at <= now()
    ORDER BY run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    -- `= ANY (ARRAY(...))`, not a join: a generic plan, which takes `LIMIT $1` for a tenth
    -- of the table, would otherwise join through a scan of all jobs.
    UPDATE jobs j
    SET state = 'sending',
        attempts = j.attempts + 1,
        locked_until = now() + make_interval(secs => $2),
        locked_by = $3,
        updated_at = now()
    WHERE j.id = ANY (ARRAY(SELECT id FROM due)) AND j.state = 'queued'
    RETURNING j.id, j.app_id, j.message, j.attempts, j.created_at, j.needs_lookup, j.run_at
), suppressed AS (
    -- By ctid, and one job at a time (OFFSET 0 keeps the subquery a lookup by job_id): a
    -- plan that cannot turn into a scan of all messages, whatever the statistics say
    -- (without ANALYZE, e.g. with autovacuum off, a join here became a sequential scan).
    -- The status is checked again on the row updated, in case it changed meanwhile.
    UPDATE messages m
    SET status = 'suppressed', updated_at = now()
    WHERE m.status = 'queued' AND m.ctid = ANY (ARRAY(
        SELECT hit.ctid
        FROM claimed c
        CROSS JOIN LATERAL (
            SELECT q.ctid
            FROM messages q
            JOIN suppressions s ON s.app_id = q.app_id AND s.email = q.email
            WHERE q.job_id = c.id AND q.status = 'queued'
            UNION ALL
            -- Erased addresses, kept as HMAC-SHA256(key, address); $4/$5 are the key's
            -- inner and outer pads (null without MAILER_SECRET_KEY: the branch is skipped).
            -- The CASE keeps the HMAC (about 5 µs a recipient) to apps that erased anyone,
            -- known by a probe of `apps` (a probe of erased_suppressions by app alone may
            -- be planned as a scan of it).
            SELECT q.ctid
            FROM messages q
            WHERE q.job_id = c.id AND q.status = 'queued' AND $4::bytea IS NOT NULL
              AND CASE WHEN EXISTS (SELECT 1 FROM apps a WHERE a.id = q.app_id AND a.erased_any)
                  THEN EXISTS (
                      SELECT 1 FROM erased_suppressions e
                      WHERE e.app_id = q.app_id
                        AND e.address_hash = sha256(
                            $5::bytea || sha256($4::bytea || convert_to(q.email, 'UTF8')))
                  )
                  ELSE false END
            OFFSET 0
        ) hit
    ))
    RETURNING m.job_id, m.position
)
SELECT c.id, c.app_id, c.message, c.attempts, c.created_at, c.needs_lookup,
       r.positions, r.kinds, r.emails, r.statuses
FROM claimed c
CROSS JOIN LATERAL (
    -- The statement sees messages as they were before `suppressed`: hence the CASE.
    SELECT array_agg(m.position ORDER BY m.position) AS positions,
           array_agg(m.kind ORDER BY m.position) AS kinds,
           array_agg(m.email ORDER BY m.position) AS emails,
           array_agg(CASE WHEN x.job_id IS NULL THEN m.status ELSE 'suppressed' END
                     ORDER BY m.position) AS statuses
    FROM messages m
    LEFT JOIN suppressed x ON x.job_id = m.job_id AND x.position = m.position
    WHERE m.job_id = c.id
) r
ORDER BY c.run_at, c.id;

-- name: next_due
SELECT min(run_at) FROM jobs WHERE state = 'queued';

-- name: record_sends
-- Mailjet accepted these recipients ($1-$4) and answered for these jobs ($5-$7): one call
-- of the function that records both under the MessageIDs' bucket locks (migration 0005).
-- $8: write nothing and answer false if an unlinked event might be waiting for them.
SELECT record_sends($1::uuid[], $2::int2[], $3::int8[], $4::text[],
                    $5::uuid[], $6::text[], $7::jsonb[], $8::boolean);

-- name: record_rejected
-- These recipients will not be sent (Mailjet refused, or we gave up). Answers those that
-- were still queued, with what their `email.failed` webhook tells the app.
UPDATE messages m
SET status = 'failed', error = u.error, updated_at = now()
FROM unnest($1::uuid[], $2::int2[], $3::jsonb[]) AS u(job_id, position, error), jobs j
WHERE m.job_id = u.job_id AND m.position = u.position AND m.status = 'queued'
  AND j.id = m.job_id
RETURNING m.job_id, m.position, m.app_id, m.email, m.error, j.metadata, now() AS failed_at;

-- name: retry_jobs
-- Put jobs back in the queue for a later attempt.
UPDATE jobs j
SET state = 'queued',
    run_at = u.run_at,
    needs_lookup = j.needs_lookup OR u.outcome_unknown,
    last_error = u.error,
    locked_until = NULL,
    locked_by = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::jsonb[])
     AS u(id, run_at, outcome_unknown, error)
WHERE j.id = u.id AND j.state = 'sending' AND j.locked_by = $5;

-- name: release_jobs
-- A draining worker gives back claims it did not start: no attempt was made.
UPDATE jobs
SET state = 'queued', attempts = attempts - 1, locked_until = NULL, locked_by = NULL,
    updated_at = now()
WHERE id = ANY($1::uuid[]) AND state = 'sending' AND locked_by = $2;

-- name: recover_expired_leases
-- A worker died holding these jobs: whether Mailjet got them is unknown, so look first.
WITH expired AS (
    SELECT id FROM jobs
    WHERE state = 'sending' AND locked_until < now()
    ORDER BY locked_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET state = 'queued', needs_lookup = true, run_at = now(), locked_until = NULL,
    locked_by = NULL, updated_at = now()
FROM expired
WHERE j.id = expired.id
RETURNING j.id;

-- name: job_status
SELECT id, state, attempts, run_at, last_error, metadata, created_at, updated_at, sent_at
FROM jobs
WHERE id = $1 AND app_id = $2;

-- name: job_messages
SELECT position, kind, email, status, message_id, error, updated_at, merged
FROM messages
WHERE job_id = $1
ORDER BY position;

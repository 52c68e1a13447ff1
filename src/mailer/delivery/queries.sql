-- Queries of the send path: enqueue, claim, record, retry, recover.

-- name: insert_jobs
-- Store jobs and their recipients in one statement, atomic even outside a transaction
-- block (one round trip, no BEGIN/COMMIT). $1 is a JSON array, one object per job, its
-- `recipients` an array of [kind, email] in position order; `merged` null or, per
-- position (a string), the mentions folded into that recipient; `request_hash` is hex. A job
-- whose idempotency key exists already is skipped with its recipients. If a stored job is
-- due now, NOTIFY once (the extra NULL row). Answers the stored jobs' ids.
-- (A CTE that nothing reads, like `counted`, still runs: PostgreSQL runs every data-modifying
-- CTE to completion.)
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
), counted AS (
    -- The hourly stats' `accepted`, per recipient, in this connection's own row.
    INSERT INTO stats_hourly AS s (app_id, tag, hour, shard, accepted)
    SELECT i.app_id, '', date_trunc('hour', now(), 'UTC'), pg_backend_pid(),
           sum(jsonb_array_length(i.recipients))
    FROM input i
    JOIN stored st ON st.id = i.id
    GROUP BY i.app_id
    ON CONFLICT (app_id, tag, hour, shard) DO UPDATE SET accepted = s.accepted + EXCLUDED.accepted
)
SELECT id FROM stored
UNION ALL
SELECT NULL FROM (
    SELECT pg_notify('mailer_jobs', '') FROM stored WHERE run_at <= now() LIMIT 1
) AS notified;

-- name: count_accepted_emails
-- The hourly stats' `accepted` for jobs stored by COPY: $2 recipients of app $1.
INSERT INTO stats_hourly AS s (app_id, tag, hour, shard, accepted)
SELECT app_id, '', date_trunc('hour', now(), 'UTC'), pg_backend_pid(), sum(recipients)
FROM unnest($1::uuid[], $2::int8[]) AS c(app_id, recipients)
GROUP BY app_id
ON CONFLICT (app_id, tag, hour, shard) DO UPDATE SET accepted = s.accepted + EXCLUDED.accepted;

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
-- app's suppression list are marked so now. One statement: one round trip per claim.
-- Jobs of paused or rate-limited apps (`limited`, usually none) are not taken from
-- `jobs_due` but moved to `jobs_held` (`holding`); each rate-limited app's bucket, locked
-- by one claimer at a time (SKIP LOCKED: the others pass it by), gives as many of its held
-- jobs as it has whole tokens (`allowed`), and is charged for them (`spent`).
WITH due AS (
    SELECT id, app_id FROM jobs
    WHERE state = 'queued' AND NOT held AND run_at <= now()
    ORDER BY run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), limited AS (
    SELECT app_id FROM app_limits
    WHERE paused_at IS NOT NULL OR rate_per_second IS NOT NULL
), holding AS (
    UPDATE jobs j
    SET held = true
    WHERE j.id = ANY (ARRAY(SELECT d.id FROM due d JOIN limited l ON l.app_id = d.app_id))
), buckets AS (
    SELECT b.app_id,
           least(greatest(b.rate_per_second, 1),
                 b.tokens + extract(epoch FROM now() - b.tokens_at) * b.rate_per_second)
               AS available
    FROM app_limits b
    WHERE b.paused_at IS NULL AND b.rate_per_second IS NOT NULL
      AND EXISTS (SELECT 1 FROM jobs h
                  WHERE h.app_id = b.app_id AND h.state = 'queued' AND h.held
                    AND h.run_at <= now())
    FOR UPDATE OF b SKIP LOCKED
), allowed AS (
    SELECT b.app_id, h.id
    FROM buckets b
    CROSS JOIN LATERAL (
        SELECT id FROM jobs
        WHERE app_id = b.app_id AND state = 'queued' AND held AND run_at <= now()
        ORDER BY run_at
        LIMIT least(floor(b.available)::int, $1)
        FOR UPDATE SKIP LOCKED
    ) h
), spent AS (
    UPDATE app_limits l
    SET tokens = b.available - s.taken, tokens_at = now()
    FROM buckets b
    JOIN (SELECT app_id, count(*) AS taken FROM allowed GROUP BY app_id) s USING (app_id)
    WHERE l.app_id = b.app_id
), claimed AS (
    -- `= ANY (ARRAY(...))`, not a join: a generic plan, which takes `LIMIT $1` for a tenth
    -- of the table, would otherwise join through a scan of all jobs.
    UPDATE jobs j
    SET state = 'sending',
        attempts = j.attempts + 1,
        locked_until = now() + make_interval(secs => $2),
        locked_by = $3,
        updated_at = now()
    WHERE j.id = ANY (ARRAY(
            SELECT d.id FROM due d
            WHERE NOT EXISTS (SELECT 1 FROM limited l WHERE l.app_id = d.app_id)
            UNION ALL
            SELECT a.id FROM allowed a
          ))
      AND j.state = 'queued'
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
-- When the claim next has something to take: the first open job's run_at, or, for a
-- rate-limited app with held jobs, when its bucket holds a tenth of a second's worth of
-- tokens (at least one; so a busy app is claimed about ten times a second, not per token).
SELECT least(
    (SELECT min(run_at) FROM jobs WHERE state = 'queued' AND NOT held),
    (SELECT min(greatest(
                h.first_run_at,
                l.tokens_at + make_interval(secs => greatest(
                    0, greatest(1, l.rate_per_second / 10) - l.tokens) / l.rate_per_second)))
     FROM app_limits l
     CROSS JOIN LATERAL (
         SELECT min(run_at) AS first_run_at FROM jobs
         WHERE app_id = l.app_id AND state = 'queued' AND held
     ) h
     WHERE l.paused_at IS NULL AND l.rate_per_second IS NOT NULL
       AND h.first_run_at IS NOT NULL)
);

-- name: record_sends
-- Mailjet accepted these recipients ($1-$4) and answered for these jobs ($5-$7): one call
-- of the function that records both under the MessageIDs' bucket locks (migration 0005).
-- $8: write nothing and answer false if an unlinked event might be waiting for them.
-- What was written counts in the hourly stats' `sent`, in this connection's own row, under
-- each recipient's app ($9; a null one is looked up by its job).
WITH recorded AS (
    SELECT record_sends($1::uuid[], $2::int2[], $3::int8[], $4::text[],
                        $5::uuid[], $6::text[], $7::jsonb[], $8::boolean) AS wrote
), counted AS (
    -- A lookup is one index probe per job (OFFSET 0: a join planned without statistics
    -- became a scan of all jobs), and none when the worker named the app.
    INSERT INTO stats_hourly AS s (app_id, tag, hour, shard, sent)
    SELECT coalesce(a.app_id, j.app_id), '', date_trunc('hour', now(), 'UTC'),
           pg_backend_pid(), sum(a.recipients)
    FROM recorded r
    CROSS JOIN (
        SELECT job_id, app_id, count(*) AS recipients
        FROM unnest($1::uuid[], $9::uuid[]) AS u(job_id, app_id)
        GROUP BY 1, 2
    ) AS a
    LEFT JOIN LATERAL (
        SELECT app_id FROM jobs WHERE id = a.job_id AND a.app_id IS NULL OFFSET 0
    ) AS j ON true
    WHERE r.wrote
    GROUP BY 1
    ON CONFLICT (app_id, tag, hour, shard) DO UPDATE SET sent = s.sent + EXCLUDED.sent
)
SELECT wrote FROM recorded;

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

-- Pause, rates and quotas (delivery/limits.py; the table is migration 0013's). --------------

-- name: pause_app
INSERT INTO app_limits (app_id, paused_at) VALUES ($1, now())
ON CONFLICT (app_id) DO UPDATE SET paused_at = coalesce(app_limits.paused_at, now())
RETURNING paused_at;

-- name: resume_app
UPDATE app_limits SET paused_at = NULL WHERE app_id = $1;

-- name: set_rate
-- The bucket starts full: an app given a rate may send a second's worth at once.
INSERT INTO app_limits (app_id, rate_per_second, tokens)
VALUES ($1, $2::float8, greatest($2::float8, 1))
ON CONFLICT (app_id) DO UPDATE
SET rate_per_second = $2::float8, tokens = greatest($2::float8, 1), tokens_at = now();

-- name: set_daily_quota
INSERT INTO app_limits (app_id, daily_quota) VALUES ($1, $2)
ON CONFLICT (app_id) DO UPDATE SET daily_quota = $2;

-- name: count_today
-- Start (or restart) counting today's emails from the jobs the app stored today, so a quota
-- set at noon counts the morning too. A scan of the app's jobs, for an operator's command.
INSERT INTO app_daily_usage (app_id, day, accepted)
SELECT $1, (now() AT TIME ZONE 'UTC')::date, count(*)
FROM jobs
WHERE app_id = $1 AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
ON CONFLICT (app_id, day) DO UPDATE SET accepted = EXCLUDED.accepted;

-- name: clear_limits
UPDATE app_limits SET rate_per_second = NULL, daily_quota = NULL WHERE app_id = $1;

-- name: drop_unlimited
-- An app neither paused nor limited has no row: the claim's check stays an empty probe.
DELETE FROM app_limits
WHERE app_id = $1 AND paused_at IS NULL AND rate_per_second IS NULL AND daily_quota IS NULL;

-- name: release_held
-- Held jobs of apps no longer paused or rate limited go back to `jobs_due` ($1: one app;
-- null: every app, the safety net each worker runs with its lease recovery, for a job a
-- claim held while its app was being resumed). Wakes the workers when any went back.
WITH released AS (
    UPDATE jobs j
    SET held = false
    WHERE j.state = 'queued' AND j.held AND j.app_id = ANY (ARRAY(
        SELECT a.id FROM apps a
        WHERE ($1::uuid IS NULL OR a.id = $1)
          AND EXISTS (SELECT 1 FROM jobs h WHERE h.app_id = a.id AND h.state = 'queued' AND h.held)
          AND NOT EXISTS (SELECT 1 FROM app_limits l
                          WHERE l.app_id = a.id
                            AND (l.paused_at IS NOT NULL OR l.rate_per_second IS NOT NULL))
    ))
    RETURNING 1
)
SELECT count(*) AS released,
       (SELECT pg_notify('mailer_jobs', '') WHERE EXISTS (SELECT 1 FROM released)) AS notified
FROM released;

-- name: app_limits
SELECT app_id, paused_at, rate_per_second, daily_quota, tokens, tokens_at, now() AS now
FROM app_limits
WHERE app_id = $1;

-- name: quota_apps
SELECT app_id FROM app_limits WHERE daily_quota IS NOT NULL;

-- name: count_accepted
-- Count $2 more emails against app $1's quota for today, if they fit; no row when they do
-- not (or when the app has no quota, one row, the count unchecked). Run in the transaction
-- that stores them, so a refused batch leaves nothing behind.
INSERT INTO app_daily_usage AS u (app_id, day, accepted)
SELECT $1::uuid, (now() AT TIME ZONE 'UTC')::date, $2::int
FROM (SELECT 1) AS one
LEFT JOIN app_limits l ON l.app_id = $1
WHERE $2 <= coalesce(l.daily_quota, 2147483647)
ON CONFLICT (app_id, day) DO UPDATE
SET accepted = u.accepted + EXCLUDED.accepted
WHERE u.accepted + EXCLUDED.accepted
      <= coalesce((SELECT daily_quota FROM app_limits WHERE app_id = $1), 2147483647)
RETURNING accepted;

-- name: reserve_mailjet_calls
-- Book $1 consecutive slots of the account's Mailjet pace ($2 calls per second); answers
-- when the first may start (the others follow at 1/$2 s intervals) and the time now.
INSERT INTO mailjet_pacing AS p (id, next_free)
VALUES (true, now() + make_interval(secs => $1::float8 / $2::float8))
ON CONFLICT (id) DO UPDATE
SET next_free = greatest(p.next_free, now()) + make_interval(secs => $1::float8 / $2::float8)
RETURNING next_free - make_interval(secs => $1::float8 / $2::float8) AS first_slot, now() AS now;

-- Queries of the send path: enqueue, claim, record, retry, recover.

-- name: insert_jobs
-- Store jobs and their recipients in one statement, atomic even outside a transaction
-- block (one round trip, no BEGIN/COMMIT). $1 is a JSON array, one object per job, its
-- `recipients` an array of [kind, email] in position order; `merged` null or, per
-- position (a string), the mentions folded into that recipient; `request_hash` is hex;
-- `tags` null or an array, also written to `job_tags` and to each recipient. A job
-- whose idempotency key exists already is skipped with its recipients. If a stored job is
-- due now, NOTIFY once (the extra NULL row). Answers the stored jobs' ids.
-- (A CTE that nothing reads, like `counted`, still runs: PostgreSQL runs every data-modifying
-- CTE to completion.)
WITH input AS (
    SELECT *
    FROM jsonb_to_recordset($1::jsonb)
         AS t(id uuid, app_id uuid, message jsonb, metadata jsonb, idempotency_key text,
              request_hash text, run_at timestamptz, recipients jsonb, merged jsonb,
              tags text[])
), stored AS (
    INSERT INTO jobs (id, app_id, message, metadata, idempotency_key, request_hash, run_at,
                      tags)
    SELECT id, app_id, message, metadata, idempotency_key, decode(request_hash, 'hex'),
           coalesce(run_at, now()), tags
    FROM input
    ON CONFLICT (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, run_at
), recipients AS (
    INSERT INTO messages (job_id, position, app_id, kind, email, merged, tags)
    SELECT i.id, r.position - 1, i.app_id, r.recipient ->> 0, r.recipient ->> 1,
           i.merged -> (r.position - 1)::text, i.tags
    FROM input i
    JOIN stored s ON s.id = i.id
    CROSS JOIN LATERAL jsonb_array_elements(i.recipients) WITH ORDINALITY
         AS r(recipient, position)
), tagged AS (
    INSERT INTO job_tags (app_id, tag, job_id)
    SELECT i.app_id, t.tag, i.id
    FROM input i
    JOIN stored s ON s.id = i.id
    CROSS JOIN LATERAL unnest(i.tags) AS t(tag)
), counted AS (
    -- The hourly stats' `accepted`, per recipient, in this connection's own row: under ''
    -- (all) and each of the job's tags (none for an untagged job: unnest(NULL) is empty).
    INSERT INTO stats_hourly AS s (app_id, tag, hour, shard, accepted)
    SELECT i.app_id, t.tag, date_trunc('hour', now(), 'UTC'), pg_backend_pid(),
           sum(jsonb_array_length(i.recipients))
    FROM input i
    JOIN stored st ON st.id = i.id
    CROSS JOIN LATERAL unnest(array_prepend('', i.tags)) AS t(tag)
    GROUP BY i.app_id, t.tag
    ON CONFLICT (app_id, tag, hour, shard) DO UPDATE SET accepted = s.accepted + EXCLUDED.accepted
)
SELECT id FROM stored
UNION ALL
SELECT NULL FROM (
    SELECT pg_notify('mailer_jobs', '') FROM stored WHERE run_at <= now() LIMIT 1
) AS notified;

-- name: count_accepted_emails
-- The hourly stats' `accepted` for jobs stored by COPY: $3 recipients of app $1 under tag
-- $2 ('' for all; the caller sums them per app and tag).
INSERT INTO stats_hourly AS s (app_id, tag, hour, shard, accepted)
SELECT app_id, tag, date_trunc('hour', now(), 'UTC'), pg_backend_pid(), sum(recipients)
FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS c(app_id, tag, recipients)
GROUP BY app_id, tag
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
-- app's suppression list (or erased from it, as a keyed hash) are marked so now. One
-- statement: one round trip per claim.
-- Jobs of paused or rate-limited apps (`limited`, usually none) are not taken from
-- `jobs_due` but moved to `jobs_held` (`holding`); each rate-limited app's bucket, locked
-- by one claimer at a time (SKIP LOCKED: the others pass it by), gives as many of its held
-- jobs as it has whole tokens (`allowed`), and is charged for them (`spent`).
WITH due AS (
    -- `due_jobs` (migration 0024): the oldest due jobs no one holds, locked (SKIP LOCKED),
    -- in a plan that walks `jobs_due` in order whatever the statistics say.
    SELECT id, app_id FROM due_jobs($1)
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
    RETURNING j.id, j.app_id, j.message, j.attempts, j.created_at, j.retried_at,
              j.needs_lookup, j.run_at, j.tags,
              coalesce(j.last_error->>'reason' = 'lookup_missed', false) AS lookup_missed
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
                 AND (s.expires_at IS NULL OR s.expires_at > now())
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
SELECT c.id, c.app_id, c.message, c.attempts, c.created_at, c.retried_at, c.needs_lookup,
       c.lookup_missed, c.tags,
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
-- each recipient's app ($9; a null one is looked up by its job, with its tags) and tag:
-- '' and the tags of the jobs the worker named ($10 jobs, $11 a tag of each: as many
-- pairs as tags, none for untagged jobs).
WITH recorded AS (
    SELECT record_sends($1::uuid[], $2::int2[], $3::int8[], $4::text[],
                        $5::uuid[], $6::text[], $7::jsonb[], $8::boolean) AS wrote
), per_job AS (
    -- A lookup is one index probe per job (OFFSET 0: a join planned without statistics
    -- became a scan of all jobs), and none when the worker named the app.
    SELECT a.job_id, coalesce(a.app_id, j.app_id) AS app_id, a.recipients, j.tags
    FROM (
        SELECT job_id, app_id, count(*) AS recipients
        FROM unnest($1::uuid[], $9::uuid[]) AS u(job_id, app_id)
        GROUP BY 1, 2
    ) AS a
    LEFT JOIN LATERAL (
        SELECT app_id, tags FROM jobs WHERE id = a.job_id AND a.app_id IS NULL OFFSET 0
    ) AS j ON true
), counted AS (
    INSERT INTO stats_hourly AS s (app_id, tag, hour, shard, sent)
    SELECT c.app_id, c.tag, date_trunc('hour', now(), 'UTC'), pg_backend_pid(),
           sum(c.recipients)
    FROM recorded r
    CROSS JOIN (
        SELECT p.app_id, t.tag, p.recipients
        FROM per_job p
        CROSS JOIN LATERAL unnest(array_prepend('', p.tags)) AS t(tag)
        UNION ALL
        SELECT p.app_id, k.tag, p.recipients
        FROM per_job p
        JOIN unnest($10::uuid[], $11::text[]) AS k(job_id, tag) ON k.job_id = p.job_id
    ) AS c
    WHERE r.wrote
    GROUP BY 1, 2
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
RETURNING m.job_id, m.position, m.app_id, m.email, m.error, j.metadata, j.tags,
          now() AS failed_at, coalesce(jsonb_array_length(j.history), 0) AS retries;

-- name: suppressed_recipients
-- These recipients were not sent to for their suppressed address: what their
-- `email.suppressed` webhook tells the app (the suppression's reason).
SELECT m.job_id, m.position, m.app_id, m.email, s.reason, j.metadata, j.tags,
       now() AS suppressed_at
FROM unnest($1::uuid[], $2::int2[]) AS u(job_id, position)
JOIN messages m ON m.job_id = u.job_id AND m.position = u.position
JOIN jobs j ON j.id = m.job_id
LEFT JOIN suppressions s ON s.app_id = m.app_id AND s.email = m.email
WHERE m.status = 'suppressed';

-- name: retry_jobs
-- Put jobs back in the queue for a later attempt. $6: no send was attempted (a lookup that
-- waits for Mailjet's index), so the claim's attempt is given back.
UPDATE jobs j
SET state = 'queued',
    attempts = j.attempts - u.no_attempt::int,
    run_at = u.run_at,
    needs_lookup = j.needs_lookup OR u.outcome_unknown,
    last_error = u.error,
    locked_until = NULL,
    locked_by = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::jsonb[], $6::bool[])
     AS u(id, run_at, outcome_unknown, error, no_attempt)
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
    locked_by = NULL, updated_at = now(),
    -- A fresh unknown outcome: its first lookup that finds nothing waits again.
    last_error = '{"reason": "lease_expired"}'::jsonb
FROM expired
WHERE j.id = expired.id
RETURNING j.id;

-- name: job_status
SELECT id, state, attempts, run_at, last_error, metadata, tags, history, created_at,
       updated_at, sent_at
FROM jobs
WHERE id = $1 AND app_id = $2;

-- name: job_messages
SELECT position, kind, email, status, message_id, error, updated_at, merged
FROM messages
WHERE job_id = $1
ORDER BY position;

-- The `GET /jobs` pages, newest first (job ids are UUIDv7, in order of creation). Every
-- query takes the same parameters: $1 the app, $2/$3 the id range (below the cursor, and
-- the bounds `from`/`to` give, with a margin for clocks), $4/$5 `from`/`to` on created_at,
-- $6 the job status and $7 STATUS_CHAIN, $8 the recipient (lower-cased), $9 a tag, $10 an
-- idempotency key, $11 the page size (plus one), $12 the scan budget. Each reads at most
-- $12 ids, in order, from the one index range its leading filter names
-- (delivery/job_search.py picks the query), stopping once the page is full; the other
-- filters thin those out. A page that finds fewer than $11 jobs reads the range again to
-- answer how far its scan went (`scan_floor`, `scanned`): a row of nulls but those when
-- it found none.

-- name: list_jobs
WITH page AS MATERIALIZED (
    SELECT j.id, j.state, j.attempts, j.run_at, j.last_error, j.metadata, j.tags,
           j.idempotency_key, j.message ->> 'Subject' AS subject, j.created_at,
           j.updated_at, j.sent_at, r.emails, r.kinds, r.statuses
    FROM (
        SELECT id FROM jobs
        WHERE app_id = $1 AND id < $2 AND id >= $3
        ORDER BY id DESC
        LIMIT $12
    ) s
    JOIN jobs j ON j.id = s.id
    CROSS JOIN LATERAL (
        SELECT array_agg(m.email ORDER BY m.position) AS emails,
               array_agg(m.kind ORDER BY m.position) AS kinds,
               array_agg(m.status ORDER BY m.position) AS statuses
        FROM messages m
        WHERE m.job_id = j.id
    ) r
    WHERE j.app_id = $1
      AND ($4::timestamptz IS NULL OR j.created_at >= $4)
      AND ($5::timestamptz IS NULL OR j.created_at < $5)
      AND ($6::text IS NULL OR derived_job_status(j.state, r.statuses, $7::text[]) = $6)
      AND ($8::text IS NULL OR EXISTS (
          SELECT 1 FROM messages x WHERE x.job_id = j.id AND x.email = $8))
      AND ($9::text IS NULL OR j.tags @> ARRAY[$9::text])
      AND ($10::text IS NULL OR j.idempotency_key = $10)
    ORDER BY s.id DESC
    LIMIT $11
)
SELECT p.*, m.scan_floor, m.scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
    SELECT (array_agg(s.id ORDER BY s.id))[1] AS scan_floor, count(*) AS scanned
    FROM (
        SELECT id FROM jobs
        WHERE app_id = $1 AND id < $2 AND id >= $3
        ORDER BY id DESC
        LIMIT $12
    ) s
    WHERE (SELECT count(*) FROM page) < $11
) m ON true
ORDER BY p.id DESC;

-- name: list_jobs_by_recipient
WITH page AS MATERIALIZED (
    SELECT j.id, j.state, j.attempts, j.run_at, j.last_error, j.metadata, j.tags,
           j.idempotency_key, j.message ->> 'Subject' AS subject, j.created_at,
           j.updated_at, j.sent_at, r.emails, r.kinds, r.statuses
    FROM (
        SELECT job_id AS id FROM messages
        WHERE app_id = $1 AND email = $8 AND job_id < $2 AND job_id >= $3
        ORDER BY job_id DESC
        LIMIT $12
    ) s
    JOIN jobs j ON j.id = s.id
    CROSS JOIN LATERAL (
        SELECT array_agg(m.email ORDER BY m.position) AS emails,
               array_agg(m.kind ORDER BY m.position) AS kinds,
               array_agg(m.status ORDER BY m.position) AS statuses
        FROM messages m
        WHERE m.job_id = j.id
    ) r
    WHERE j.app_id = $1
      AND ($4::timestamptz IS NULL OR j.created_at >= $4)
      AND ($5::timestamptz IS NULL OR j.created_at < $5)
      AND ($6::text IS NULL OR derived_job_status(j.state, r.statuses, $7::text[]) = $6)
      AND ($9::text IS NULL OR j.tags @> ARRAY[$9::text])
      AND ($10::text IS NULL OR j.idempotency_key = $10)
    ORDER BY s.id DESC
    LIMIT $11
)
SELECT p.*, m.scan_floor, m.scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
    SELECT (array_agg(s.id ORDER BY s.id))[1] AS scan_floor, count(*) AS scanned
    FROM (
        SELECT job_id AS id FROM messages
        WHERE app_id = $1 AND email = $8 AND job_id < $2 AND job_id >= $3
        ORDER BY job_id DESC
        LIMIT $12
    ) s
    WHERE (SELECT count(*) FROM page) < $11
) m ON true
ORDER BY p.id DESC;

-- name: list_jobs_by_tag
WITH page AS MATERIALIZED (
    SELECT j.id, j.state, j.attempts, j.run_at, j.last_error, j.metadata, j.tags,
           j.idempotency_key, j.message ->> 'Subject' AS subject, j.created_at,
           j.updated_at, j.sent_at, r.emails, r.kinds, r.statuses
    FROM (
        SELECT job_id AS id FROM job_tags
        WHERE app_id = $1 AND tag = $9 AND job_id < $2 AND job_id >= $3
        ORDER BY job_id DESC
        LIMIT $12
    ) s
    JOIN jobs j ON j.id = s.id
    CROSS JOIN LATERAL (
        SELECT array_agg(m.email ORDER BY m.position) AS emails,
               array_agg(m.kind ORDER BY m.position) AS kinds,
               array_agg(m.status ORDER BY m.position) AS statuses
        FROM messages m
        WHERE m.job_id = j.id
    ) r
    WHERE j.app_id = $1
      AND ($4::timestamptz IS NULL OR j.created_at >= $4)
      AND ($5::timestamptz IS NULL OR j.created_at < $5)
      AND ($6::text IS NULL OR derived_job_status(j.state, r.statuses, $7::text[]) = $6)
      AND ($8::text IS NULL OR EXISTS (
          SELECT 1 FROM messages x WHERE x.job_id = j.id AND x.email = $8))
      AND ($10::text IS NULL OR j.idempotency_key = $10)
    ORDER BY s.id DESC
    LIMIT $11
)
SELECT p.*, m.scan_floor, m.scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
    SELECT (array_agg(s.id ORDER BY s.id))[1] AS scan_floor, count(*) AS scanned
    FROM (
        SELECT job_id AS id FROM job_tags
        WHERE app_id = $1 AND tag = $9 AND job_id < $2 AND job_id >= $3
        ORDER BY job_id DESC
        LIMIT $12
    ) s
    WHERE (SELECT count(*) FROM page) < $11
) m ON true
ORDER BY p.id DESC;

-- name: list_jobs_by_state
-- A queue state ($6: queued, sending, canceled), from the index of jobs not done.
WITH page AS MATERIALIZED (
    SELECT j.id, j.state, j.attempts, j.run_at, j.last_error, j.metadata, j.tags,
           j.idempotency_key, j.message ->> 'Subject' AS subject, j.created_at,
           j.updated_at, j.sent_at, r.emails, r.kinds, r.statuses
    FROM (
        SELECT id FROM jobs
        WHERE app_id = $1 AND state = $6 AND state <> 'done' AND id < $2 AND id >= $3
        ORDER BY id DESC
        LIMIT $12
    ) s
    JOIN jobs j ON j.id = s.id
    CROSS JOIN LATERAL (
        SELECT array_agg(m.email ORDER BY m.position) AS emails,
               array_agg(m.kind ORDER BY m.position) AS kinds,
               array_agg(m.status ORDER BY m.position) AS statuses
        FROM messages m
        WHERE m.job_id = j.id
    ) r
    WHERE j.app_id = $1
      AND ($4::timestamptz IS NULL OR j.created_at >= $4)
      AND ($5::timestamptz IS NULL OR j.created_at < $5)
      AND ($6::text IS NULL OR derived_job_status(j.state, r.statuses, $7::text[]) = $6)
      AND ($8::text IS NULL OR EXISTS (
          SELECT 1 FROM messages x WHERE x.job_id = j.id AND x.email = $8))
      AND ($9::text IS NULL OR j.tags @> ARRAY[$9::text])
      AND ($10::text IS NULL OR j.idempotency_key = $10)
    ORDER BY s.id DESC
    LIMIT $11
)
SELECT p.*, m.scan_floor, m.scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
    SELECT (array_agg(s.id ORDER BY s.id))[1] AS scan_floor, count(*) AS scanned
    FROM (
        SELECT id FROM jobs
        WHERE app_id = $1 AND state = $6 AND state <> 'done' AND id < $2 AND id >= $3
        ORDER BY id DESC
        LIMIT $12
    ) s
    WHERE (SELECT count(*) FROM page) < $11
) m ON true
ORDER BY p.id DESC;

-- name: list_jobs_by_key
WITH page AS MATERIALIZED (
    SELECT j.id, j.state, j.attempts, j.run_at, j.last_error, j.metadata, j.tags,
           j.idempotency_key, j.message ->> 'Subject' AS subject, j.created_at,
           j.updated_at, j.sent_at, r.emails, r.kinds, r.statuses
    FROM (
        SELECT id FROM jobs
        WHERE app_id = $1 AND idempotency_key = $10 AND id < $2 AND id >= $3
        ORDER BY id DESC
        LIMIT $12
    ) s
    JOIN jobs j ON j.id = s.id
    CROSS JOIN LATERAL (
        SELECT array_agg(m.email ORDER BY m.position) AS emails,
               array_agg(m.kind ORDER BY m.position) AS kinds,
               array_agg(m.status ORDER BY m.position) AS statuses
        FROM messages m
        WHERE m.job_id = j.id
    ) r
    WHERE j.app_id = $1
      AND ($4::timestamptz IS NULL OR j.created_at >= $4)
      AND ($5::timestamptz IS NULL OR j.created_at < $5)
      AND ($6::text IS NULL OR derived_job_status(j.state, r.statuses, $7::text[]) = $6)
      AND ($8::text IS NULL OR EXISTS (
          SELECT 1 FROM messages x WHERE x.job_id = j.id AND x.email = $8))
      AND ($9::text IS NULL OR j.tags @> ARRAY[$9::text])
    ORDER BY s.id DESC
    LIMIT $11
)
SELECT p.*, m.scan_floor, m.scanned
FROM (VALUES (1)) AS one (x)
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
    SELECT (array_agg(s.id ORDER BY s.id))[1] AS scan_floor, count(*) AS scanned
    FROM (
        SELECT id FROM jobs
        WHERE app_id = $1 AND idempotency_key = $10 AND id < $2 AND id >= $3
        ORDER BY id DESC
        LIMIT $12
    ) s
    WHERE (SELECT count(*) FROM page) < $11
) m ON true
ORDER BY p.id DESC;

-- name: cancel_job
-- Cancel the app's job if it waits in the queue and no attempt's outcome is unknown (an
-- earlier call may have reached Mailjet). The claim takes a job only `FOR UPDATE SKIP
-- LOCKED` and `WHERE state = 'queued'`: whichever of the two locks the row first wins,
-- the other finds it locked, or no longer queued once it may look again.
UPDATE jobs
SET state = 'canceled', locked_until = NULL, locked_by = NULL, updated_at = now()
WHERE id = $1 AND app_id = $2 AND state = 'queued' AND NOT needs_lookup
RETURNING id;

-- name: job_state
SELECT state, needs_lookup
FROM jobs
WHERE id = $1 AND app_id = $2;

-- name: reschedule_job
-- Move a scheduled job (queued, never attempted, not yet due) to $3, or to now if $3 has
-- passed; NOTIFY the workers when it is due now. Answers its new run_at.
WITH moved AS (
    UPDATE jobs
    SET run_at = greatest($3::timestamptz, now()), updated_at = now()
    WHERE id = $1 AND app_id = $2 AND state = 'queued' AND attempts = 0 AND run_at > now()
    RETURNING run_at
), notified AS (
    SELECT pg_notify('mailer_jobs', '') FROM moved WHERE run_at <= now()
)
SELECT run_at, (SELECT count(*) FROM notified) AS notified FROM moved;

-- name: retry_job
-- Put a job whose recipients failed back in the queue: the failed recipients queued
-- again, the attempt count restarted, what the earlier round ended with appended to
-- `history`. The first attempt looks the job up at Mailjet first (an earlier call may have
-- gone through unanswered). NOTIFY the workers. Answers the job's id.
WITH job AS (
    SELECT j.id, j.attempts, j.last_error, j.updated_at
    FROM jobs j
    WHERE j.id = $1 AND j.app_id = $2 AND j.state IN ('done', 'failed')
      AND EXISTS (SELECT 1 FROM messages m WHERE m.job_id = j.id AND m.status = 'failed')
    FOR UPDATE
), failed AS (
    SELECT m.position, m.email, m.error
    FROM messages m
    JOIN job ON m.job_id = job.id
    WHERE m.status = 'failed'
), requeued AS (
    UPDATE messages m
    SET status = 'queued', error = NULL, updated_at = now()
    FROM failed f
    WHERE m.job_id = $1 AND m.position = f.position AND m.status = 'failed'
), retried AS (
    UPDATE jobs j
    SET state = 'queued', run_at = now(), attempts = 0, needs_lookup = true,
        last_error = NULL, locked_until = NULL, locked_by = NULL, sent_at = NULL,
        retried_at = now(), updated_at = now(),
        history = coalesce(j.history, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
            'attempts', job.attempts,
            'error', job.last_error,
            'failed_at', job.updated_at,
            'recipients', (SELECT jsonb_agg(jsonb_build_object('email', f.email,
                                                               'error', f.error)
                                            ORDER BY f.position)
                           FROM failed f)))
    FROM job
    WHERE j.id = job.id
    RETURNING j.id
)
SELECT id, pg_notify('mailer_jobs', '') FROM retried;

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

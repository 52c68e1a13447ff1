-- name: beat
-- Write or refresh a worker's heartbeat (an upsert: the row may be gone, e.g. pruned).
INSERT INTO worker_heartbeats (id, host, pid, version, started_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (id) DO UPDATE SET last_seen_at = now();

-- name: forget_worker
DELETE FROM worker_heartbeats WHERE id = $1;

-- name: prune_workers
-- Rows of workers that died without a clean stop, long enough ago to be of no interest.
DELETE FROM worker_heartbeats WHERE last_seen_at < now() - make_interval(secs => $1);

-- name: live_worker_count
SELECT count(*) FROM worker_heartbeats WHERE last_seen_at >= now() - make_interval(secs => $1);

-- name: workers
-- Every known worker, newest first; `alive` when seen within $1 seconds.
SELECT id, host, pid, version, started_at, last_seen_at,
       last_seen_at >= now() - make_interval(secs => $1) AS alive,
       extract(epoch FROM now() - last_seen_at)::float8 AS seen_seconds_ago
FROM worker_heartbeats
ORDER BY started_at DESC;

-- name: job_states
-- Queue depth by state. `queued` and `sending` are read from their partial indexes; the
-- finished states are counted from the table (a scan: this is for `mailer status` only).
SELECT state, count(*) AS jobs FROM jobs GROUP BY state;

-- name: due_jobs
-- Jobs waiting and due now, and how long the oldest of them has waited: open ones
-- (jobs_due index) and those held back by their app's pause or rate (jobs_held).
SELECT count(*) AS due,
       coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS oldest_seconds
FROM (
    SELECT run_at FROM jobs WHERE state = 'queued' AND NOT held AND run_at <= now()
    UNION ALL
    SELECT run_at FROM jobs WHERE state = 'queued' AND held AND run_at <= now()
) AS due;

-- name: note_events_received
-- Mailjet posted events of these types ($1) at $2: the event clock moves forward.
INSERT INTO event_clock AS c (type, last_at)
SELECT t, $2 FROM unnest($1::text[]) AS t
ON CONFLICT (type) DO UPDATE SET last_at = greatest(c.last_at, EXCLUDED.last_at);

-- name: note_sends_accepted
-- Mailjet accepted sends between $1 and $2. `waiting_since` is when the sends began that
-- no `sent` event has followed yet: kept while it is still after the last `sent` event,
-- else it starts again with these.
INSERT INTO event_clock AS c (type, last_at, waiting_since)
VALUES ('accepted', $2, $1)
ON CONFLICT (type) DO UPDATE SET
    last_at = greatest(c.last_at, EXCLUDED.last_at),
    waiting_since = CASE
        WHEN c.waiting_since IS NOT NULL
             AND c.waiting_since > coalesce(
                 (SELECT s.last_at FROM event_clock s WHERE s.type = 'sent'), '-infinity')
        THEN c.waiting_since
        ELSE EXCLUDED.waiting_since
    END;

-- name: event_clock
-- Every type's last time, with its age in seconds (and `waiting_since` of `accepted`).
SELECT type, last_at, waiting_since,
       extract(epoch FROM now() - last_at)::float8 AS seconds_ago,
       extract(epoch FROM now() - waiting_since)::float8 AS waiting_seconds
FROM event_clock
ORDER BY type;

-- name: metric_gauges
-- The database-wide gauges of /metrics, in one round trip, each from an index: queued jobs
-- (jobs_due), those due and the oldest one's wait, jobs being sent (jobs_lease), live
-- workers (heartbeats within $1 s), webhook deliveries waiting (webhook_deliveries_pending)
-- and the oldest one's wait, and the endpoints (one row per endpoint, a small table).
-- Finished jobs are not counted here (a scan): the workers count them as they finish.
SELECT
    (SELECT count(*) FROM jobs WHERE state = 'queued' AND NOT held)
        + (SELECT count(*) FROM jobs WHERE state = 'queued' AND held) AS queued,
    (SELECT count(*) FROM jobs WHERE state = 'sending') AS sending,
    due.due,
    due.oldest_due_seconds,
    (SELECT count(*) FROM worker_heartbeats
     WHERE last_seen_at >= now() - make_interval(secs => $1)) AS live_workers,
    hooks.pending AS webhooks_pending,
    hooks.oldest_pending_seconds AS webhooks_oldest_pending_seconds,
    (SELECT count(*) FROM webhook_endpoints WHERE enabled) AS endpoints_enabled,
    (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS endpoints_disabled
FROM (
    SELECT count(*) AS due,
           coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS oldest_due_seconds
    FROM (
        -- jobs_due and jobs_held (a paused or rate-limited app's), each from its index.
        SELECT run_at FROM jobs WHERE state = 'queued' AND NOT held AND run_at <= now()
        UNION ALL
        SELECT run_at FROM jobs WHERE state = 'queued' AND held AND run_at <= now()
    ) AS waiting
) AS due, (
    SELECT count(*) AS pending,
           coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8
               AS oldest_pending_seconds
    FROM webhook_deliveries
    WHERE state = 'pending' AND next_attempt_at <= now()
) AS hooks;

-- name: app_names
-- Every app's id and name, so that dashboards can show names for the `app` label.
SELECT id, name FROM apps ORDER BY name;

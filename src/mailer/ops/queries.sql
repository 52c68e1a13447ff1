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

-- name: recent_event_types
-- The last Mailjet event of each type among the latest $1 events (a bounded backward scan
-- of the primary key: the events table is the largest and has no index on type).
SELECT type, max(received_at) AS last_received,
       extract(epoch FROM now() - max(received_at))::float8 AS seconds_ago,
       count(*) AS seen
FROM (SELECT type, received_at FROM events ORDER BY id DESC LIMIT $1) AS recent
GROUP BY type
ORDER BY type NULLS LAST;

-- name: last_event_post
-- When Mailjet last posted a callback.
SELECT received_at, extract(epoch FROM now() - received_at)::float8 AS seconds_ago
FROM event_posts
ORDER BY id DESC
LIMIT 1;

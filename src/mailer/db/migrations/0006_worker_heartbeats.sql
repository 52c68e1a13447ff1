-- Workers keep a heartbeat row so the others (`/readyz`, `mailer status`) can see them:
-- written at start, refreshed every few seconds, deleted on a clean stop. A worker is alive
-- while its `last_seen_at` is recent; rows of workers that died are pruned after a day.
-- `id` is the worker id that also marks the jobs it claims (`jobs.locked_by`).
CREATE TABLE worker_heartbeats (
    id            text PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    version       text NOT NULL,
    started_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX worker_heartbeats_last_seen ON worker_heartbeats (last_seen_at);

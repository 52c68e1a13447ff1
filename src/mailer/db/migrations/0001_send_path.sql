-- The send path: apps and their keys, jobs (the queue), one row per recipient message,
-- and the per-app suppression list consulted before sending.

CREATE TABLE apps (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An API key is `mk_<prefix>_<secret>`; only the SHA-256 of the whole key is kept.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    app_id      uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    prefix      text NOT NULL UNIQUE,
    key_hash    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- One email send job. `state` is the queue's view of it:
--   queued  -> waiting for `run_at` (first attempt, or a retry)
--   sending -> claimed by `locked_by` until `locked_until` (the lease)
--   done    -> Mailjet answered for every recipient (accepted or rejected each)
--   failed  -> gave up: a permanent error, or retries ran out
-- The job's user-facing status is derived from its messages once it leaves the queue.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    app_id           uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'sending', 'done', 'failed')),
    message          jsonb NOT NULL,          -- the Send API v3.1 message, without CustomID
    metadata         jsonb,                   -- the app's own data, echoed back with events
    idempotency_key  text,
    request_hash     bytea,
    attempts         integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    locked_by        text,
    -- Set when an attempt's outcome is unknown (timeout, 5xx, expired lease): the next
    -- attempt first looks the job up at Mailjet by CustomID instead of sending again.
    needs_lookup     boolean NOT NULL DEFAULT false,
    last_error       jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (app_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The claim reads this index only: it holds nothing but waiting jobs.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (locked_until) WHERE state = 'sending';

-- One row per recipient (To, Cc, Bcc): Mailjet gives each its own MessageID and events.
CREATE TABLE messages (
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position      smallint NOT NULL,          -- To first, then Cc, then Bcc, in request order
    app_id        uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('to', 'cc', 'bcc')),
    email         text NOT NULL,              -- lower-cased, for matching and suppression
    status        text NOT NULL DEFAULT 'queued',
    message_id    bigint,                     -- Mailjet's MessageID (exceeds 2^53)
    message_uuid  text,
    error         jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, position)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02);

CREATE INDEX messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;

-- Addresses an app must not send to again (hard bounce, spam complaint, unsubscribe ...).
CREATE TABLE suppressions (
    app_id      uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    email       text NOT NULL,               -- lower-cased
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, email)
);

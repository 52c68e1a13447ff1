-- Outbound webhooks: each app's endpoints, one delivery per (event, endpoint) written in the
-- transaction that stores the event (the outbox), and a log of every attempt.

CREATE TABLE webhook_endpoints (
    id                   uuid PRIMARY KEY,
    app_id               uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url                  text NOT NULL,
    description          text,
    event_types          text[],                 -- NULL: every event type
    enabled              boolean NOT NULL DEFAULT true,
    disabled_reason      text,
    disabled_at          timestamptz,
    secret               text NOT NULL,          -- whsec_...
    previous_secret      text,                   -- still signs until it expires (rotation)
    previous_expires_at  timestamptz,
    first_failure_at     timestamptz,            -- start of the current run of failures
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, created_at);

-- One event to one endpoint. `state`:
--   pending   -> due at `next_attempt_at`; a claim pushes that forward by the lease, so a
--                dispatcher that dies mid-delivery leaves it due again once the lease ends
--   delivered -> a 2xx came back
--   failed    -> retries ran out (or a manual attempt failed); `recover` re-queues it
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    app_id           uuid NOT NULL,
    event_id         text NOT NULL,              -- the webhook-id, the same on every attempt
    event_type       text NOT NULL,
    body             text NOT NULL,              -- the exact JSON sent (and signed)
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    manual           boolean NOT NULL DEFAULT false,   -- one attempt only, no schedule
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (endpoint_id, event_id)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (endpoint_id, finished_at)
    WHERE state = 'failed';

CREATE TABLE webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id  uuid NOT NULL,
    event_id     text NOT NULL,
    attempt      integer NOT NULL,
    status_code  integer,                        -- NULL: no HTTP answer (see error)
    duration_ms  integer NOT NULL,
    error        text,
    response     text,                           -- the first 2 KB of the answer
    created_at   timestamptz NOT NULL
);

CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id DESC);

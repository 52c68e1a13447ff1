-- Tracking: Mailjet's event callbacks, kept raw and parsed; suppression causes.
-- See docs/tracking.md.

-- Every callback body Mailjet posted, byte for byte, so events can be re-derived after a
-- parser fix (`mailer events reprocess`).
CREATE TABLE event_posts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    event_count  integer NOT NULL,
    body         bytea NOT NULL
);

-- One row per distinct Mailjet event (redeliveries are stored once: `dedupe_key`).
-- No foreign keys: this is the hottest table, and an FK check is a probe plus a row lock per
-- inserted row. `app_id`/`job_id`/`position` are set together when the event is linked to
-- its recipient message, and never changed afterwards.
CREATE TABLE events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id          bigint NOT NULL,           -- the event_posts row it first arrived in
    dedupe_key       bytea NOT NULL,            -- sha256 of the canonical raw event
    type             text,                      -- sent open click bounce spam blocked unsub
    understood       boolean NOT NULL,          -- false: not an object, or an unknown type
    status           text,                      -- the recipient status it implies, if any
    rank             smallint,                  -- that status's precedence (STATUS_RANK)
    occurred_at      timestamptz NOT NULL,      -- Mailjet's `time` (or arrival, if missing)
    time_estimated   boolean NOT NULL,
    message_id       bigint NOT NULL,           -- Mailjet's MessageID, 0 when none
    message_uuid     text,
    email            text NOT NULL,             -- lower-cased
    custom_id        text,
    custom_job_id    uuid,                      -- CustomID when it is one of our job ids
    payload          text,
    is_test          boolean NOT NULL,          -- MessageID 0: a UI test event
    suppress_reason  text,                      -- set when the event suppresses the address
    details          jsonb NOT NULL,            -- type-specific fields: url, error, agent ...
    raw              jsonb NOT NULL,            -- the event as posted, unknown fields included
    received_at      timestamptz NOT NULL DEFAULT now(),
    app_id           uuid,
    job_id           uuid,
    position         smallint,
    -- The feed position: the id of the transaction that linked the event to its app. The
    -- feed serves (feed_xid, id) in order, only below the oldest running transaction.
    feed_xid         xid8,
    linked_at        timestamptz,
    CHECK ((job_id IS NULL) = (app_id IS NULL)),
    CHECK ((job_id IS NULL) = (position IS NULL)),
    CHECK ((job_id IS NULL) = (feed_xid IS NULL))
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE UNIQUE INDEX events_dedupe_key ON events (dedupe_key);
CREATE INDEX events_feed ON events (app_id, feed_xid, id) WHERE app_id IS NOT NULL;
CREATE INDEX events_message ON events (job_id, position) WHERE job_id IS NOT NULL;
-- Events waiting for their message's send result to be recorded.
CREATE INDEX events_pending_by_message_id ON events (message_id)
    WHERE job_id IS NULL AND message_id <> 0;
CREATE INDEX events_pending_by_custom_id ON events (custom_job_id, email)
    WHERE job_id IS NULL AND custom_job_id IS NOT NULL;

-- Why an address is suppressed: the event that caused it (NULL when added through the API).
ALTER TABLE suppressions ADD COLUMN event_id bigint;

-- Data lifecycle and security (issue 18).

-- Webhook secrets are stored sealed from now on (mailer.vault, MAILER_SECRET_KEY). A
-- migration has no key, so rows stored in clear are sealed by each process at start and by
-- `mailer secrets rotate` (mailer.webhooks.sealed).
COMMENT ON COLUMN webhook_endpoints.secret IS 'sealed with MAILER_SECRET_KEY (Fernet)';
COMMENT ON COLUMN webhook_endpoints.previous_secret IS 'sealed with MAILER_SECRET_KEY (Fernet)';

-- An API key may expire (`mailer apps keys create --expires 90d`); null: never.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

-- The audit log: every change that is not an app sending mail (mailer.audit). No foreign
-- keys: an entry outlives what it is about.
CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    app_id   uuid,                     -- the app it concerns; null: none (an erasure of all)
    actor    text NOT NULL,            -- cli:<user>, key:<api key id>, mailer:<part>
    action   text NOT NULL,            -- app.created, key.revoked, endpoint.changed ...
    target   text,                     -- what it was done to (an id; never a secret)
    source   text,                     -- the client's IP for HTTP, the host for the CLI
    details  jsonb
);
CREATE INDEX audit_log_app ON audit_log (app_id, id);

-- Secrets Mailer makes for itself, sealed with MAILER_SECRET_KEY like the webhook secrets
-- (re-sealed by `mailer secrets rotate`): `address_hmac`, the key of erased addresses.
CREATE TABLE sealed_secrets (
    name        text PRIMARY KEY,
    sealed      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- What remains of a suppressed address once it was erased (`mailer erase`): its
-- HMAC-SHA256 under `address_hmac`, never the address. The claim still refuses to send to
-- it (delivery/queries.sql, claim_jobs).
CREATE TABLE erased_suppressions (
    app_id        uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    address_hash  bytea NOT NULL,
    reason        text NOT NULL,
    created_at    timestamptz NOT NULL,
    erased_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, address_hash)
);

-- Retention (mailer.lifecycle.retention): periods are settings, an app may override
-- {"bodies_days": n, "jobs_days": n}. Expired rows are removed by the workers in small
-- batches, oldest first by the time-ordered primary keys, so no index is added to the
-- tables written on the hot path.
ALTER TABLE apps ADD COLUMN retention jsonb;
-- When a job's bodies and attachments were removed (its headers and recipients stay).
ALTER TABLE jobs ADD COLUMN bodies_removed_at timestamptz;
-- Finished webhook deliveries are found by age through a BRIN index: tiny, and cheap to
-- keep on a table written in time order.
CREATE INDEX webhook_deliveries_created_brin ON webhook_deliveries USING brin (created_at);
-- How far body removal has gone, per app (bodies go, the job stays: a scan from the
-- start would read them again).
CREATE TABLE retention_progress (
    app_id  uuid PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    bodies_upto  uuid NOT NULL
);

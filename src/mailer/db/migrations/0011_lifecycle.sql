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
-- Whether the app has any: the claim computes the HMAC only for those apps.
ALTER TABLE apps ADD COLUMN erased_any boolean NOT NULL DEFAULT false;

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

-- Raw callback bodies are partitioned by day of arrival, so that retention drops a whole
-- expired day (mailer.lifecycle.partitions) instead of deleting its rows. The rows already
-- stored become one partition ending tomorrow (UTC), emptied by the batch deletes of
-- retention and dropped once empty; a default partition takes anything no day covers (if
-- the workers were down when a day began), and is emptied the same way. PostgreSQL 15 and
-- 16 have no identity columns on partitioned tables: the id comes from a sequence.
DO $$
DECLARE
    last_id bigint;
    cut timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       + interval '1 day';
BEGIN
    SELECT max(id) INTO last_id FROM event_posts;
    ALTER TABLE event_posts RENAME TO event_posts_until_0011;
    ALTER TABLE event_posts_until_0011 ALTER COLUMN id DROP IDENTITY;
    -- The parent's key (id, received_at) replaces it when the table is attached.
    ALTER TABLE event_posts_until_0011 DROP CONSTRAINT event_posts_pkey;
    CREATE SEQUENCE event_posts_id_seq;
    PERFORM setval('event_posts_id_seq', coalesce(last_id, 0) + 1, false);
    CREATE TABLE event_posts (
        id           bigint NOT NULL DEFAULT nextval('event_posts_id_seq'),
        received_at  timestamptz NOT NULL DEFAULT now(),
        event_count  integer NOT NULL,
        body         bytea NOT NULL,
        PRIMARY KEY (id, received_at)
    ) PARTITION BY RANGE (received_at);
    ALTER SEQUENCE event_posts_id_seq OWNED BY event_posts.id;
    EXECUTE format(
        'ALTER TABLE event_posts ATTACH PARTITION event_posts_until_0011 '
        'FOR VALUES FROM (MINVALUE) TO (%L)', cut);
    CREATE TABLE event_posts_default PARTITION OF event_posts DEFAULT;
END
$$;

-- The partition of one day (UTC) of event_posts, made if missing: true when made, false
-- when it existed or the range is already covered (the partition from before, or rows
-- already in the default partition: those days stay in it, emptied by batch deletes).
CREATE FUNCTION mailer_add_post_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'event_posts_p' || to_char(day, 'YYYYMMDD');
    low timestamptz := day::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF event_posts FOR VALUES FROM (%L) TO (%L)',
                   name, low, low + interval '1 day');
    RETURN true;
EXCEPTION
    -- Overlapping a partition, rows of that day in the default one, or another worker
    -- making the same day at the same moment.
    WHEN invalid_object_definition OR check_violation OR duplicate_table THEN
        RETURN false;
END
$$;

-- Drop one day partition of event_posts (by the name post_partitions gave).
CREATE FUNCTION mailer_drop_post_partition(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF name !~ '^event_posts_(p[0-9]{8}|until_0011)$' THEN
        RAISE EXCEPTION 'not a partition of event_posts: %', name;
    END IF;
    EXECUTE format('ALTER TABLE event_posts DETACH PARTITION %I', name);
    EXECUTE format('DROP TABLE %I', name);
END
$$;

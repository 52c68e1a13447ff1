-- Retention by partitions, table by table (issue 18; docs/operations.md, "Retention").
--
-- webhook_attempts joins event_posts among the tables partitioned by day: it is only ever
-- appended to (one row per attempt, never updated), nothing references it, and its
-- period is global (MAILER_RETENTION_WEBHOOK_ATTEMPTS_DAYS), so an expired day is dropped
-- whole (mailer.lifecycle.partitions) instead of deleted row by row. Its key becomes
-- (id, created_at): a partitioned table's unique constraints must hold the partition key.
-- The other large tables stay on batch deletes; docs/operations.md says why, per table.

-- The day partitions of the tables so kept, made and dropped by name: `<table>_pYYYYMMDD`;
-- `<table>_until_NNNN` holds the rows from before the table was partitioned (migration
-- NNNN), emptied by retention's batch deletes, then dropped.
CREATE FUNCTION mailer_day_partitioned(parent text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF parent NOT IN ('event_posts', 'webhook_attempts') THEN
        RAISE EXCEPTION 'not a table partitioned by day: %', parent;
    END IF;
END
$$;

-- The partition of one day (UTC) of `parent`, made if missing: true when made, false when
-- it existed or the range is already covered (by the partition of the rows from before, or
-- rows of that day already in the default partition: that day stays there, emptied by
-- batch deletes).
CREATE FUNCTION mailer_add_day_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_p' || to_char(day, 'YYYYMMDD');
    low timestamptz := day::timestamp AT TIME ZONE 'UTC';
BEGIN
    PERFORM mailer_day_partitioned(parent);
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- As for a drop (below): never make writers queue for long behind this.
    PERFORM set_config('lock_timeout', '1s', true);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   name, parent, low, low + interval '1 day');
    RETURN true;
EXCEPTION
    -- Overlapping a partition, rows of that day in the default one, another worker making
    -- the same day at the same moment, or the table busy (the next run tries again).
    WHEN invalid_object_definition OR check_violation OR duplicate_table
         OR lock_not_available THEN
        RETURN false;
END
$$;

-- Detach and drop one partition of `parent` (a day's, or the rows from before): true when
-- dropped. Detaching locks the whole table, and writers queue behind a lock that waits: if
-- another session holds the table for more than a second, this gives up (false) and the
-- next retention run tries again, so inserts never wait long on retention.
CREATE FUNCTION mailer_drop_day_partition(parent text, name text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailer_day_partitioned(parent);
    IF name !~ ('^' || parent || '_(p[0-9]{8}|until_[0-9]{4})$') THEN
        RAISE EXCEPTION 'not a partition of %: %', parent, name;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, name);
    EXECUTE format('DROP TABLE %I', name);
    RETURN true;
EXCEPTION
    WHEN lock_not_available THEN
        RETURN false;
END
$$;

-- Drop the partition of the rows from before partitioning once retention has emptied it:
-- true when dropped; false when it is gone already or still holds rows.
CREATE FUNCTION mailer_drop_emptied_leftover(parent text, name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    any_row boolean;
BEGIN
    PERFORM mailer_day_partitioned(parent);
    IF to_regclass(name) IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', name) INTO any_row;
    IF any_row THEN
        RETURN false;
    END IF;
    RETURN mailer_drop_day_partition(parent, name);
END
$$;

-- Migration 0011's functions for event_posts alone give way to the ones above.
DROP FUNCTION mailer_add_post_partition(date);
DROP FUNCTION mailer_drop_post_partition(text);

-- webhook_attempts becomes partitioned by day of `created_at`. The rows already stored
-- become one partition ending at the end of the day after their newest (UTC, tomorrow at
-- the earliest): no row is rewritten, its indexes on (endpoint_id, id) and (delivery_id) are taken
-- over as the partition's, only the key's index is built. An empty table is simply replaced. PostgreSQL
-- 15 and 16 have no identity columns on partitioned tables: the id comes from a sequence.
DO $$
DECLARE
    last_id bigint;
    newest timestamptz;
    cut timestamptz;
BEGIN
    SELECT max(id), max(created_at) INTO last_id, newest FROM webhook_attempts;
    cut := date_trunc('day', greatest(now(), newest) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           + interval '1 day';
    ALTER TABLE webhook_attempts RENAME TO webhook_attempts_until_0019;
    ALTER TABLE webhook_attempts_until_0019 ALTER COLUMN id DROP IDENTITY;
    ALTER TABLE webhook_attempts_until_0019 DROP CONSTRAINT webhook_attempts_pkey;
    ALTER INDEX webhook_attempts_endpoint RENAME TO webhook_attempts_until_0019_endpoint;
    -- 0016's index by delivery: taken over as the partition's too.
    ALTER INDEX webhook_attempts_delivery RENAME TO webhook_attempts_until_0019_delivery;
    CREATE SEQUENCE webhook_attempts_id_seq;
    PERFORM setval('webhook_attempts_id_seq', coalesce(last_id, 0) + 1, false);
    CREATE TABLE webhook_attempts (
        id           bigint NOT NULL DEFAULT nextval('webhook_attempts_id_seq'),
        delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        endpoint_id  uuid NOT NULL,
        event_id     text NOT NULL,
        attempt      integer NOT NULL,
        status_code  integer,                        -- NULL: no HTTP answer (see error)
        duration_ms  integer NOT NULL,
        error        text,
        response     text,                           -- the first 2 KB of the answer
        created_at   timestamptz NOT NULL,
        PRIMARY KEY (id, created_at)
    ) PARTITION BY RANGE (created_at);
    ALTER SEQUENCE webhook_attempts_id_seq OWNED BY webhook_attempts.id;
    CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id DESC);
    -- The cascade from webhook_deliveries (retention, erasure, an endpoint deleted) finds a
    -- delivery's attempts by this index, not by a scan of every partition per delivery.
    CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
    IF last_id IS NULL THEN
        DROP TABLE webhook_attempts_until_0019;
    ELSE
        EXECUTE format(
            'ALTER TABLE webhook_attempts ATTACH PARTITION webhook_attempts_until_0019 '
            'FOR VALUES FROM (MINVALUE) TO (%L)', cut);
    END IF;
    CREATE TABLE webhook_attempts_default PARTITION OF webhook_attempts DEFAULT;
    -- The coming days (the workers make them from now on, mailer.lifecycle.partitions).
    FOR i IN 0..3 LOOP
        PERFORM mailer_add_day_partition(
            'webhook_attempts', (now() AT TIME ZONE 'UTC')::date + i);
    END LOOP;
END
$$;

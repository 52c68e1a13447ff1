-- Housekeeping of the service's own tables (db/housekeeping.py).

-- name: autovacuum_enabled
SELECT current_setting('autovacuum')::boolean;

-- name: owns_hot_tables
-- ANALYZE and VACUUM need the tables' owner (or a member of its role, or a superuser).
SELECT bool_and(pg_has_role(c.relowner, 'USAGE'))
FROM pg_class c
WHERE c.oid IN ('jobs'::regclass, 'messages'::regclass, 'events'::regclass,
                'webhook_deliveries'::regclass);

-- name: tables_needing_care
-- Autovacuum's own rule with its default factors: ANALYZE after 10 % of a table's rows
-- changed, VACUUM after 20 % are dead.
SELECT coalesce(bool_or(s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)), false)
           AS analyze,
       coalesce(bool_or(s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)), false)
           AS vacuum
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema()
  AND s.relname IN ('jobs', 'messages', 'events', 'webhook_deliveries');

-- name: analyze_hot_tables
-- The tables that change with every email; ANALYZE reads a sample, not the whole table.
ANALYZE jobs, messages, events, webhook_deliveries;

-- name: vacuum_hot_tables
VACUUM (ANALYZE) jobs, messages, events, webhook_deliveries;

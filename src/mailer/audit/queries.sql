-- The audit log (migration 0011).

-- name: record
INSERT INTO audit_log (app_id, actor, action, target, source, details)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: entries
-- Newest first: the app's entries ($1 null: every app's and those of no app), at or after
-- $2 (null: any time), older than entry $3 (null: the newest), at most $4.
SELECT id, at, app_id, actor, action, target, source, details
FROM audit_log
WHERE ($1::uuid IS NULL OR app_id = $1)
  AND ($2::timestamptz IS NULL OR at >= $2)
  AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4;

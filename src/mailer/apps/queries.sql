-- name: create_app
INSERT INTO apps (id, name) VALUES ($1, $2)
RETURNING id, name, created_at;

-- name: list_apps
SELECT a.id, a.name, a.created_at,
       count(k.id) FILTER (WHERE k.revoked_at IS NULL) AS active_keys
FROM apps a
LEFT JOIN api_keys k ON k.app_id = a.id
GROUP BY a.id
ORDER BY a.created_at;

-- name: find_app
SELECT id, name, created_at FROM apps WHERE id::text = $1 OR name = $1;

-- name: create_key
INSERT INTO api_keys (id, app_id, prefix, key_hash) VALUES ($1, $2, $3, $4)
RETURNING id, created_at;

-- name: list_keys
SELECT id, prefix, created_at, revoked_at FROM api_keys
WHERE app_id = $1
ORDER BY created_at;

-- name: revoke_key
UPDATE api_keys SET revoked_at = now()
WHERE (id::text = $1 OR prefix = $1) AND revoked_at IS NULL
RETURNING id, app_id;

-- name: key_by_prefix
SELECT app_id, key_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL;

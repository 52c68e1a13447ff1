-- name: create_app
INSERT INTO apps (id, name) VALUES ($1, $2)
RETURNING id, name, created_at;

-- name: list_apps
-- With each app's pause and limits (migration 0013's `app_limits`; most apps have none).
SELECT a.id, a.name, a.created_at, a.sender_domains,
       count(k.id) FILTER (WHERE k.revoked_at IS NULL) AS active_keys,
       l.paused_at, l.rate_per_second, l.daily_quota
FROM apps a
LEFT JOIN api_keys k ON k.app_id = a.id
LEFT JOIN app_limits l ON l.app_id = a.id
GROUP BY a.id, l.app_id
ORDER BY a.created_at;

-- name: find_app
SELECT id, name, created_at, sender_domains FROM apps WHERE id::text = $1 OR name = $1;

-- name: set_sender_domains
-- $2 null: the app may send from any domain.
UPDATE apps SET sender_domains = $2 WHERE id = $1;

-- name: create_key
-- $6: when the key expires (null: never).
INSERT INTO api_keys (id, app_id, prefix, key_hash, scopes, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, created_at;

-- name: list_keys
SELECT id, prefix, scopes, created_at, last_used_at, revoked_at, expires_at FROM api_keys
WHERE app_id = $1
ORDER BY created_at;

-- name: revoke_key
UPDATE api_keys SET revoked_at = now()
WHERE (id::text = $1 OR prefix = $1) AND revoked_at IS NULL
RETURNING id, app_id;

-- name: key_by_prefix
SELECT k.id, k.app_id, k.key_hash, k.scopes, a.sender_domains, k.expires_at
FROM api_keys k
JOIN apps a ON a.id = k.app_id
WHERE k.prefix = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now());

-- name: touch_key
-- Note a key's use; a no-op within a minute of the last one noted (by any process).
UPDATE api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

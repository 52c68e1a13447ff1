-- What apps expect from an email API (issue 15): merged recipients, scoped keys that
-- remember their last use, and the sender domains an app may send from.

-- The later mentions of an address folded into this recipient (Mailjet sends an address
-- given again across To, Cc and Bcc once): [{"kind": "cc", "email": "..."}], or null.
ALTER TABLE messages ADD COLUMN merged jsonb;

-- What a key may do: `send` (POST /queue), `read` (status, feed, suppressions),
-- `webhooks` (the webhook endpoints). Existing keys keep every scope.
ALTER TABLE api_keys
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY['send', 'read', 'webhooks']
        CHECK (scopes <@ ARRAY['send', 'read', 'webhooks'] AND cardinality(scopes) > 0),
    -- Written at most once a minute per key and process (see apps/store.py).
    ADD COLUMN last_used_at timestamptz;

-- The domains an app may send from (lower-cased); null: any domain.
ALTER TABLE apps ADD COLUMN sender_domains text[];

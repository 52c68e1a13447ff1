-- Data lifecycle and security (issue 18).

-- Webhook secrets are stored sealed from now on (mailer.vault, MAILER_SECRET_KEY). A
-- migration has no key, so rows stored in clear are sealed by each process at start and by
-- `mailer secrets rotate` (mailer.webhooks.sealed).
COMMENT ON COLUMN webhook_endpoints.secret IS 'sealed with MAILER_SECRET_KEY (Fernet)';
COMMENT ON COLUMN webhook_endpoints.previous_secret IS 'sealed with MAILER_SECRET_KEY (Fernet)';

-- An API key may expire (`mailer apps keys create --expires 90d`); null: never.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

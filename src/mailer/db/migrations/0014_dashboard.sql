-- The operator dashboard (issue 17): who may use it, their sessions, failed logins.
-- Operators are people, not apps: they see every app's mail and hold no API key.

CREATE TABLE operators (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    role           text NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash  text NOT NULL,              -- scrypt$N$r$p$salt$hash (dashboard/passwords.py)
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz                 -- set: no login, no session
);

-- A session is found by the SHA-256 of its cookie's random token: the token itself is
-- never stored, so a copy of the table opens no session.
CREATE TABLE operator_sessions (
    token_hash    bytea PRIMARY KEY,
    operator_id   uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,               -- every form of the session carries it
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    ip            text
);

CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
CREATE INDEX operator_sessions_last_seen ON operator_sessions (last_seen_at);

-- Failed logins, counted per name and per address over a window, in the database so that
-- the limit holds across every API process.
CREATE TABLE operator_login_failures (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    ip         text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX operator_login_failures_name ON operator_login_failures (name, failed_at);
CREATE INDEX operator_login_failures_ip ON operator_login_failures (ip, failed_at);
CREATE INDEX operator_login_failures_at ON operator_login_failures (failed_at);

-- The dashboard's search by recipient (`app_id = ANY(apps) AND email = $1`) uses
-- messages_by_app_email, made by 0009_jobs.

-- Pause, sending rates and daily quotas per app, and the account's ceiling on Mailjet calls
-- per second (issue 15). Enforced in the database, so every worker shares one budget.

-- One row per app that is paused or limited (none for the others, so an app without limits
-- costs the claim one probe of an empty table). `tokens` at `tokens_at` is the app's token
-- bucket: it refills at `rate_per_second` up to max(rate, 1) (one second's worth) and the
-- claim spends one token per job it takes.
CREATE TABLE app_limits (
    app_id           uuid PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    paused_at        timestamptz,
    rate_per_second  double precision CHECK (rate_per_second > 0),
    daily_quota      integer CHECK (daily_quota >= 0),
    tokens           double precision NOT NULL DEFAULT 0,
    tokens_at        timestamptz NOT NULL DEFAULT now()
);

-- Emails accepted per app and UTC day, counted only for apps with a daily quota.
CREATE TABLE app_daily_usage (
    app_id    uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    day       date NOT NULL,
    accepted  integer NOT NULL,
    PRIMARY KEY (app_id, day)
);

-- The account-wide pace of Mailjet calls: the earliest time the next call may start
-- (a generic cell rate algorithm; one row, used only when a ceiling is configured).
CREATE TABLE mailjet_pacing (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    next_free  timestamptz NOT NULL
);

-- A job of a paused or rate-limited app waits apart, `held`: out of `jobs_due`, so that the
-- claim of everyone else never scans past a held-back backlog, and in `jobs_held`, where its
-- app's bucket claims it. The claim moves such a job there the first time it meets it.
ALTER TABLE jobs ADD COLUMN held boolean NOT NULL DEFAULT false;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'queued' AND NOT held;
CREATE INDEX jobs_held ON jobs (app_id, run_at) WHERE state = 'queued' AND held;

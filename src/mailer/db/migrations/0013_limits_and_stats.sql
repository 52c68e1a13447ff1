-- Pause, sending rates and daily quotas per app, the account's ceiling on Mailjet calls per
-- second, and the hourly rollups behind `GET /stats` (issue 15).

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

-- What `GET /stats` serves: counts per app, tag and hour (UTC), kept up to date by the
-- statements that accept emails (`insert_jobs`, COPY's `count_accepted_emails`), record
-- sends (`record_sends`) and apply events (`apply_events`). Counts are per recipient, as
-- Mailjet counts messages. `tag` '' is all of the app's emails (the per-tag rows come with
-- the jobs' tags). Each writing connection adds to its own row (`shard` = its backend
-- pid), so concurrent writers never wait for one another or deadlock on a counter;
-- `fold_stats` (the worker, every minute) folds past hours into shard 0.
CREATE TABLE stats_hourly (
    app_id               uuid NOT NULL,
    tag                  text NOT NULL DEFAULT '',
    hour                 timestamptz NOT NULL,
    shard                integer NOT NULL,
    accepted             integer NOT NULL DEFAULT 0,   -- stored for sending
    sent                 integer NOT NULL DEFAULT 0,   -- accepted by Mailjet's Send API
    delivered            integer NOT NULL DEFAULT 0,   -- Mailjet's `sent` event
    bounced_hard         integer NOT NULL DEFAULT 0,
    bounced_soft         integer NOT NULL DEFAULT 0,
    blocked              integer NOT NULL DEFAULT 0,
    complained           integer NOT NULL DEFAULT 0,   -- `spam`
    unsubscribed         integer NOT NULL DEFAULT 0,
    opened               integer NOT NULL DEFAULT 0,   -- every open event
    opened_unique        integer NOT NULL DEFAULT 0,   -- recipients' first opens
    opened_human         integer NOT NULL DEFAULT 0,   -- open events not made by a machine
    opened_human_unique  integer NOT NULL DEFAULT 0,
    clicked              integer NOT NULL DEFAULT 0,
    clicked_unique       integer NOT NULL DEFAULT 0,
    clicked_human        integer NOT NULL DEFAULT 0,
    clicked_human_unique integer NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, tag, hour, shard)
) WITH (fillfactor = 70);

-- A recipient's first open and click, all and human only (events.machine_reason null):
-- set once by `apply_events` under the message's row lock, which makes the unique counts
-- exact whatever the order and concurrency of the events.
ALTER TABLE messages
    ADD COLUMN first_opened_at timestamptz,
    ADD COLUMN first_human_opened_at timestamptz,
    ADD COLUMN first_clicked_at timestamptz,
    ADD COLUMN first_human_clicked_at timestamptz;

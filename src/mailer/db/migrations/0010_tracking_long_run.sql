-- Tracking over the long run (issue 16): the event clock behind silence detection, the
-- checkpoints of `mailer mailjet backfill`, and the events a backfill stored.

-- When Mailer last received a callback event of each type (`type` = Mailjet's event), and,
-- in the row `accepted`, when Mailjet last accepted a send and since when accepted sends
-- wait for a `sent` event (ops/event_clock.py). Written at most every few seconds per
-- process and type, outside the intake and recording transactions.
CREATE TABLE event_clock (
    type           text PRIMARY KEY,
    last_at        timestamptz NOT NULL,
    waiting_since  timestamptz
);

-- One row per backfill window; `next_offset` is the checkpoint in Mailjet's /message list,
-- so an interrupted run resumes where it stopped (tracking/backfill.py).
CREATE TABLE mailjet_backfills (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_ts            timestamptz NOT NULL,
    to_ts              timestamptz NOT NULL,
    next_offset        integer NOT NULL DEFAULT 0,
    total              integer,
    messages_seen      integer NOT NULL DEFAULT 0,
    histories_fetched  integer NOT NULL DEFAULT 0,
    events_stored      integer NOT NULL DEFAULT 0,
    calls              integer NOT NULL DEFAULT 0,
    started_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);

-- Events a backfill rebuilt from /v3/REST/messagehistory carry `mailer_backfill` in their
-- raw object. A callback posted later for the same message, type and second is the same
-- event and is not stored again (insert_events probes this index, which holds only them).
CREATE INDEX events_backfilled ON events (message_id, type, occurred_at)
    WHERE raw ? 'mailer_backfill';

-- The clock starts from what is stored: the last event of each type among the latest
-- 100,000 (a bounded backward scan of the primary key, as `mailer status` did before).
INSERT INTO event_clock (type, last_at)
SELECT type, max(received_at)
FROM (SELECT type, received_at, understood, is_test FROM events ORDER BY id DESC LIMIT 100000) e
WHERE type IS NOT NULL AND understood AND NOT is_test
GROUP BY type;

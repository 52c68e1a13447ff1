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

-- The suppression lifecycle: an entry may expire (it then no longer blocks sending, and a
-- new suppressing event or a new entry takes its place), and every change of an address's
-- entry is kept, readable forever (GET /suppressions/{email}/history).
ALTER TABLE suppressions ADD COLUMN expires_at timestamptz;

-- One row per change: `suppressed` (with the reason, the causing event if any, and the
-- expiry) or `reactivated` (with the reason given for it). `actor`: `event`, `api`, `cli`,
-- `reprocess`. No foreign key: the history outlives the entry (and is written by a
-- trigger while an app's entries are deleted with the app).
CREATE TABLE suppression_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      uuid NOT NULL,
    email       text NOT NULL,
    action      text NOT NULL CHECK (action IN ('suppressed', 'reactivated')),
    reason      text NOT NULL,
    event_id    bigint,
    expires_at  timestamptz,
    actor       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppression_history_address ON suppression_history (app_id, email, id);

INSERT INTO suppression_history (app_id, email, action, reason, event_id, actor, at)
SELECT app_id, email, 'suppressed', reason, event_id,
       CASE WHEN event_id IS NULL THEN 'api' ELSE 'event' END, created_at
FROM suppressions
ORDER BY created_at;

-- Every write path of `suppressions` (events at intake, the API, the CLI, reprocessing)
-- is recorded by this trigger, so none can forget to. A deliberate change says why and by
-- whom with set_config('mailer.suppression_reason' / 'mailer.actor', …, true) in its
-- transaction (tracking/suppressions.py); unset, the actor is told by the causing event.
CREATE FUNCTION record_suppression_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    given_reason text := nullif(current_setting('mailer.suppression_reason', true), '');
    given_actor  text := nullif(current_setting('mailer.actor', true), '');
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO suppression_history (app_id, email, action, reason, actor)
        VALUES (OLD.app_id, OLD.email, 'reactivated', coalesce(given_reason, 'unspecified'),
                coalesce(given_actor, 'unknown'));
        RETURN OLD;
    END IF;
    INSERT INTO suppression_history (app_id, email, action, reason, event_id, expires_at, actor)
    VALUES (NEW.app_id, NEW.email, 'suppressed', NEW.reason, NEW.event_id, NEW.expires_at,
            coalesce(given_actor, CASE WHEN NEW.event_id IS NULL THEN 'api' ELSE 'event' END));
    RETURN NEW;
END
$$;

CREATE TRIGGER suppressions_history
    AFTER INSERT OR UPDATE OR DELETE ON suppressions
    FOR EACH ROW EXECUTE FUNCTION record_suppression_change();

-- One vocabulary for event types: a soft bounce's webhook is `email.delivery_delayed` (it
-- was `email.deferred`; endpoints given the old name still get it).
UPDATE webhook_endpoints
SET event_types = array_replace(event_types, 'email.deferred', 'email.delivery_delayed')
WHERE 'email.deferred' = ANY(event_types);

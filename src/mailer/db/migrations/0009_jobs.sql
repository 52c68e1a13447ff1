-- Finding and acting on jobs (issue 15): tags, the `GET /jobs` indexes, cancel and retry.

-- The app's tags, as given (at most 10, each 1-64 of [A-Za-z0-9_.:-], delivery/email.py);
-- null: none. Shown in /status, the feed and webhooks; `job_tags` is what filters by them.
ALTER TABLE jobs ADD COLUMN tags text[];

-- A job's tags again, one row per tag, so that `/jobs?tag=` reads its page newest first
-- from one index range (a GIN index on `jobs.tags` would find every job with the tag, then
-- sort them all). Job ids are UUIDv7: their order is the order of creation.
CREATE TABLE job_tags (
    app_id  uuid NOT NULL,
    tag     text NOT NULL,
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, tag, job_id)
);
CREATE INDEX job_tags_job ON job_tags (job_id);

-- A job the app canceled before it was sent: never claimed again.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('queued', 'sending', 'done', 'failed', 'canceled'));

-- `POST /jobs/{id}/retry`: what each earlier round of attempts ended with
-- ([{"attempts", "error", "failed_at", "recipients": [{"email", "error"}]}], oldest first),
-- and when the job was last put back, from which the retry policy counts its age.
ALTER TABLE jobs
    ADD COLUMN history jsonb,
    ADD COLUMN retried_at timestamptz;

-- `GET /jobs`, newest first: every page is one range of one of these indexes.
CREATE INDEX jobs_by_app ON jobs (app_id, id);
-- Jobs not yet done (by state), for `status=queued|sending|canceled|failed`.
CREATE INDEX jobs_by_app_state ON jobs (app_id, state, id) WHERE state <> 'done';
-- Any recipient, case-insensitively (addresses are stored lower-cased).
CREATE INDEX messages_by_app_email ON messages (app_id, email, job_id);

-- A job's status as /status derives it (tracking/precedence.py, `derive_job_status`):
-- its queue state while in the queue (or canceled), else the least advanced status of the
-- recipients that went to Mailjet, by `chain` (STATUS_CHAIN, lowest first); when none
-- went, `failed` if one failed, else `suppressed`. A property test holds it to the Python.
CREATE FUNCTION derived_job_status(state text, statuses text[], chain text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN state IN ('queued', 'sending', 'canceled') THEN state
        ELSE coalesce(
            (SELECT s FROM unnest(statuses) AS s
             WHERE s NOT IN ('failed', 'suppressed')
             ORDER BY array_position(chain, s)
             LIMIT 1),
            CASE WHEN 'failed' = ANY (statuses) THEN 'failed' ELSE 'suppressed' END)
    END
$$;

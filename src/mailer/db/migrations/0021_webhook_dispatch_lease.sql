-- Webhook dispatch past the disk's flush (issue 20; docs/benchmarks.md, "Webhook dispatch").
--
-- A claim's commit no longer waits for its WAL to be flushed (`synchronous_commit` off for
-- the claim's transaction alone; it is an autocommitted statement, so the setting ends with
-- it). That wait (an fdatasync, ~8 ms here) was the dispatch's bound: the claim loop makes
-- one claim at a time, so at most 16 deliveries per flush. Losing a claim loses nothing: a
-- crash of PostgreSQL before the flush forgets the lease and the attempt count, so the
-- delivery is simply due again, as after a dispatcher that died mid-request (delivery is
-- at least once). Its attempt cannot be recorded meanwhile without the claim reaching the
-- disk first: the record commits synchronously, and its flush covers all the WAL before it.

CREATE OR REPLACE FUNCTION claim_webhook_deliveries(
    n integer, at timestamptz, dispatcher text, lease_s double precision
) RETURNS TABLE (
    id uuid, endpoint_id uuid, event_id text, body text, attempts integer, manual boolean,
    created_at timestamptz, url text, secrets text[]
)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    -- The claim's commit need not wait for its WAL to reach the disk (see above).
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH due AS (
        SELECT d.ctid AS tid FROM webhook_deliveries d
        JOIN webhook_endpoints w ON w.id = d.endpoint_id
        WHERE d.state = 'pending' AND d.next_attempt_at <= at AND w.enabled
        ORDER BY d.next_attempt_at, d.id
        LIMIT n
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + 1,
        next_attempt_at = at + make_interval(secs => lease_s),
        locked_by = dispatcher
    WHERE d.ctid = ANY (ARRAY(SELECT due.tid FROM due))
    RETURNING d.id, d.endpoint_id, d.event_id, d.body, d.attempts, d.manual, d.created_at,
              (SELECT w.url FROM webhook_endpoints w WHERE w.id = d.endpoint_id),
              (SELECT CASE WHEN w.previous_expires_at > at
                           THEN ARRAY[w.secret, w.previous_secret] ELSE ARRAY[w.secret] END
               FROM webhook_endpoints w WHERE w.id = d.endpoint_id);
END
$$;

-- Recording, unchanged but for three things. Its UPDATE goes by TID scan whatever the
-- planner thinks of the table's size (below). And two things cost each call more than its rows did
-- (a batch is often only a few attempts): the endpoints' run of failures is judged only
-- when an attempt failed or an endpoint of the batch is failing (else that query, its
-- window functions and its locks, found nothing to write), and both functions keep one
-- generic plan per statement (`plan_cache_mode`) instead of planning each call again for
-- its arrays' lengths; their plans go by ctid and key probes, so no plan is better.
CREATE OR REPLACE FUNCTION record_webhook_attempts(
    ids uuid[], states text[], next_ats timestamptz[], ats timestamptz[],
    statuses integer[], errors text[], responses text[], durations integer[],
    attempt_numbers integer[], endpoint_ids uuid[], event_ids text[],
    dispatcher text, disable_after interval
) RETURNS TABLE (delivery_id uuid, disabled text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    planner text[];
    tids tid[];
    mine uuid[];
    e record;
    disabled_ids uuid[] := '{}';
    disabled_whys text[] := '{}';
BEGIN
    -- Each id probes the primary key alone (a plan that cannot become a scan).
    SELECT coalesce(array_agg(t.tid), '{}') INTO tids
    FROM unnest(ids) AS u(id)
    CROSS JOIN LATERAL (
        SELECT d.ctid AS tid FROM webhook_deliveries d WHERE d.id = u.id OFFSET 0
    ) t;

    -- The UPDATE below may reach the deliveries by TID scan alone. Its plan joins them to
    -- the batch on `id`, and a planner that takes the table for a row or so (no statistics)
    -- preferred a full scan of the primary key with `ctid` as a mere filter: in the bench
    -- (10,000 deliveries) that was 20 ms a record and 2/3 of PostgreSQL's CPU. The other
    -- scans are off for this statement alone (its plan is made, and kept, under them).
    planner := ARRAY[current_setting('enable_seqscan'), current_setting('enable_indexscan'),
                     current_setting('enable_bitmapscan')];
    PERFORM set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true),
            set_config('enable_bitmapscan', 'off', true);
    WITH written AS (
        UPDATE webhook_deliveries d
        SET state = u.state,
            next_attempt_at = coalesce(u.next_at, d.next_attempt_at),
            finished_at = CASE WHEN u.state = 'pending' THEN NULL ELSE u.at END,
            last_status = u.status,
            last_error = u.error,
            manual = CASE WHEN u.state = 'pending' THEN d.manual ELSE false END,
            locked_by = NULL
        FROM unnest(ids, states, next_ats, ats, statuses, errors)
             AS u(id, state, next_at, at, status, error)
        -- By `ctid` (a TID scan): a plan made without statistics may otherwise scan every
        -- delivery. A row whose claim was taken over meanwhile is left alone (its new
        -- version fails `locked_by`).
        WHERE d.ctid = ANY (tids) AND d.id = u.id AND d.locked_by = dispatcher
        RETURNING d.id
    )
    SELECT coalesce(array_agg(w.id), '{}') INTO mine FROM written w;
    PERFORM set_config('enable_seqscan', planner[1], true),
            set_config('enable_indexscan', planner[2], true),
            set_config('enable_bitmapscan', planner[3], true);

    INSERT INTO webhook_attempts
        (delivery_id, endpoint_id, event_id, attempt, status_code, duration_ms, error,
         response, created_at)
    SELECT u.id, u.endpoint_id, u.event_id, u.attempt, u.status, u.duration, u.error,
           u.response, u.at
    FROM unnest(ids, endpoint_ids, event_ids, attempt_numbers, statuses, durations, errors,
                responses, ats) WITH ORDINALITY
         AS u(id, endpoint_id, event_id, attempt, status, duration, error, response, at, ord)
    WHERE u.id = ANY (mine)
    ORDER BY u.ord;

    -- The common case, every attempt a success to endpoints with no run of failures,
    -- writes nothing to the endpoints: one cheap look instead of the query below.
    IF NOT EXISTS (
        SELECT 1 FROM unnest(ids, statuses) AS u(id, status)
        WHERE u.id = ANY (mine) AND NOT coalesce(u.status BETWEEN 200 AND 299, false)
    ) AND NOT EXISTS (
        SELECT 1 FROM webhook_endpoints w
        WHERE w.id = ANY (endpoint_ids) AND w.first_failure_at IS NOT NULL
    ) THEN
        RETURN QUERY SELECT m.id, NULL::text FROM unnest(mine) AS m(id);
        RETURN;
    END IF;

    -- Per endpoint: where its run of failures starts after the batch (null: the last
    -- attempt succeeded), and the first attempt that disables it, if any.
    FOR e IN
        WITH batch AS (
            SELECT u.ord, u.id, u.endpoint_id, u.at, u.status,
                   coalesce(u.status BETWEEN 200 AND 299, false) AS ok
            FROM unnest(ids, endpoint_ids, ats, statuses) WITH ORDINALITY
                 AS u(id, endpoint_id, at, status, ord)
            WHERE u.id = ANY (mine)
        ), locked AS (
            -- Only endpoints with something to write, locked in id order (two dispatchers
            -- recording for the same endpoints never deadlock): a batch of successes to an
            -- endpoint with no run of failures writes nothing and waits for no one.
            SELECT w.id, w.first_failure_at FROM webhook_endpoints w
            WHERE w.id IN (SELECT b.endpoint_id FROM batch b)
              AND (w.first_failure_at IS NOT NULL
                   OR EXISTS (SELECT 1 FROM batch b WHERE b.endpoint_id = w.id AND NOT b.ok))
            ORDER BY w.id
            FOR UPDATE OF w
        ), runs AS (
            -- `run`: the successes up to this attempt. The failures after the same success
            -- are one run; run 0 continues the endpoint's own, if it had one.
            SELECT b.*, l.first_failure_at AS before,
                   count(*) FILTER (WHERE b.ok)
                       OVER (PARTITION BY b.endpoint_id ORDER BY b.ord) AS run
            FROM batch b JOIN locked l ON l.id = b.endpoint_id
        ), judged AS (
            SELECT r.*,
                   CASE WHEN r.ok THEN NULL
                        WHEN r.run = 0 THEN coalesce(r.before, min(r.at) FILTER (WHERE NOT r.ok)
                                                     OVER (PARTITION BY r.endpoint_id, r.run))
                        ELSE min(r.at) FILTER (WHERE NOT r.ok)
                                 OVER (PARTITION BY r.endpoint_id, r.run)
                   END AS run_started
            FROM runs r
        ), verdicts AS (
            SELECT j.*, NOT j.ok AND (j.status IS NOT DISTINCT FROM 410
                                      OR j.at - j.run_started >= disable_after) AS disables
            FROM judged j
        )
        SELECT v.endpoint_id,
               (array_agg(v.run_started ORDER BY v.ord DESC))[1] AS first_failure_at,
               (array_agg(v.id ORDER BY v.ord) FILTER (WHERE v.disables))[1] AS disabled_by,
               (array_agg(v.at ORDER BY v.ord) FILTER (WHERE v.disables))[1] AS disabled_at,
               (array_agg(v.status ORDER BY v.ord) FILTER (WHERE v.disables))[1] AS status,
               (array_agg(v.run_started ORDER BY v.ord) FILTER (WHERE v.disables))[1] AS since
        FROM verdicts v
        GROUP BY v.endpoint_id
        ORDER BY v.endpoint_id
    LOOP
        UPDATE webhook_endpoints SET first_failure_at = e.first_failure_at
        WHERE id = e.endpoint_id AND first_failure_at IS DISTINCT FROM e.first_failure_at;
        IF e.disabled_by IS NOT NULL THEN
            UPDATE webhook_endpoints
            SET enabled = false,
                disabled_reason = CASE
                    WHEN e.status = 410 THEN 'the endpoint answered 410 Gone'
                    ELSE format('every delivery failed for %s days (since %s)',
                                extract(day FROM justify_hours(disable_after)),
                                to_char(e.since AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
                END,
                disabled_at = e.disabled_at,
                updated_at = e.disabled_at
            WHERE id = e.endpoint_id AND enabled;
            IF FOUND THEN
                disabled_ids := disabled_ids || e.disabled_by;
                disabled_whys := disabled_whys
                    || CASE WHEN e.status = 410 THEN 'gone' ELSE 'failing' END;
            END IF;
        END IF;
    END LOOP;

    RETURN QUERY
    SELECT m.id, x.why
    FROM unnest(mine) AS m(id)
    LEFT JOIN unnest(disabled_ids, disabled_whys) AS x(id, why) ON x.id = m.id;
END
$$;

-- Recording what Mailjet accepted in one round trip (docs/tracking.md, "Linking").
--
-- Functions, not plain statements, because a function's queries each take a fresh snapshot
-- (they are VOLATILE): a query that runs after an advisory lock was granted sees what the
-- lock's previous holder committed, which no single SQL statement can do.

-- Lock the MessageID buckets (`id mod 2^20`, lock space 7315) of `ids` for this
-- transaction, in key order: shared for writers of MessageIDs, exclusive for the inserter
-- of an event that stayed unlinked.
CREATE FUNCTION lock_message_id_buckets(ids int8[], exclusive boolean) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bucket int;
BEGIN
    FOR bucket IN
        SELECT DISTINCT (id % 1048576)::int FROM unnest(ids) AS id
        WHERE id IS NOT NULL AND id <> 0
        ORDER BY 1
    LOOP
        IF exclusive THEN
            PERFORM pg_advisory_xact_lock(7315, bucket);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(7315, bucket);
        END IF;
    END LOOP;
END
$$;

-- Record a Send API call's accepted recipients (MessageID, MessageUUID; a status already
-- moved on by an event stays) and close the jobs it answered for, under the MessageIDs'
-- bucket locks. With `unless_pending`, write nothing and answer false if an unlinked event
-- might be waiting for one of these recipients (by MessageID, or by CustomID): the caller
-- then records in a transaction that links such events too. Else answer true.
CREATE FUNCTION record_sends(
    job_ids uuid[], positions int2[], message_ids int8[], message_uuids text[],
    finished_ids uuid[], finished_states text[], finished_errors jsonb[],
    unless_pending boolean
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM lock_message_id_buckets(message_ids, false);
    -- A fresh snapshot, taken after the locks: it sees every event whose inserter held
    -- one of these buckets before us.
    IF unless_pending AND (
        EXISTS (
            SELECT 1 FROM events e
            WHERE e.job_id IS NULL AND e.message_id <> 0 AND e.message_id = ANY (message_ids)
        )
        OR EXISTS (
            SELECT 1 FROM events e
            WHERE e.job_id IS NULL AND e.custom_job_id IS NOT NULL
              AND e.custom_job_id = ANY (job_ids)
        )
    ) THEN
        RETURN false;
    END IF;

    UPDATE messages m
    SET status = CASE WHEN m.status IN ('queued', 'failed') THEN 'accepted' ELSE m.status END,
        message_id = u.message_id,
        message_uuid = u.message_uuid,
        error = NULL,
        updated_at = now()
    FROM unnest(job_ids, positions, message_ids, message_uuids)
         AS u(job_id, position, message_id, message_uuid)
    WHERE m.job_id = u.job_id AND m.position = u.position;

    UPDATE jobs j
    SET state = u.state,
        last_error = u.error,
        locked_until = NULL,
        locked_by = NULL,
        needs_lookup = false,
        sent_at = CASE WHEN u.state = 'done' THEN now() ELSE j.sent_at END,
        updated_at = now()
    FROM unnest(finished_ids, finished_states, finished_errors) AS u(id, state, error)
    WHERE j.id = u.id AND j.state IN ('sending', 'queued');

    RETURN true;
END
$$;

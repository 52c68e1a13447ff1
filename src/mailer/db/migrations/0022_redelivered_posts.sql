-- Redelivered callback bodies (issue 20, the events benchmark; tracking/intake.py): Mailjet
-- posts a body again when our 200 did not reach it, and a body all of whose events are
-- stored already is stored again, as received, by this one call and nothing else.
--
-- Stores the body and answers its id when every one of `keys` (its events' dedupe keys)
-- is in events_dedupe_key; stores nothing and answers NULL as soon as one is not (a new
-- body: the first key probed usually). A function for its SET: without statistics
-- (autovacuum off, or a table grown since its last ANALYZE) the plan made while `events`
-- was small, and kept for the session, was a hash anti join over a sequential scan of the
-- whole table (7 ms a body at 6,400 events, growing with the table) instead of one probe
-- of the unique index per key (0.15 ms for 100).
CREATE FUNCTION store_post_if_stored(
    n_events integer, posted bytea, arrived timestamptz, keys bytea[]
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    post_id bigint;
BEGIN
    IF EXISTS (
        SELECT FROM unnest(keys) AS k(key)
        WHERE NOT EXISTS (SELECT FROM events e WHERE e.dedupe_key = k.key)
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO event_posts (event_count, body, received_at)
    VALUES (n_events, posted, arrived)
    RETURNING id INTO post_id;
    RETURN post_id;
END
$$;

-- The claim's choice of due jobs, in a function of its own for its `SET enable_sort = off`
-- (issue 20; the same remedy as 0020's claim of webhook deliveries). Without statistics
-- that cover the backlog (a burst into a fresh table, or one that grew since its last
-- ANALYZE: autovacuum analyzes a minute or more later), the planner took the due range
-- for a few rows and, for every claim, read and sorted all the due jobs, on disk past
-- work_mem: 110 ms a claim of 500 at 100,000 due, against 15 ms walking `jobs_due` in
-- run_at order and stopping at the 500th. PL/pgSQL keeps the plan for the session; the
-- rows it locks stay locked for the calling statement's transaction.
CREATE FUNCTION due_jobs(n integer) RETURNS TABLE (id uuid, app_id uuid)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
AS $$
BEGIN
    RETURN QUERY
    SELECT j.id, j.app_id FROM jobs j
    WHERE j.state = 'queued' AND NOT j.held AND j.run_at <= now()
    ORDER BY j.run_at
    LIMIT n
    FOR UPDATE SKIP LOCKED;
END
$$;

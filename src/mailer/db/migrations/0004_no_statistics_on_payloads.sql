-- No query filters or joins on these JSON payloads, so the planner needs no statistics
-- about them; gathering them (by autovacuum, or by the worker's housekeeping when
-- autovacuum is off) would cost more than everything else ANALYZE reads from these tables.
ALTER TABLE jobs ALTER COLUMN message SET STATISTICS 0;
ALTER TABLE jobs ALTER COLUMN metadata SET STATISTICS 0;
ALTER TABLE jobs ALTER COLUMN last_error SET STATISTICS 0;
ALTER TABLE messages ALTER COLUMN error SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN details SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN raw SET STATISTICS 0;

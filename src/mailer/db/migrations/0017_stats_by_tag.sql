-- Stats per tag and an indexed feed filter by tag (issues 15 and 16).

-- A job's tags again on each of its recipients' messages and on the events linked to
-- them (null: none, as on `jobs.tags`). The statements that count `stats_hourly` and link
-- events read them from the rows they touch anyway: counting a tagged job's rows per tag
-- needs no lookup of its job, and an untagged job costs nothing more. Columns without a
-- default: adding them rewrites nothing.
ALTER TABLE messages ADD COLUMN tags text[];
ALTER TABLE events ADD COLUMN tags text[];

-- What exists already: the tagged jobs' messages and linked events take their job's tags
-- (their counts from now on go to the tags' rows too; what was counted before stays in
-- the '' rows only).
UPDATE messages m SET tags = j.tags
FROM jobs j
WHERE j.id = m.job_id AND j.tags IS NOT NULL;
UPDATE events e SET tags = m.tags
FROM messages m
WHERE m.job_id = e.job_id AND m.position = e.position AND m.tags IS NOT NULL;

-- `GET /feed?tag=`: the events of the app's jobs with a tag, from this index rather than
-- by walking the whole feed (`events_feed`) and looking at each event's job. Partial: an
-- untagged event costs the index nothing.
CREATE INDEX events_by_tag ON events USING gin (tags) WHERE tags IS NOT NULL;

-- Opens and clicks made by machines (Apple Mail Privacy Protection, security scanners,
-- bots) rather than people: the reason, set at intake (tracking/engagement.py); NULL for
-- a person, and for every event type that is not an open or a click.
ALTER TABLE events ADD COLUMN machine_reason text;

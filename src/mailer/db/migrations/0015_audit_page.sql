-- The dashboard's Audit page (issue 17): entries newest first, filtered by who or by what,
-- each filter read as one range of its own index (the app's is audit_log_app, 0011).
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

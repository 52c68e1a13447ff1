-- The dashboard's message page lists each webhook delivery of a message with its attempts
-- (issue 17): attempts are found by their delivery. Without this index that read scans
-- every attempt of the endpoint; it also spares the ON DELETE CASCADE from deliveries a
-- scan of the attempt log per deleted delivery.
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);

"""Operating Mailer: worker heartbeats, readiness, status, outage handling, activity counts."""

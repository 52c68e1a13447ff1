"""The data lifecycle: erasure of a person's data on request, and retention of the rest.

Both work across the other parts' tables (jobs, events, raw callbacks, webhooks,
suppressions) in SQL of their own, and record what they did in the audit log.
"""

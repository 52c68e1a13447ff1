"""Prometheus metrics: what Mailer counts, and how a scrape reads it.

Every part counts through the functions of :mod:`mailer.metrics.count` (cheap: a dict
lookup and an increment of a pre-bound child; nothing when ``MAILER_METRICS=off``). The
metric objects live in :mod:`mailer.metrics.families`; :mod:`mailer.metrics.exposition`
renders them, across processes when `mailer api --workers N` runs several (prometheus_client's
multiprocess mode, one directory per service start), and :mod:`mailer.metrics.server`
serves a worker's on ``MAILER_METRICS_PORT``. docs/operations.md lists every metric.
"""

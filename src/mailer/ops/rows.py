"""The rows ops's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid

from mailer.db.rows import Column, Row

__all__ = ["AppName", "MetricGauges"]


class MetricGauges(Row):
    """The database-wide gauges of /metrics (``metric_gauges``)."""

    queued = Column[int]()
    sending = Column[int]()
    due = Column[int]()
    oldest_due_seconds = Column[float]()
    live_workers = Column[int]()
    webhooks_pending = Column[int]()
    webhooks_oldest_pending_seconds = Column[float]()
    endpoints_enabled = Column[int]()
    endpoints_disabled = Column[int]()


class AppName(Row):
    """An app's id and name (``app_names``)."""

    id = Column[uuid.UUID]()
    name = Column[str]()

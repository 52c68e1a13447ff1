"""The rows ops' queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["AppName", "DueJobs", "JobStateCount", "MetricGauges", "WorkerRow"]


class WorkerRow(Row):
    """A worker's heartbeat row and whether it is alive (``workers``)."""

    id = Column[str]()
    host = Column[str]()
    pid = Column[int]()
    version = Column[str]()
    started_at = Column[datetime]()
    last_seen_at = Column[datetime]()
    alive = Column[bool]()
    seen_seconds_ago = Column[float]()


class JobStateCount(Row):
    state = Column[str]()
    jobs = Column[int]()


class DueJobs(Row):
    due = Column[int]()
    oldest_seconds = Column[float]()


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

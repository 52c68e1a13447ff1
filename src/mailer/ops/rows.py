"""The rows ops' queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["DueJobs", "JobStateCount", "WorkerRow"]


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


"""The rows ops' queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["DueJobs", "EventTypeSeen", "JobStateCount", "LastPost", "WorkerRow"]


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


class EventTypeSeen(Row):
    """The last event of one type among the latest ones (``recent_event_types``)."""

    type = Column[str | None]()
    last_received = Column[datetime]()
    seconds_ago = Column[float]()
    seen = Column[int]()


class LastPost(Row):
    received_at = Column[datetime]()
    seconds_ago = Column[float]()

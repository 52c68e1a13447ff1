"""The rows the operators' queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["DueJobs", "JobStateCount", "LastPost", "RecentEventType", "Worker"]


class Worker(Row):
    """A worker with a heartbeat row (``workers``)."""

    id = Column[str]()
    host = Column[str]()
    pid = Column[int]()
    version = Column[str]()
    started_at = Column[datetime]()
    last_seen_at = Column[datetime]()
    alive = Column[bool]()
    seen_seconds_ago = Column[float]()


class JobStateCount(Row):
    """How many jobs are in one state (``job_states``)."""

    state = Column[str]()
    jobs = Column[int]()


class DueJobs(Row):
    """Jobs due now, and how long the oldest has waited (``due_jobs``)."""

    due = Column[int]()
    oldest_seconds = Column[float]()


class RecentEventType(Row):
    """The last event of one type among the latest (``recent_event_types``)."""

    type = Column[str | None]()
    last_received = Column[datetime]()
    seconds_ago = Column[float]()
    seen = Column[int]()


class LastPost(Row):
    """When Mailjet last posted a callback (``last_event_post``)."""

    received_at = Column[datetime]()
    seconds_ago = Column[float]()

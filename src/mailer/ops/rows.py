"""The rows the operations queries return (see `mailer.db.rows`)."""

from __future__ import annotations

import datetime as dt

from mailer.db.rows import Column, Row


class WorkerRow(Row):
    """One worker's heartbeat, with whether it counts as alive."""

    id = Column[str]()
    host = Column[str]()
    pid = Column[int]()
    version = Column[str]()
    started_at = Column[dt.datetime]()
    last_seen_at = Column[dt.datetime]()
    alive = Column[bool]()
    seen_seconds_ago = Column[float]()


class StateCountRow(Row):
    """How many jobs are in one queue state."""

    state = Column[str]()
    jobs = Column[int]()


class DueJobsRow(Row):
    """Jobs due now, and the age of the oldest of them."""

    due = Column[int]()
    oldest_seconds = Column[float]()


class EventTypeSeenRow(Row):
    """When an event type was last received (None: a type Mailer did not understand)."""

    type = Column[str | None]()
    last_received = Column[dt.datetime]()
    seconds_ago = Column[float]()
    seen = Column[int]()


class LastPostRow(Row):
    """When Mailjet last posted a callback."""

    received_at = Column[dt.datetime]()
    seconds_ago = Column[float]()

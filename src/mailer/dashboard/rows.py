"""The rows the dashboard's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = [
    "AppRow",
    "JobHeader",
    "LoginFailures",
    "MessageKey",
    "MessageRow",
    "OperatorLogin",
    "OperatorRow",
    "OperatorSeen",
    "PeriodCount",
    "QueueDepth",
    "SessionRow",
    "SuppressionRow",
]


class OperatorRow(Row):
    """An operator as `operators list` shows it (``add_operator``, ``list_operators``)."""

    id = Column[uuid.UUID]()
    name = Column[str]()
    role = Column[str]()
    created_at = Column[datetime]()
    disabled_at = Column[datetime | None]()


class OperatorSeen(OperatorRow):
    """An operator and the last use of any of its sessions (``list_operators``)."""

    last_seen_at = Column[datetime | None]()


class OperatorLogin(Row):
    """What a login checks (``operator_for_login``)."""

    id = Column[uuid.UUID]()
    name = Column[str]()
    role = Column[str]()
    password_hash = Column[str]()


class LoginFailures(Row):
    """Recent failed logins for a name and for an address (``recent_login_failures``)."""

    by_name = Column[int]()
    by_ip = Column[int]()


class SessionRow(Row):
    """A live session and its operator (``session_for_token``)."""

    operator_id = Column[uuid.UUID]()
    name = Column[str]()
    role = Column[str]()
    csrf_token = Column[str]()


class AppRow(Row):
    id = Column[uuid.UUID]()
    name = Column[str]()


class QueueDepth(Row):
    queued = Column[int]()
    due = Column[int]()
    sending = Column[int]()
    oldest_due_seconds = Column[float | None]()


class PeriodCount(Row):
    """Recipients of one app, bucket and status (``period_counts``)."""

    app_id = Column[uuid.UUID]()
    bucket = Column[int]()
    """The index of the bucket in the period, from 0."""
    status = Column[str]()
    recipients = Column[int]()
    counted = Column[int]()


class MessageKey(Row):
    """Where a scan of messages stopped (``scan_edge``)."""

    job_id = Column[uuid.UUID]()
    position = Column[int]()


class MessageRow(Row):
    """One recipient message in a search (``messages_to_recipient``, ``recent_messages``)."""

    job_id = Column[uuid.UUID]()
    position = Column[int]()
    email = Column[str]()
    kind = Column[str]()
    status = Column[str]()
    updated_at = Column[datetime]()
    app_id = Column[uuid.UUID]()
    app = Column[str]()
    state = Column[str]()
    created_at = Column[datetime]()
    subject = Column[str | None]()


class JobHeader(Row):
    """A job of any app, for its page (``job_header``)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    app = Column[str]()
    idempotency_key = Column[str | None]()
    state = Column[str]()
    created_at = Column[datetime]()
    subject = Column[str | None]()
    sender = Column[str | None]()


class SuppressionRow(Row):
    """A suppressed address and its source event (``search_suppressions``)."""

    app_id = Column[uuid.UUID]()
    app = Column[str]()
    email = Column[str]()
    reason = Column[str]()
    event_id = Column[int | None]()
    created_at = Column[datetime]()
    event_type = Column[str | None]()
    event_at = Column[datetime | None]()

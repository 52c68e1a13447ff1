"""The rows the dashboard's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mailer.db.rows import Column, Row

__all__ = [
    "AppRow",
    "AuditRow",
    "BulkJob",
    "JobHeader",
    "LimitedApp",
    "LoginFailures",
    "MessageKey",
    "MessageRow",
    "OperatorLogin",
    "OperatorRow",
    "OperatorSeen",
    "PeriodCount",
    "QueueCount",
    "QueueDepth",
    "QueueWait",
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


class QueueCount(Row):
    """An app's jobs in one state, counted up to a cap (``queue_by_app``)."""

    app_id = Column[uuid.UUID]()
    app = Column[str]()
    state = Column[str]()
    jobs = Column[int]()


class QueueWait(Row):
    """An app's queued jobs that wait for the same kind of reason (``queued_by_wait``)."""

    app_id = Column[uuid.UUID]()
    ahead = Column[bool]()
    """Their time (`send_at`, or the next attempt's) is still ahead."""
    attempted = Column[bool]()
    jobs = Column[int]()
    first_run_at = Column[datetime]()
    oldest_created_at = Column[datetime]()
    now = Column[datetime]()


class LimitedApp(Row):
    """An app that is paused or has a rate or quota (``limited_apps``)."""

    app_id = Column[uuid.UUID]()
    app = Column[str]()
    paused_at = Column[datetime | None]()
    rate_per_second = Column[float | None]()
    daily_quota = Column[int | None]()


class AuditRow(Row):
    """An audit entry on the Audit page, with where its page's look stopped
    (``audit_page``: one row with only `scan_floor` and `scanned` when none matched)."""

    id = Column[int | None]()
    at = Column[datetime | None]()
    app_id = Column[uuid.UUID | None]()
    app = Column[str | None]()
    actor = Column[str | None]()
    action = Column[str | None]()
    target = Column[str | None]()
    source = Column[str | None]()
    details = Column[dict[str, Any] | None]()
    scan_floor = Column[int | None]()
    scanned = Column[int]()


class BulkJob(Row):
    """A job a bulk action is for (``bulk_jobs``)."""

    id = Column[uuid.UUID]()

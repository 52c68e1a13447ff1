"""The rows the dashboard's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mailer.db.rows import Column, Row

__all__ = [
    "AppRow",
    "AttemptLogRow",
    "AuditRow",
    "BulkJob",
    "DeliveryRow",
    "EndpointRow",
    "JobHeader",
    "LimitedApp",
    "LoginFailures",
    "MessageDelivery",
    "MessageKey",
    "MessageRow",
    "OperatorLogin",
    "OperatorRow",
    "OperatorSeen",
    "QueueCount",
    "QueueDepth",
    "QueueWait",
    "RawEvent",
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


class RawEvent(Row):
    """One event kept for a job's recipient, as Mailjet posted it (``message_events``)."""

    id = Column[int]()
    position = Column[int]()
    email = Column[str]()
    type = Column[str | None]()
    occurred_at = Column[datetime]()
    received_at = Column[datetime]()
    understood = Column[bool]()
    raw = Column[Any]()


class MessageDelivery(Row):
    """A webhook delivery of one of a job's events, with its attempts
    (``message_deliveries``)."""

    id = Column[uuid.UUID]()
    endpoint_id = Column[uuid.UUID]()
    url = Column[str]()
    event_id = Column[str]()
    event_type = Column[str]()
    state = Column[str]()
    attempts = Column[int]()
    next_attempt_at = Column[datetime]()
    created_at = Column[datetime]()
    finished_at = Column[datetime | None]()
    attempt_log = Column[list[dict[str, Any]]]()
    """Its latest attempts, oldest first: attempt, status_code, duration_ms, error,
    created_at (an ISO text)."""


class EndpointRow(Row):
    """A webhook endpoint of any app, without its secrets (``webhook_endpoints``)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    app = Column[str]()
    url = Column[str]()
    description = Column[str | None]()
    event_types = Column[list[str] | None]()
    enabled = Column[bool]()
    disabled_reason = Column[str | None]()
    disabled_at = Column[datetime | None]()
    first_failure_at = Column[datetime | None]()
    created_at = Column[datetime]()


class AttemptLogRow(Row):
    """One attempt of the delivery log (``recent_attempts``)."""

    id = Column[int]()
    delivery_id = Column[uuid.UUID]()
    endpoint_id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    app = Column[str]()
    url = Column[str]()
    event_id = Column[str]()
    event_type = Column[str]()
    state = Column[str]()
    """The delivery's state now (pending, delivered, failed)."""
    attempt = Column[int]()
    status_code = Column[int | None]()
    duration_ms = Column[int]()
    error = Column[str | None]()
    created_at = Column[datetime]()


class DeliveryRow(Row):
    """One webhook delivery of any app, for its replay (``webhook_delivery``)."""

    id = Column[uuid.UUID]()
    endpoint_id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    app = Column[str]()
    url = Column[str]()
    enabled = Column[bool]()
    event_id = Column[str]()
    event_type = Column[str]()
    state = Column[str]()
    attempts = Column[int]()
    last_status = Column[int | None]()
    last_error = Column[str | None]()
    created_at = Column[datetime]()


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

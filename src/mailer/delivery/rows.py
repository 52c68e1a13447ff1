"""The rows the send path's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mailer.db.rows import Column, Row

__all__ = [
    "AppIdRow",
    "ClaimedRow",
    "ExistingJob",
    "FailedRecipient",
    "LimitsRow",
    "PacingRow",
    "ReleasedRow",
    "StoredJob",
]


class ClaimedRow(Row):
    """A job just leased to a worker (``claim_jobs``), its recipients as parallel arrays in
    position order (``None`` for a job without messages)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    message = Column[dict[str, Any]]()
    attempts = Column[int]()
    created_at = Column[datetime]()
    needs_lookup = Column[bool]()
    positions = Column[list[int] | None]()
    kinds = Column[list[str] | None]()
    emails = Column[list[str] | None]()
    statuses = Column[list[str] | None]()


class FailedRecipient(Row):
    """A recipient just failed (``record_rejected``), as its ``email.failed`` needs it."""

    job_id = Column[uuid.UUID]()
    position = Column[int]()
    app_id = Column[uuid.UUID]()
    email = Column[str]()
    error = Column[dict[str, Any]]()
    metadata = Column[Any]()
    failed_at = Column[datetime]()


class LimitsRow(Row):
    """An app's pause, rate, quota and token bucket (``app_limits``), read at ``now``."""

    app_id = Column[uuid.UUID]()
    paused_at = Column[datetime | None]()
    rate_per_second = Column[float | None]()
    daily_quota = Column[int | None]()
    tokens = Column[float]()
    tokens_at = Column[datetime]()
    now = Column[datetime]()


class ReleasedRow(Row):
    """How many held jobs ``release_held`` put back in the open queue."""

    released = Column[int]()


class AppIdRow(Row):
    """One app's id (``quota_apps``)."""

    app_id = Column[uuid.UUID]()


class PacingRow(Row):
    """Slots booked on the account's Mailjet pace (``reserve_mailjet_calls``)."""

    first_slot = Column[datetime]()
    now = Column[datetime]()


class StoredJob(Row):
    """A job ``insert_jobs`` stored (``id`` None: the row that says it notified)."""

    id = Column[uuid.UUID | None]()


class ExistingJob(Row):
    """A job found by its idempotency key (``jobs_by_idempotency_key``)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    idempotency_key = Column[str]()
    request_hash = Column[bytes | None]()

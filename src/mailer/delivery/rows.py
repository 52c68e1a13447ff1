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
    "JobDocument",
    "JobMessage",
    "JobRow",
    "JobState",
    "LimitsRow",
    "ListedJob",
    "PacingRow",
    "ReleasedRow",
    "Rescheduled",
    "StoredJob",
    "SuppressedRecipient",
]


class ClaimedRow(Row):
    """A job just leased to a worker (``claim_jobs``), its recipients as parallel arrays in
    position order (``None`` for a job without messages)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    message = Column[dict[str, Any]]()
    attempts = Column[int]()
    created_at = Column[datetime]()
    retried_at = Column[datetime | None]()
    needs_lookup = Column[bool]()
    lookup_missed = Column[bool]()
    tags = Column[list[str] | None]()
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
    tags = Column[list[str] | None]()
    failed_at = Column[datetime]()
    retries = Column[int]()
    """How often the app retried the job before (`POST /jobs/{id}/retry`)."""


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


class JobRow(Row):
    """A job as its status document needs it (``job_status``, ``list_jobs``)."""

    id = Column[uuid.UUID]()
    state = Column[str]()
    attempts = Column[int]()
    run_at = Column[datetime]()
    last_error = Column[Any]()
    metadata = Column[Any]()
    tags = Column[list[str] | None]()
    created_at = Column[datetime]()
    updated_at = Column[datetime]()
    sent_at = Column[datetime | None]()


class JobMessage(Row):
    """One recipient of a job (``job_messages``)."""

    position = Column[int]()
    kind = Column[str]()
    email = Column[str]()
    status = Column[str]()
    message_id = Column[int | None]()
    error = Column[Any]()
    updated_at = Column[datetime]()
    merged = Column[list[dict[str, str]] | None]()


class JobDocument(JobRow):
    """A job with what its earlier rounds ended with (``job_status``)."""

    history = Column[list[Any] | None]()


class ListedJob(JobRow):
    """A job of a `GET /jobs` page (``list_jobs`` …), its recipients as parallel arrays;
    on a short page, how far the scan went (else null). A page that found no job is one
    row of nulls but those two."""

    idempotency_key = Column[str | None]()
    subject = Column[str | None]()
    emails = Column[list[str]]()
    kinds = Column[list[str]]()
    statuses = Column[list[str]]()
    scan_floor = Column[uuid.UUID | None]()
    scanned = Column[int | None]()


class JobState(Row):
    """Where a job stands in the queue (``job_state``)."""

    state = Column[str]()
    needs_lookup = Column[bool]()


class Rescheduled(Row):
    """A scheduled job moved (``reschedule_job``)."""

    run_at = Column[datetime]()
    notified = Column[int]()


class SuppressedRecipient(Row):
    """A recipient not sent to for its suppressed address (``suppressed_recipients``), as
    its ``email.suppressed`` needs it; ``reason`` is the suppression's (None if it was
    lifted since)."""

    job_id = Column[uuid.UUID]()
    position = Column[int]()
    app_id = Column[uuid.UUID]()
    email = Column[str]()
    reason = Column[str | None]()
    metadata = Column[Any]()
    tags = Column[list[str] | None]()
    suppressed_at = Column[datetime]()

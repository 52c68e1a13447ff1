"""The rows the send path's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mailer.db.rows import Column, Row

__all__ = ["ClaimedRow", "FailedRecipient", "SuppressedRecipient"]


class ClaimedRow(Row):
    """A job just leased to a worker (``claim_jobs``), its recipients as parallel arrays in
    position order (``None`` for a job without messages)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    message = Column[dict[str, Any]]()
    attempts = Column[int]()
    created_at = Column[datetime]()
    needs_lookup = Column[bool]()
    lookup_missed = Column[bool]()
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
    suppressed_at = Column[datetime]()

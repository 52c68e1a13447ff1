"""The rows the webhook queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["Attempt", "ClaimedDelivery", "Endpoint", "EndpointSecrets"]


class ClaimedDelivery(Row):
    """A delivery leased to a dispatcher (``claim``), with what signing and sending need."""

    id = Column[uuid.UUID]()
    endpoint_id = Column[uuid.UUID]()
    event_id = Column[str]()
    body = Column[str]()
    attempts = Column[int]()
    """Attempts so far, this one included."""
    manual = Column[bool]()
    created_at = Column[datetime]()
    """When the delivery was written (with its event): the start of its lag."""
    url = Column[str]()
    secrets = Column[list[str]]()
    """Every secret that signs now (sealed): the current one, and the previous during a
    rotation."""


class Endpoint(Row):
    """A webhook endpoint (its queries return the whole row)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    url = Column[str]()
    description = Column[str | None]()
    event_types = Column[list[str] | None]()
    enabled = Column[bool]()
    disabled_reason = Column[str | None]()
    disabled_at = Column[datetime | None]()
    secret = Column[str]()
    """Sealed (see :mod:`mailer.webhooks.sealed`)."""
    previous_secret = Column[str | None]()
    previous_expires_at = Column[datetime | None]()
    first_failure_at = Column[datetime | None]()
    created_at = Column[datetime]()
    updated_at = Column[datetime]()


class EndpointSecrets(Row):
    """An endpoint's stored (sealed, or clear from before sealing) secrets."""

    id = Column[uuid.UUID]()
    secret = Column[str]()
    previous_secret = Column[str | None]()


class Attempt(Row):
    """One logged delivery attempt (``list_attempts``)."""

    id = Column[int]()
    delivery_id = Column[uuid.UUID]()
    event_id = Column[str]()
    attempt = Column[int]()
    status_code = Column[int | None]()
    duration_ms = Column[int]()
    error = Column[str | None]()
    response = Column[str | None]()
    created_at = Column[datetime]()

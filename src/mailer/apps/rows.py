"""The rows the apps' queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["AppListing", "AppRow", "KeyGrantRow", "KeyRow"]


class AppRow(Row):
    """An app (``create_app``, ``find_app``; ``create_app`` without ``sender_domains``)."""

    id = Column[uuid.UUID]()
    name = Column[str]()
    created_at = Column[datetime]()
    sender_domains = Column[list[str] | None]()


class AppListing(AppRow):
    """An app as ``mailer apps list`` shows it: its keys, its pause and its limits."""

    active_keys = Column[int]()
    paused_at = Column[datetime | None]()
    rate_per_second = Column[float | None]()
    daily_quota = Column[int | None]()


class KeyRow(Row):
    """An API key as ``keys list`` shows it (never its hash)."""

    id = Column[uuid.UUID]()
    prefix = Column[str]()
    scopes = Column[list[str]]()
    created_at = Column[datetime]()
    last_used_at = Column[datetime | None]()
    revoked_at = Column[datetime | None]()


class KeyGrantRow(Row):
    """An active key found by its prefix, with what its app may send (``key_by_prefix``)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    key_hash = Column[bytes]()
    scopes = Column[list[str]]()
    sender_domains = Column[list[str] | None]()

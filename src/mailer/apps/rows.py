"""The rows the apps queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["AppListing", "AppRow", "FoundApp", "KeyListing", "KeyLookup", "RevokedKey"]


class AppRow(Row):
    """An app (``create_app``, ``find_app``)."""

    id = Column[uuid.UUID]()
    name = Column[str]()
    created_at = Column[datetime]()


class FoundApp(AppRow):
    """An app with the domains it may send from (``find_app``)."""

    sender_domains = Column[list[str] | None]()


class AppListing(FoundApp):
    """An app with its active keys (``list_apps``)."""

    active_keys = Column[int]()
    paused_at = Column[datetime | None]()
    rate_per_second = Column[float | None]()
    daily_quota = Column[int | None]()


class KeyLookup(Row):
    """A live key found by its prefix, with what its grant needs (``key_by_prefix``)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()
    key_hash = Column[bytes]()
    scopes = Column[list[str]]()
    sender_domains = Column[list[str] | None]()
    expires_at = Column[datetime | None]()


class KeyListing(Row):
    """A key as `keys list` shows it (``list_keys``): never its secret."""

    id = Column[uuid.UUID]()
    prefix = Column[str]()
    scopes = Column[list[str]]()
    created_at = Column[datetime]()
    last_used_at = Column[datetime | None]()
    revoked_at = Column[datetime | None]()
    expires_at = Column[datetime | None]()


class RevokedKey(Row):
    """A key just revoked (``revoke_key``)."""

    id = Column[uuid.UUID]()
    app_id = Column[uuid.UUID]()

"""Recording and reading audit entries."""

from __future__ import annotations

import getpass
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.db.rows import Column, Row

Q = Queries("mailer.audit")


@dataclass(frozen=True)
class Actor:
    """Who made a change: ``kind:id`` (``cli:alice``, ``key:<key id>``, ``mailer:worker``)
    and where from (the client's IP for HTTP, the host for the CLI)."""

    kind: str
    id: str
    source: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The operator running a `mailer` command on this machine."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls("cli", user, socket.gethostname())

    @classmethod
    def key(cls, key_id: uuid.UUID, ip: str | None) -> Actor:
        """An app's API key, calling from ``ip``."""
        return cls("key", str(key_id), ip)

    @classmethod
    def system(cls, part: str) -> Actor:
        """Mailer itself (e.g. the worker's retention runs)."""
        return cls("mailer", part, socket.gethostname())

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


class AuditEntry(Row):
    """One audit entry (``entries``)."""

    id = Column[int]()
    at = Column[datetime]()
    app_id = Column[uuid.UUID | None]()
    actor = Column[str]()
    action = Column[str]()
    target = Column[str | None]()
    source = Column[str | None]()
    details = Column[dict[str, Any] | None]()

    def view(self) -> dict[str, Any]:
        """The entry as JSON."""
        return {
            "id": self.id,
            "at": self.at,
            "app_id": None if self.app_id is None else str(self.app_id),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "source": self.source,
            "details": self.details,
        }


async def record(
    conn: Conn,
    actor: Actor,
    action: str,
    *,
    app_id: uuid.UUID | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one entry; call it inside the transaction of the change it records.

    ``action`` is a stable dotted name (``key.created``); ``target`` what it was done to
    (an id, never a secret); ``details`` anything else worth keeping (no secrets either).
    """
    await conn.execute(Q.record, app_id, str(actor), action, target, actor.source, details)


async def entries(
    conn: Conn | asyncpg.Pool,
    *,
    app_id: uuid.UUID | None = None,
    since: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, of one app (None: all), since a time, before an entry id."""
    return await conn.fetch(Q.entries, app_id, since, before, limit, record_class=AuditEntry)

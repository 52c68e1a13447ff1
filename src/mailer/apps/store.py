"""Apps and keys in the database."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mailer.apps import keys
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.ids import uuid7

Q = Queries("mailer.apps")


@dataclass(frozen=True)
class App:
    """An app registered with Mailer."""

    id: uuid.UUID
    name: str
    created_at: datetime


class AppExists(Exception):
    """An app with that name exists already."""


async def create_app(conn: Conn, name: str) -> tuple[App, str]:
    """Create an app with its first API key; return the app and the key's plaintext."""
    async with conn.transaction():
        try:
            row = await conn.fetchrow(Q.create_app, uuid7(), name)
        except asyncpg.UniqueViolationError:
            raise AppExists(f"an app named {name!r} exists already") from None
        assert row is not None
        app = App(row["id"], row["name"], row["created_at"])
        plaintext = await create_key(conn, app.id)
    return app, plaintext


async def list_apps(conn: Conn) -> list[asyncpg.Record]:
    """Every app with its number of active keys."""
    return list(await conn.fetch(Q.list_apps))


async def find_app(conn: Conn, id_or_name: str) -> App | None:
    """An app by id or by name."""
    row = await conn.fetchrow(Q.find_app, id_or_name)
    return App(row["id"], row["name"], row["created_at"]) if row else None


async def create_key(conn: Conn, app_id: uuid.UUID) -> str:
    """Add an API key to an app and return its plaintext (shown once, never stored)."""
    new = keys.generate_key()
    await conn.execute(Q.create_key, uuid7(), app_id, new.prefix, new.key_hash)
    return new.plaintext


async def list_keys(conn: Conn, app_id: uuid.UUID) -> list[asyncpg.Record]:
    """An app's keys (prefixes and dates, never secrets)."""
    return list(await conn.fetch(Q.list_keys, app_id))


async def revoke_key(conn: Conn, id_or_prefix: str) -> bool:
    """Revoke a key by id or prefix; False when no active key matched."""
    return await conn.fetchrow(Q.revoke_key, id_or_prefix) is not None


class KeyVerifier:
    """Resolves a presented API key to its app, caching hits briefly to spare the database.

    A revoked key stops working within `cache_seconds`.
    """

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float = 10.0) -> None:
        self._pool = pool
        self._ttl = cache_seconds
        self._cache: dict[bytes, tuple[uuid.UUID, float]] = {}

    async def app_for(self, presented: str) -> uuid.UUID | None:
        """The app that owns `presented`, or None for an unknown, malformed or revoked key."""
        prefix = keys.prefix_of(presented)
        if prefix is None:
            return None
        digest = keys.hash_key(presented)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        row = await self._pool.fetchrow(Q.key_by_prefix, prefix)
        if row is None or not keys.matches(presented, row["key_hash"]):
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (row["app_id"], now + self._ttl)
        app_id: uuid.UUID = row["app_id"]
        return app_id

    def forget_app(self, app_id: uuid.UUID) -> None:
        """Drop the cached keys of an app found gone (deleted, or a database replaced)."""
        for digest, (cached_app, _) in list(self._cache.items()):
            if cached_app == app_id:
                del self._cache[digest]

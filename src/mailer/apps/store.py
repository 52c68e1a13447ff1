"""Apps and keys in the database."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mailer.apps import access, keys
from mailer.apps.rows import AppListing, AppRow, KeyGrantRow, KeyRow
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.ids import uuid7

Q = Queries("mailer.apps")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class App:
    """An app registered with Mailer."""

    id: uuid.UUID
    name: str
    created_at: datetime
    sender_domains: list[str] | None = None


class AppExists(Exception):
    """An app with that name exists already."""


@dataclass(frozen=True)
class CreatedKey:
    """A new API key: its id and its plaintext (shown once, never stored)."""

    id: uuid.UUID
    plaintext: str
    scopes: list[str]


async def create_app(conn: Conn, name: str) -> tuple[App, str]:
    """Create an app with its first API key (every scope); return the app and the key's
    plaintext."""
    async with conn.transaction():
        try:
            row = await conn.fetchrow(Q.create_app, uuid7(), name, record_class=AppRow)
        except asyncpg.UniqueViolationError:
            raise AppExists(
                f"an app named {name!r} exists already; "
                f"get a new key for it with `mailer apps keys create {name}`"
            ) from None
        assert row is not None
        app = App(row.id, row.name, row.created_at)
        key = await create_key(conn, app.id)
    return app, key.plaintext


async def list_apps(conn: Conn) -> list[AppListing]:
    """Every app with its number of active keys, its pause and its limits."""
    return list(await conn.fetch(Q.list_apps, record_class=AppListing))


async def find_app(conn: Conn, id_or_name: str) -> App | None:
    """An app by id or by name."""
    row: AppRow | None = await conn.fetchrow(Q.find_app, id_or_name, record_class=AppRow)
    if row is None:
        return None
    return App(row.id, row.name, row.created_at, row.sender_domains)


async def set_sender_domains(conn: Conn, app_id: uuid.UUID, domains: list[str] | None) -> None:
    """Limit an app to sending from `domains` (lower-cased, deduplicated); None: any."""
    value = None if domains is None else sorted({access.checked_domain(d) for d in domains})
    await conn.execute(Q.set_sender_domains, app_id, value)


async def create_key(
    conn: Conn, app_id: uuid.UUID, scopes: list[str] | tuple[str, ...] = ()
) -> CreatedKey:
    """Add an API key with `scopes` (every scope when none is given) to an app."""
    checked = access.checked_scopes(scopes)
    new = keys.generate_key()
    key_id = uuid7()
    await conn.execute(Q.create_key, key_id, app_id, new.prefix, new.key_hash, checked)
    return CreatedKey(key_id, new.plaintext, checked)


async def list_keys(conn: Conn, app_id: uuid.UUID) -> list[KeyRow]:
    """An app's keys (prefixes, scopes and dates, never secrets)."""
    return list(await conn.fetch(Q.list_keys, app_id, record_class=KeyRow))


def key_reference(value: str) -> str:
    """A key's id or prefix as given, less the decoration `keys list` shows around the
    prefix: `mk_<prefix>_…`, `mk_<prefix>_...`, `mk_<prefix>` and `<prefix>` all name it."""
    reference = value.strip().removesuffix("…").removesuffix("...").removesuffix("_")
    return reference.removeprefix("mk_")


async def revoke_key(conn: Conn, id_or_prefix: str) -> bool:
    """Revoke a key by id or prefix (as `keys list` shows it, or bare); False when no
    active key matched."""
    return await conn.fetchrow(Q.revoke_key, key_reference(id_or_prefix)) is not None


# A key's last use is noted at most once a minute per process (and the statement itself
# skips keys noted within the minute by any process).
_TOUCH_SECONDS = 60.0


class KeyVerifier:
    """Resolves a presented API key to its grant, caching hits briefly to spare the
    database, and notes each key's last use (at most once a minute, off the request).

    A revoked key, a changed scope or sender list takes effect within `cache_seconds`.
    """

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float = 10.0) -> None:
        self._pool = pool
        self._ttl = cache_seconds
        self._cache: dict[bytes, tuple[access.Grant, float]] = {}
        self._touched: dict[uuid.UUID, float] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def app_for(self, presented: str) -> uuid.UUID | None:
        """The app that owns `presented`, or None for an unknown, malformed or revoked key."""
        grant = await self.grant_for(presented)
        return None if grant is None else grant.app_id

    async def grant_for(self, presented: str) -> access.Grant | None:
        """What `presented` may do, or None for an unknown, malformed or revoked key."""
        prefix = keys.prefix_of(presented)
        if prefix is None:
            return None
        digest = keys.hash_key(presented)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        row: KeyGrantRow | None = await self._pool.fetchrow(
            Q.key_by_prefix, prefix, record_class=KeyGrantRow
        )
        if row is None or not keys.matches(presented, row.key_hash):
            return None
        domains = row.sender_domains
        grant = access.Grant(
            row.app_id,
            row.id,
            frozenset(row.scopes),
            None if domains is None else frozenset(domains),
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (grant, now + self._ttl)
        self._touch(grant.key_id, now)
        return grant

    def _touch(self, key_id: uuid.UUID, now: float) -> None:
        # On a cache miss only: a cached key is in use, and was noted when it was cached.
        last = self._touched.get(key_id)
        if last is not None and now - last < _TOUCH_SECONDS:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    async def _write_touch(self, key_id: uuid.UUID) -> None:
        try:
            await self._pool.execute(Q.touch_key, key_id)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("could not note an API key's last use", extra={"error": str(exc)})

    async def close(self) -> None:
        """Wait for the last-use notes in flight."""
        if self._touching:
            await asyncio.gather(*self._touching, return_exceptions=True)

    def forget_app(self, app_id: uuid.UUID) -> None:
        """Drop the cached keys of an app found gone (deleted, or a database replaced)."""
        for digest, (cached, _) in list(self._cache.items()):
            if cached.app_id == app_id:
                del self._cache[digest]

"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in order, each once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
# Any constant works; it keeps two processes from migrating at the same time.
_LOCK_KEY = 7_315_002_001


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str


class PendingMigrations(Exception):
    """The database is behind the code; `mailer migrate` brings it up to date."""


def available_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("mailer.db.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    """Versions already applied (empty for a new database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations")
    return {version for (version,) in rows}


async def migrate(conn: asyncpg.Connection, *, before: int | None = None) -> list[Migration]:
    """Apply every pending migration (or those of a version below `before`, to build a
    database as an older Mailer left it), each in its own transaction; return those applied.

    Each transaction takes a transaction-scoped advisory lock and only then reads what is
    applied, so concurrent runs apply each migration once; no session state is needed, so
    it also works through PgBouncer in transaction mode."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
    applied = []
    for migration in available_migrations():
        if before is not None and migration.version >= before:
            break
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            if migration.version in await applied_versions(conn):
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        applied.append(migration)
    return applied


async def check(conn: asyncpg.Connection) -> None:
    """Raise `PendingMigrations` unless the database has every migration applied."""
    done = await applied_versions(conn)
    pending = [m for m in available_migrations() if m.version not in done]
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise PendingMigrations(f"the database needs migrations ({names}): run `mailer migrate`")

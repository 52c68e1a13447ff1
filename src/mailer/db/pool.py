"""Connections to PostgreSQL: one asyncpg pool per process, JSON through orjson."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# A connection of our own, or one borrowed from a pool: queries take either.
Conn: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"


# The binary formats, which COPY needs: json's is its text as UTF-8, jsonb's the same after
# a version byte (1).
_JSONB_VERSION = b"\x01"


def _encode_json(value: Any) -> bytes:
    return orjson.dumps(value)


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Teach a new connection to read and write json/jsonb with orjson (exact big ints), in
    the binary format, so that COPY takes them too."""
    await conn.set_type_codec(
        "json", encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


# JIT compiling pays off for long analytical queries, never for ours: a claim whose
# estimated cost crossed `jit_above_cost` spent ~100 ms compiling on every execution.
SERVER_SETTINGS = {"jit": "off"}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection returns to the pool (asyncpg still rolls back an
    open transaction first).

    Pooled connections never change their session: no SET, no LISTEN (listeners have their
    own connections), only transaction-scoped advisory locks. asyncpg's default reset
    (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) would add a round
    trip to every use of the pool: to every claim, record and enqueue.
    """


DEFAULT_STATEMENT_CACHE_SIZE = 100  # asyncpg's own default


class _ProcessOptions:
    """What every connection this process opens is made with (set once at start)."""

    statement_cache_size = DEFAULT_STATEMENT_CACHE_SIZE


def use_statement_cache(size: int) -> None:
    """Set how many named prepared statements each new connection keeps (asyncpg's
    statement cache; MAILER_STATEMENT_CACHE_SIZE). 0: none, every query is prepared unnamed
    and used at once, which PgBouncer in transaction mode (before 1.21's
    `max_prepared_statements`) needs. Called where a process reads its settings."""
    _ProcessOptions.statement_cache_size = size


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """Open a connection pool to `dsn`."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        command_timeout=60,
        server_settings=SERVER_SETTINGS,
        statement_cache_size=_ProcessOptions.statement_cache_size,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """Open one connection (for migrations, LISTEN and the CLI)."""
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        server_settings=SERVER_SETTINGS,
        statement_cache_size=_ProcessOptions.statement_cache_size,
    )
    await init_connection(conn)
    return conn

"""The database going away: which errors mean it is unreachable, and logging an outage once.

While PostgreSQL is unreachable every request that needs it fails the same way; logging each
one buries the cause (a 75-second outage once left ~400k lines). An `Outage` logs the first
failure, counts the rest, probes the database in the background and logs once more when it
answers again (and has every migration), with how long it was gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.db import migrate
from mailer.logs import describe

log = logging.getLogger(__name__)

# SQLSTATE classes that mean "the database cannot serve us right now", not "our query is
# wrong": 08 connection exception, 53 insufficient resources (too many connections, disk
# full), 57 operator intervention (shutdown, terminated, cannot connect now), 28 invalid
# authorization (a password rotated under us), 3D invalid catalog name (no such database).
_UNAVAILABLE_CLASSES = ("08", "53", "57", "28", "3D")
# The schema is missing (a database created again but not yet migrated), or we reached a
# read-only standby after a failover: both pass once the operator or the cluster is done.
_UNAVAILABLE_STATES = {"42P01", "42883", "25006"}
# An established connection broke: whatever the statement was doing may or may not have
# been committed.
_LOST_CLASSES = ("08", "57")


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else ""


def _closed_interface(exc: BaseException) -> bool:
    # asyncpg's "connection is closed"; and its protocol tripping over a server that ended
    # the session mid-operation ("cannot switch to state 12; another operation (2) is in
    # progress"), seen when a database is dropped WITH (FORCE) under load.
    return (isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)) or isinstance(
        exc, asyncpg.exceptions.InternalClientError
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database is unreachable or not ready (503, retry later),
    rather than that a query or the data is wrong."""
    if isinstance(exc, OSError) or _closed_interface(exc):  # refused, reset, timed out
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = _sqlstate(exc)
        return state.startswith(_UNAVAILABLE_CLASSES) or state in _UNAVAILABLE_STATES
    return False


def is_connection_lost(exc: BaseException) -> bool:
    """True when `exc` says a connection that was in use broke (or the server ended it),
    so a statement it was running may or may not have committed."""
    if isinstance(exc, OSError) or _closed_interface(exc):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return _sqlstate(exc).startswith(_LOST_CLASSES)
    return False


class Outage:
    """One process's view of whether its database is reachable; logs each outage once."""

    def __init__(self, pool: asyncpg.Pool, *, probe_interval: float = 1.0) -> None:
        self._pool = pool
        self._probe_interval = probe_interval
        self._since: float | None = None
        self._failures = 0
        self._probe: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        """True from the first failure until a probe finds the database ready again."""
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """Note a request that failed because the database is unavailable."""
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self._failures = 1
            log.error(
                "database unavailable: answering 503 until it is back",
                extra={"action": "database_unavailable", "error": describe(exc)},
            )
            self._probe = asyncio.get_running_loop().create_task(self._wait_for_recovery())
        log.debug("request failed: database unavailable", exc_info=exc)

    async def close(self) -> None:
        """Stop probing."""
        await cancel_and_wait(self._probe)
        self._probe = None

    async def _wait_for_recovery(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    async with self._pool.acquire() as conn:
                        await migrate.check(conn)  # type: ignore[arg-type]
                break
        assert self._since is not None
        log.info(
            "database available again",
            extra={
                "action": "database_recovered",
                "seconds": round(time.monotonic() - self._since, 1),
                "failed_requests": self._failures,
            },
        )
        self._since = None
        self._probe = None

"""What the Webhooks page shows, read from the database: every app's endpoints (never their
secrets) and the delivery log, newest first. Plain data, no HTML.

The log is read like the Messages page: a backward scan of the attempts' primary key that
looks at :data:`SCAN_LIMIT` attempts at most per page, whatever the filters keep, so a
rare outcome costs what a common one does; a keyset cursor (the last attempt id) goes on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from mailer.dashboard.rows import AttemptLogRow, DeliveryRow, EndpointRow
from mailer.db.queries import Queries

__all__ = [
    "MAX_ENDPOINTS",
    "OUTCOMES",
    "PAGE_SIZE",
    "SCAN_LIMIT",
    "AttemptFilter",
    "AttemptPage",
    "attempt_log",
    "delivery",
    "endpoint",
    "endpoints",
]

Q = Queries("mailer.dashboard")

PAGE_SIZE = 50
SCAN_LIMIT = 20_000
MAX_ENDPOINTS = 500
"""The most endpoints the page lists (apps have a few each)."""
OUTCOMES = ("delivered", "failed")
"""An attempt's outcome: a 2xx answer, or anything else (another status, no answer)."""
_NO_CURSOR = (1 << 63) - 1


async def endpoints(pool: asyncpg.Pool, app: uuid.UUID | None = None) -> list[EndpointRow]:
    """Every app's endpoints (or `app`'s), by app name then age, without their secrets."""
    return await pool.fetch(Q.webhook_endpoints, app, MAX_ENDPOINTS, record_class=EndpointRow)


@dataclass(frozen=True)
class AttemptFilter:
    """A view of the delivery log; every field is optional. `endpoints` is the set the
    app and endpoint filters leave (None: all)."""

    endpoints: Sequence[uuid.UUID] | None = None
    outcome: str | None = None
    before: int | None = None


@dataclass(frozen=True)
class AttemptPage:
    """A page of the log; `next` is the cursor of the next (older) page, `partial` says the
    page stopped at :data:`SCAN_LIMIT` attempts looked at before it was full."""

    rows: list[AttemptLogRow]
    next: int | None
    partial: bool = False


async def attempt_log(pool: asyncpg.Pool, search: AttemptFilter) -> AttemptPage:
    """One page of attempts, newest first."""
    wanted = None if search.endpoints is None else list(search.endpoints)
    before = _NO_CURSOR if search.before is None else search.before
    rows: list[AttemptLogRow] = await pool.fetch(
        Q.recent_attempts,
        *(wanted, before, search.outcome, PAGE_SIZE + 1, SCAN_LIMIT),
        record_class=AttemptLogRow,
    )
    if len(rows) > PAGE_SIZE:
        return AttemptPage(rows[:PAGE_SIZE], rows[PAGE_SIZE - 1].id)
    edge = await pool.fetchval(Q.attempt_scan_edge, wanted, before, SCAN_LIMIT)
    if edge is None:
        return AttemptPage(rows, None)
    return AttemptPage(rows, int(edge) + 1, partial=True)  # the page before `edge`, included


async def endpoint(pool: asyncpg.Pool, endpoint_id: uuid.UUID) -> EndpointRow | None:
    """One endpoint of any app, without its secrets, or None."""
    return await pool.fetchrow(Q.webhook_endpoint, endpoint_id, record_class=EndpointRow)


async def delivery(pool: asyncpg.Pool, delivery_id: uuid.UUID) -> DeliveryRow | None:
    """One delivery of any app with its endpoint's URL and app, or None."""
    return await pool.fetchrow(Q.webhook_delivery, delivery_id, record_class=DeliveryRow)

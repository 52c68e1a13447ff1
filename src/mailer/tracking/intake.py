"""Mailjet's event callbacks in: parse leniently, store raw body and events, apply them.

One callback body is one transaction: the raw body, every new event (linked to its
recipient message when it is known), the status changes and suppressions it causes. So an
answer of 200 means everything is stored, and any failure stores nothing, answers 503 and
Mailjet sends the body again (redelivered events are then recognised by their dedupe key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from mailer.db.conflicts import retrying_conflicts
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.apply import apply_linked, link_unlinked
from mailer.tracking.columns import EventColumns, columns_of, may_contain_nul
from mailer.tracking.parse import parse_callback_body
from mailer.tracking.rows import LinkedEvent

__all__ = ["IntakeResult", "store_body", "store_callback"]

Q = Queries("mailer.tracking")


@dataclass(frozen=True)
class IntakeResult:
    """What one callback body held and what became of it."""

    received: int
    """Items in the body."""
    stored: int
    """New events stored (the rest were redeliveries, or repeated inside the body)."""
    linked: int
    """New events linked to a recipient message (the rest wait, or are test events)."""


async def store_callback(
    pool: asyncpg.Pool, body: bytes, *, acquire_timeout: float = 10.0
) -> IntakeResult:
    """Parse and store one callback body in one transaction; apply its events.

    Raises:
        InvalidCallbackBody: the body is not JSON, or not an object or array.
        Exception: anything the database raises; nothing was stored then.
    """
    now = datetime.now(UTC)
    events = parse_callback_body(body, now=now)
    columns = columns_of(events, nul_free=not may_contain_nul(body))

    async def attempt() -> IntakeResult:
        async with pool.acquire(timeout=acquire_timeout) as conn, conn.transaction():
            return await _store(conn, body, now, len(events), columns)

    # A deadlock is possible in rare interleavings (two posts naming the same messages in
    # a different order, or a post and a worker recording them); the loser runs again.
    return await retrying_conflicts(attempt, action="events_retry")


async def store_body(conn: Conn, body: bytes, *, now: datetime | None = None) -> IntakeResult:
    """Parse and store one callback body inside the caller's transaction; apply its events.

    ``now`` is the arrival time (the time given to events without a valid ``time``).

    Raises:
        InvalidCallbackBody: the body is not JSON, or not an object or array.
    """
    now = now or datetime.now(UTC)
    events = parse_callback_body(body, now=now)
    return await _store(
        conn, body, now, len(events), columns_of(events, nul_free=not may_contain_nul(body))
    )


async def _store(
    conn: Conn, body: bytes, now: datetime, received: int, columns: EventColumns
) -> IntakeResult:
    rows = await conn.fetch(
        Q.insert_events, received, body, now, *columns.args(), record_class=LinkedEvent
    )
    linked = await apply_linked(conn, rows)
    # Unlinked events with a MessageID may name a message whose send result is being
    # recorded right now: retry them once that is settled (CustomID was tried already).
    pending = [r for r in rows if r.job_id is None and r.message_id != 0]
    linked += await apply_linked(conn, await link_unlinked(conn, pending))
    return IntakeResult(received, len(rows), linked)

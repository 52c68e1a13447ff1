"""Mailjet's event callbacks in: parse leniently, store raw body and events, apply them.

A callback body of up to :data:`CHUNK_EVENTS` items is one transaction: the raw body,
every new event (linked to its recipient message when it is known), the status changes and
suppressions it causes. So an answer of 200 means everything is stored, and any failure
stores nothing, answers 503 and Mailjet sends the body again (redelivered events are then
recognised by their dedupe key).

A larger body is stored first, then parsed and applied a chunk at a time, one transaction
per chunk: a transaction that names 100,000 messages would take as many MessageID-bucket
locks and exhaust PostgreSQL's lock table (``max_locks_per_transaction``), and parsing a
million items at once held up every other request for seconds. The answer is still 200
only once every chunk is stored; if one fails, Mailjet sends the whole body again and the
chunks stored already are recognised by their dedupe keys, so nothing is applied twice.

A body of that size all of whose events are stored already (Mailjet posts a body again
when our 200 did not reach it) is stored by one statement that first checks its dedupe
keys, and nothing is parsed further: storing its events would insert, link, apply and
hand to webhooks nothing. A body with any new event goes the usual way.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from mailer.db.conflicts import retrying_conflicts
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.metrics import count
from mailer.ops.event_clock import RECEIVED
from mailer.tracking.apply import apply_linked, link_unlinked
from mailer.tracking.columns import EventColumns, columns_of, may_contain_nul, stored_type
from mailer.tracking.engagement import DEFAULT_SCANNER_SECONDS
from mailer.tracking.parse import (
    decode_callback_body,
    dedupe_key_of,
    parse_callback_body,
    parse_event,
)
from mailer.tracking.rows import LinkedEvent
from mailer.tracking.timing import with_timing

__all__ = ["CHUNK_EVENTS", "IntakeResult", "store_body", "store_callback"]

Q = Queries("mailer.tracking")

CHUNK_EVENTS = 1000
"""Items of a body parsed and applied per transaction."""


@dataclass(frozen=True)
class IntakeResult:
    """What one callback body held and what became of it."""

    received: int
    """Items in the body."""
    stored: int
    """New events stored (the rest were redeliveries, or repeated inside the body)."""
    linked: int
    """New events linked to a recipient message (the rest wait, or are test events)."""
    types: frozenset[str] = frozenset()
    """The event types the body held (understood, test events aside), new or not."""
    counts: count.Pending = field(default_factory=count.Pending, compare=False, repr=False)
    """The metrics of these events, to count once they are committed."""


async def store_callback(
    pool: asyncpg.Pool,
    body: bytes,
    *,
    acquire_timeout: float = 10.0,
    chunk: int = CHUNK_EVENTS,
    scanner_seconds: float = DEFAULT_SCANNER_SECONDS,
) -> IntakeResult:
    """Parse and store one callback body; apply its events (see the module's docstring).

    ``scanner_seconds`` is ``MAILER_SCANNER_CLICK_SECONDS`` (:mod:`mailer.tracking.timing`).

    Raises:
        InvalidCallbackBody: the body is not JSON, or not an object or array.
        Exception: anything the database raises; the body must be posted again.
    """
    now = datetime.now(UTC)
    items = decode_callback_body(body)
    nul_free = not may_contain_nul(body)

    def committed(result: IntakeResult, types: Sequence[str | None]) -> IntakeResult:
        result.counts.commit()
        count.events_arrived(count.event_type(kind) for kind in types)
        return result

    if len(items) <= chunk:
        keys = [dedupe_key_of(item) for item in items]
        columns: EventColumns | None = None

        async def attempt() -> tuple[IntakeResult, Sequence[str | None]]:
            nonlocal columns
            async with pool.acquire(timeout=acquire_timeout) as conn:
                again = await conn.fetchval(Q.insert_post_if_stored, len(items), body, now, keys)
                if again is not None:  # stored, and nothing else to do
                    return _stored_before(items, keys)
                if columns is None:
                    columns = _columns(items, now, nul_free, keys)
                async with conn.transaction():
                    done = await _store(conn, body, now, len(items), columns, None, scanner_seconds)
                return done, columns.type

        # A deadlock is possible in rare interleavings (two posts naming the same messages
        # in a different order, or a post and a worker recording them); the loser runs again.
        result = committed(*await retrying_conflicts(attempt, action="events_retry"))
    else:
        post_id: int = await pool.fetchval(Q.insert_post, len(items), body, now)
        stored = linked = 0
        types: frozenset[str] = frozenset()
        for start in range(0, len(items), chunk):
            await asyncio.sleep(0)  # other requests go first between chunks
            part_columns = _columns(items[start : start + chunk], now, nul_free)

            async def chunk_attempt(part: EventColumns = part_columns) -> IntakeResult:
                async with pool.acquire(timeout=acquire_timeout) as conn, conn.transaction():
                    return await _store(conn, body, now, len(items), part, post_id, scanner_seconds)

            part = committed(
                await retrying_conflicts(chunk_attempt, action="events_retry"), part_columns.type
            )
            stored, linked, types = stored + part.stored, linked + part.linked, types | part.types
        result = IntakeResult(len(items), stored, linked, types)
    await RECEIVED.note(pool, result.types)  # for event-silence detection (ops/event_clock)
    return result


async def store_body(
    conn: Conn,
    body: bytes,
    *,
    now: datetime | None = None,
    scanner_seconds: float = DEFAULT_SCANNER_SECONDS,
) -> IntakeResult:
    """Parse and store one callback body inside the caller's transaction; apply its events.

    ``now`` is the arrival time (the time given to events without a valid ``time``);
    ``scanner_seconds`` as for :func:`store_callback`.

    Raises:
        InvalidCallbackBody: the body is not JSON, or not an object or array.
    """
    now = now or datetime.now(UTC)
    events = parse_callback_body(body, now=now)
    columns = columns_of(events, nul_free=not may_contain_nul(body))
    return await _store(conn, body, now, len(events), columns, None, scanner_seconds)


def _columns(
    items: Sequence[Any], now: datetime, nul_free: bool, keys: Sequence[bytes] | None = None
) -> EventColumns:
    if keys is None:
        events = [parse_event(item, now=now) for item in items]
    else:
        events = [parse_event(i, now=now, dedupe_key=k) for i, k in zip(items, keys, strict=True)]
    return columns_of(events, nul_free=nul_free)


def _stored_before(
    items: Sequence[Any], keys: Sequence[bytes]
) -> tuple[IntakeResult, list[str | None]]:
    """What :func:`_store` answers and counts for a body all of whose events were stored
    before (``insert_post_if_stored`` stored the body): every distinct event a duplicate.
    With the type of each distinct event (``EventColumns.type``)."""
    types: list[str | None] = []
    understood: list[bool] = []
    is_test: list[bool] = []
    seen: set[bytes] = set()
    for item, key in zip(items, keys, strict=True):
        if key not in seen:  # repeats inside the body count once, as columns_of keeps one
            seen.add(key)
            kind, known, test = stored_type(item)
            types.append(kind)
            understood.append(known)
            is_test.append(test)
    counts = count.Pending()
    for kind, n in Counter(types).items():
        counts.events[(kind, "duplicate", 0)] += n
    held = frozenset(
        kind
        for kind, known, test in zip(types, understood, is_test, strict=True)
        if kind is not None and known and not test
    )
    return IntakeResult(len(items), 0, 0, held, counts), types


async def _store(
    conn: Conn,
    body: bytes,
    now: datetime,
    received: int,
    columns: EventColumns,
    post_id: int | None,
    scanner_seconds: float,
) -> IntakeResult:
    columns = await with_timing(conn, columns, scanner_seconds)
    rows = await conn.fetch(
        Q.insert_events,
        received,
        body if post_id is None else None,  # a chunk's body is stored already
        now,
        *columns.args(),
        post_id,
        record_class=LinkedEvent,
    )
    counts = count.Pending()
    linked = await apply_linked(conn, rows, counts=counts)
    # Unlinked events with a MessageID may name a message whose send result is being
    # recorded right now: retry them once that is settled (CustomID was tried already).
    pending = [r for r in rows if r.job_id is None and r.message_id != 0]
    late = await link_unlinked(conn, pending)
    linked += await apply_linked(conn, late, counts=counts)
    _count_outcomes(counts, columns, rows, late)
    return IntakeResult(received, len(rows), linked, _types(columns), counts)


def _count_outcomes(
    counts: count.Pending,
    columns: EventColumns,
    stored: Sequence[LinkedEvent],
    late: Sequence[LinkedEvent],
) -> None:
    """Each distinct event of a body by outcome: a duplicate (stored before), a test event
    (MessageID 0), applied to its recipient, or stored without one (`unknown_message`:
    not ours, or early, and then counted `early` when its send result is recorded)."""
    late_apps = {row.id: row.app_id for row in late}
    tally = counts.events
    stored_types: Counter[str | None] = Counter()
    for row in stored:
        kind, app = row.type, row.app_id
        stored_types[kind] += 1
        if row.message_id == 0:
            tally[(kind, "test", 0 if app is None else app.int)] += 1
        elif row.job_id is not None:
            tally[(kind, "applied", 0 if app is None else app.int)] += 1
        elif late and row.id in late_apps:
            app = late_apps[row.id]
            tally[(kind, "applied", 0 if app is None else app.int)] += 1
        else:
            tally[(kind, "unknown_message", 0)] += 1
    for kind, n in (Counter(columns.type) - stored_types).items():
        tally[(kind, "duplicate", 0)] += n


def _types(columns: EventColumns) -> frozenset[str]:
    return frozenset(
        event_type
        for event_type, understood, is_test in zip(
            columns.type, columns.understood, columns.is_test, strict=True
        )
        if event_type is not None and understood and not is_test
    )

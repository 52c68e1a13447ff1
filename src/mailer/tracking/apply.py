"""Linking events to recipient messages, and applying them: status, MessageID, suppression.

An event finds its message by MessageID, else by CustomID (our job id) and address. One
that arrives before its message is known (no CustomID of ours, and a MessageID whose send
result is not recorded yet) is stored unlinked and linked by :func:`link_recorded`, which
the send path calls in the transaction that records the result. A MessageID-bucket
advisory lock (shared for writers of MessageIDs, exclusive for the inserter of a pending
event) makes sure one of the two transactions always sees the other: see
``docs/tracking.md``, "Linking".

Everything here runs inside the caller's transaction and is set-based: one statement per
step, whatever the number of events. An event is handed to its app's outbound webhooks
(:func:`mailer.tracking.webhook_events.fan_out_stored`) in the transaction that links it, so
exactly the linked events are delivered, each once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.metrics.count import Pending
from mailer.tracking.precedence import STATUS_CHAIN
from mailer.tracking.rows import FilledMessage, LinkedEvent, PendingEvent
from mailer.tracking.webhook_events import fan_out_stored

__all__ = ["apply_linked", "link_pending", "link_recorded", "link_unlinked"]

Q = Queries("mailer.tracking")

# Each round of applying can give messages their MessageID, which can link more pending
# events; in practice the second round finds nothing. The bound is a guard, not a limit.
_MAX_ROUNDS = 8


async def link_recorded(
    conn: Conn,
    recipients: Iterable[tuple[uuid.UUID, int, int | None]],
    counts: Pending | None = None,
) -> int:
    """Link and apply the events that waited for these just-recorded recipient messages.

    ``recipients`` are ``(job_id, position, message_id)`` of messages whose send result was
    written earlier in the same transaction. Returns the number of events linked; they are
    counted in ``counts`` as ``early``.
    """
    keys = list(recipients)
    if not keys:
        return 0
    rows = await link_pending(conn, keys)
    if counts is not None:
        for row in rows:
            counts.event(row.type, "early", row.app_id)
    return await apply_linked(conn, rows, counts=counts)


async def link_pending(
    conn: Conn, messages: Sequence[tuple[uuid.UUID, int, int | None]]
) -> list[LinkedEvent]:
    """Link pending events to ``messages`` (whose MessageIDs this transaction wrote)."""
    ids = [m[2] for m in messages if m[2]]
    if ids:
        await conn.execute(Q.lock_message_ids, ids)
    return await conn.fetch(
        Q.link_pending_events,
        [m[0] for m in messages],
        [m[1] for m in messages],
        record_class=LinkedEvent,
    )


async def link_unlinked(conn: Conn, events: Sequence[PendingEvent]) -> list[LinkedEvent]:
    """Try again to link stored events that are not linked, under their MessageID locks.

    Linked ``events`` are skipped. Taking
    the MessageIDs' buckets exclusively waits for any transaction writing one of these
    MessageIDs right now; the retry then sees what it wrote. Returns the events linked.
    """
    waiting = [e for e in events if e.job_id is None]
    if not waiting:
        return []
    message_ids = [e.message_id for e in waiting if e.message_id]
    if message_ids:
        await conn.execute(Q.lock_message_ids_exclusive, message_ids)
    return await conn.fetch(Q.link_events, [e.id for e in waiting], record_class=LinkedEvent)


async def apply_linked(
    conn: Conn,
    events: Sequence[LinkedEvent],
    *,
    just_linked: bool = True,
    counts: Pending | None = None,
) -> int:
    """Apply linked events to their messages; link what their MessageIDs reveal, repeatedly.

    Unlinked ``events`` are skipped. Events that
    were ``just_linked`` to their app are also handed to the app's webhooks (the outbox, in
    this transaction); reprocessing re-applies older events with ``just_linked=False``.
    Events linked on the way always are. Returns how many events were applied; the
    addresses newly suppressed are counted in ``counts``.
    """
    applied = 0
    rows = [e for e in events if e.job_id is not None]
    for _ in range(_MAX_ROUNDS):
        if not rows:
            break
        filled = await conn.fetch(
            Q.apply_events,
            [e.id for e in rows],
            [e.job_id for e in rows],
            [e.position for e in rows],
            [e.rank for e in rows],
            [e.message_id for e in rows],
            [e.suppress_reason for e in rows],
            STATUS_CHAIN,
            just_linked,  # counted in the stats once: when first applied
            record_class=FilledMessage,
        )
        applied += len(rows)
        if counts is not None:
            counts.suppressed([f.suppressed for f in filled if f.suppressed is not None])
        if just_linked:
            # Outbound webhooks: queue deliveries for these events in this same transaction.
            await fan_out_stored(conn, [e.id for e in rows])
        just_linked = True
        keys = [
            (f.job_id, f.position, f.message_id)
            for f in filled
            if f.job_id is not None and f.position is not None
        ]
        if not keys:
            break
        rows = await link_pending(conn, keys)
    return applied

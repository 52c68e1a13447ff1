"""What a linked tracking event becomes for its app's outbound webhooks.

A Mailjet event that moves a recipient to ``opened`` is an ``email.opened`` webhook, and
so on (the vocabulary is :mod:`mailer.tracking.vocabulary`'s): this module hands the events to
:func:`mailer.webhooks.outbox.fan_out` inside the transaction that links them, so exactly
the linked events are delivered, each once. The webhooks package knows nothing of
tracking; tracking knows the webhook event types.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.engagement import machine_fields
from mailer.tracking.precedence import RecipientStatus
from mailer.tracking.rows import StoredEvent
from mailer.tracking.vocabulary import webhook_type_of
from mailer.webhooks import outbox
from mailer.webhooks.outbox import OutboxEvent

__all__ = ["event_type_for_status", "fan_out_stored"]

Q = Queries("mailer.tracking")


def event_type_for_status(status: RecipientStatus) -> str | None:
    """The webhook event type for the status a Mailjet event produced (see
    :func:`mailer.tracking.precedence.status_for_event`), or ``None`` when none is sent."""
    return webhook_type_of(status)


async def fan_out_stored(conn: Conn, event_ids: Sequence[int]) -> int:
    """Queue webhook deliveries for tracking events already stored and linked (by id).

    Called inside the transaction where events get linked to an app (on arrival, or later
    when the send result that names their MessageID is recorded). Unlinked events, those of
    apps without an enabled endpoint, and those whose status has no webhook type are
    skipped. Returns the number of deliveries queued.
    """
    if not event_ids:
        return 0
    rows = await conn.fetch(Q.stored_events, list(event_ids), record_class=StoredEvent)
    events = []
    for row in rows:
        kind = event_type_for_status(RecipientStatus(row.status))
        if kind is None:
            continue
        events.append(
            OutboxEvent(
                event_id=row.id,
                app_id=row.app_id,
                type=kind,
                occurred_at=row.occurred_at,
                job_id=row.job_id,
                recipient=row.email,
                message_id=row.message_id,
                details={**(row.details or {}), **machine_fields(row.type, row.machine_reason)},
                metadata=row.metadata,
                tags=row.tags,
            )
        )
    return await outbox.fan_out(conn, events)

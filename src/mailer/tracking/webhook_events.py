"""What a linked tracking event becomes for its app's outbound webhooks.

A Mailjet event that moves a recipient to ``opened`` is an ``email.opened`` webhook, and
so on: this module holds that mapping and hands the events to
:func:`mailer.webhooks.outbox.fan_out` inside the transaction that links them, so exactly
the linked events are delivered, each once. The webhooks package knows nothing of
tracking; tracking knows the webhook event types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.engagement import machine_fields
from mailer.tracking.precedence import RecipientStatus
from mailer.tracking.rows import StoredEvent
from mailer.webhooks import outbox
from mailer.webhooks.outbox import OutboxEvent

__all__ = ["event_type_for_status", "fan_out_stored"]

Q = Queries("mailer.tracking")

_STATUS_EVENT: Mapping[RecipientStatus, str] = MappingProxyType(
    {
        RecipientStatus.SENT: outbox.EMAIL_SENT,
        RecipientStatus.OPENED: outbox.EMAIL_OPENED,
        RecipientStatus.CLICKED: outbox.EMAIL_CLICKED,
        RecipientStatus.BOUNCED: outbox.EMAIL_BOUNCED,
        RecipientStatus.DEFERRED: outbox.EMAIL_DEFERRED,
        RecipientStatus.BLOCKED: outbox.EMAIL_BLOCKED,
        RecipientStatus.SPAM: outbox.EMAIL_SPAM,
        RecipientStatus.UNSUBSCRIBED: outbox.EMAIL_UNSUBSCRIBED,
    }
)


def event_type_for_status(status: RecipientStatus) -> str | None:
    """The webhook event type for the status a Mailjet event produced (see
    :func:`mailer.tracking.precedence.status_for_event`), or ``None`` when none is sent."""
    return _STATUS_EVENT.get(status)


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

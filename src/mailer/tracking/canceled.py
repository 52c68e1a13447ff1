"""The `canceled` event: Mailer's own, for each recipient of a job the app canceled.

It is stored in the events table beside Mailjet's (no post, no MessageID, linked at once),
so the feed and the job's timelines show it as they show a `sent` or a `bounce`, and it
becomes an ``email.canceled`` webhook in the same transaction, as linked events do. It
implies no recipient status of the precedence chain: a canceled job's recipients stay
`queued` in the table, and the status documents say `canceled` for them.
"""

from __future__ import annotations

import uuid

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.rows import StoredEvent
from mailer.webhooks import outbox
from mailer.webhooks.outbox import OutboxEvent

__all__ = ["CANCELED", "record_canceled"]

Q = Queries("mailer.tracking")

CANCELED = "canceled"
"""The event's type in the feed (beside Mailjet's `sent`, `open` …) and the status shown."""


async def record_canceled(conn: Conn, job_id: uuid.UUID) -> int:
    """Store the `canceled` event of each recipient of `job_id` not sent, and queue its
    webhooks; call in the transaction that cancels the job. Returns the events stored."""
    rows = await conn.fetch(Q.insert_canceled_events, job_id, record_class=StoredEvent)
    await outbox.fan_out(
        conn,
        [
            OutboxEvent(
                event_id=row.id,
                app_id=row.app_id,
                type=outbox.EMAIL_CANCELED,
                occurred_at=row.occurred_at,
                job_id=row.job_id,
                recipient=row.email,
                message_id=None,
                metadata=row.metadata,
                tags=row.tags,
            )
            for row in rows
        ],
    )
    return len(rows)

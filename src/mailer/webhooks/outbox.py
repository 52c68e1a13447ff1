"""The webhook outbox: deliveries written in the same transaction that stores an event.

Whoever stores tracking events (the intake, through :mod:`mailer.tracking.webhook_events`)
calls :func:`fan_out` inside its transaction, once the events are linked to an app; the
send path does the same for the recipients it gives up on (``email.failed``). This module
knows nothing of tracking: it is handed events of the types in :data:`EVENT_TYPES`.
Every enabled endpoint of that app whose event types match gets one
``webhook_deliveries`` row, in one set-based statement, so an event is delivered if and
only if it was stored: nothing is lost between the commit and the dispatcher, and nothing
is sent for a transaction that rolled back. A NOTIFY on
:data:`CHANNEL` (sent at commit, once per transaction) wakes the dispatchers.

The body is serialised here, once per event, and stored as text: the dispatcher signs and
sends exactly these bytes on every attempt, and ``webhook-id`` is derived from the event's
own id, so retries and replays carry the same id and receivers can deduplicate on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mailer.db.pool import Conn
from mailer.db.queries import Queries

__all__ = [
    "CHANNEL",
    "EMAIL_CANCELED",
    "EMAIL_FAILED",
    "EVENT_TYPES",
    "OLD_EVENT_TYPES",
    "OutboxEvent",
    "fan_out",
    "render_body",
]

Q = Queries("mailer.webhooks")

CHANNEL = "mailer_webhooks"
"""The LISTEN/NOTIFY channel that wakes webhook dispatchers."""

EMAIL_SENT = "email.sent"
EMAIL_OPENED = "email.opened"
EMAIL_CLICKED = "email.clicked"
EMAIL_BOUNCED = "email.bounced"
EMAIL_DELIVERY_DELAYED = "email.delivery_delayed"
"""A soft bounce: Mailjet keeps trying (the recipient is `deferred`)."""
EMAIL_BLOCKED = "email.blocked"
EMAIL_SPAM = "email.spam"
EMAIL_UNSUBSCRIBED = "email.unsubscribed"
EMAIL_FAILED = "email.failed"
"""A recipient will not be sent: Mailjet refused the message, or our retries ran out. The
send path emits it (not a Mailjet event); its `details` hold the `reason` and the error."""
EMAIL_CANCELED = "email.canceled"
"""The app canceled the job before it was sent (`POST /jobs/{id}/cancel`): one per
recipient not sent. Mailer emits it, not Mailjet."""
EMAIL_SUPPRESSED = "email.suppressed"
"""A recipient was not sent to: its address is on the app's suppression list. The send
path emits it; its `details` hold the suppression's `reason`."""

EVENT_TYPES: frozenset[str] = frozenset(
    {
        EMAIL_SENT,
        EMAIL_OPENED,
        EMAIL_CLICKED,
        EMAIL_BOUNCED,
        EMAIL_DELIVERY_DELAYED,
        EMAIL_BLOCKED,
        EMAIL_SPAM,
        EMAIL_UNSUBSCRIBED,
        EMAIL_FAILED,
        EMAIL_CANCELED,
        EMAIL_SUPPRESSED,
    }
)
"""The event types an endpoint can subscribe to (which tracking status gives which is
:mod:`mailer.tracking.webhook_events`'s to say)."""

OLD_EVENT_TYPES: dict[str, str] = {"email.deferred": EMAIL_DELIVERY_DELAYED}
"""Names an endpoint may still be given, and the type each now stands for."""


@dataclass(frozen=True)
class OutboxEvent:
    """One stored tracking event, as its webhook payload needs it.

    Attributes:
        event_id: the stored event's stable id (e.g. the tracking events table's id); the
            ``webhook-id`` is ``evt_<event_id>``, the same on every attempt.
        app_id: the app the event belongs to (events not yet linked are not fanned out).
        type: one of :data:`EVENT_TYPES`, e.g. ``email.opened``.
        occurred_at: when the event happened (Mailjet's time), not when it was stored.
        job_id: the job the message belongs to.
        recipient: the recipient's address.
        message_id: Mailjet's MessageID (sent as a string: it exceeds 2^53).
        details: the event's own fields (url, user agent, bounce error ...).
        metadata: the job's metadata, echoed back to the app.
        tags: the job's tags, echoed back too (``[]`` in the payload when none).
    """

    event_id: int | str | uuid.UUID
    app_id: uuid.UUID
    type: str
    occurred_at: datetime
    job_id: uuid.UUID | None
    recipient: str | None
    message_id: int | str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    metadata: Any = None
    tags: Sequence[str] | None = None

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header value (never contains ``.``)."""
        return "evt_" + str(self.event_id).replace(".", "_")


def render_body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body of a webhook: ``{"type", "timestamp", "data"}``, compact."""
    when = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    timestamp = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = {"type": event_type, "timestamp": timestamp, "data": data}
    return orjson.dumps(body).decode()


def _body(event: OutboxEvent) -> str:
    data = {
        "job_id": None if event.job_id is None else str(event.job_id),
        "recipient": event.recipient,
        "message_id": None if event.message_id is None else str(event.message_id),
        "details": dict(event.details),
        "metadata": event.metadata,
        "tags": list(event.tags or ()),
    }
    return render_body(event.type, event.occurred_at, data)


async def fan_out(conn: Conn, events: Sequence[OutboxEvent]) -> int:
    """Queue webhook deliveries for ``events``; call inside the transaction storing them.

    One delivery per (event, enabled endpoint of the event's app subscribed to its type),
    inserted in one statement; an event fanned out twice is not delivered twice (unique per
    endpoint and event id). Events of unknown types are skipped. Sends one NOTIFY when
    anything was queued (delivered by PostgreSQL at commit).

    Returns:
        The number of deliveries queued.
    """
    wanted = [e for e in events if e.type in EVENT_TYPES]
    if not wanted:
        return 0
    status: str = await conn.execute(
        Q.fan_out,
        [e.app_id for e in wanted],
        [e.webhook_id for e in wanted],
        [e.type for e in wanted],
        [_body(e) for e in wanted],
    )
    inserted = int(status.rsplit(" ", 1)[-1])
    if inserted:
        await conn.execute(Q.notify)
    return inserted

"""What followed a message's send, for its page: the events Mailjet posted for its
recipients, kept raw, and the webhook deliveries they (and Mailer's own events) caused,
each with its attempts. Plain data, no HTML; credentials in an event are masked.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

import asyncpg

from mailer.dashboard.rows import MessageDelivery, RawEvent
from mailer.db.queries import Queries

__all__ = ["MASK", "MAX_ATTEMPTS_SHOWN", "MAX_EVENTS", "deliveries", "masked", "raw_events"]

Q = Queries("mailer.dashboard")

MAX_EVENTS = 500
"""The most events one message page shows (a job has a few per recipient)."""
MAX_ATTEMPTS_SHOWN = 20
"""The latest attempts shown per webhook delivery (there are at most ten per round)."""
MASK = "•••"

# A field or URL parameter with such a name holds a credential: its value is never shown.
# Mailjet's own fields have none; an app's Payload or a clicked link (a password reset's
# token) may.
_SECRET = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|auth|credential|session|signature|sig$|otp",
    re.IGNORECASE,
)


def _masked_url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return text
    netloc = parts.netloc
    if "@" in netloc:  # user:password@host
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote_plus(k)}={MASK if _SECRET.search(k) else quote_plus(v)}" for k, v in pairs
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def masked(value: Any) -> Any:
    """`value` (a decoded JSON event) with every credential replaced by :data:`MASK`: the
    value of a key that names one, the password of a URL, and the URL parameters that
    name one."""
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET.search(str(key)) else masked(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return _masked_url(value)
    return value


async def raw_events(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The events kept for the job's recipients, by recipient and time, each as Mailjet
    posted it (credentials masked)."""
    rows: list[RawEvent] = await pool.fetch(
        Q.message_events, job_id, MAX_EVENTS, record_class=RawEvent
    )
    return [
        {
            "id": row.id,
            "position": row.position,
            "email": row.email,
            "type": row.type,
            "occurred_at": row.occurred_at,
            "received_at": row.received_at,
            "understood": row.understood,
            "raw": masked(row.raw),
        }
        for row in rows
    ]


async def deliveries(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[MessageDelivery]:
    """The webhook deliveries of the job's events to its app's endpoints, oldest first,
    each with its latest attempts."""
    return await pool.fetch(
        Q.message_deliveries, job_id, MAX_ATTEMPTS_SHOWN, record_class=MessageDelivery
    )

"""What apps read of tracking: an event as shown to them, a job's timeline, the event feed.

The feed is every tracking event of one app in a stable order, read page by page with an
opaque cursor. Its order is ``(feed_xid, id)``: the id of the transaction that linked the
event to the app, then the event's id. A page only holds events whose linking transaction
is older than every transaction still running (``pg_snapshot_xmin``), so no event can ever
commit *before* a cursor already handed out: an app that follows the cursors sees every
event exactly once, however many writers commit in whatever order. The price is latency:
an event appears once all transactions that started before its own have ended (normally
milliseconds). Why a plain identity column is not enough: ``docs/tracking.md``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.engagement import machine_fields
from mailer.tracking.rows import FeedEvent, TimelineEvent
from mailer.tracking.vocabulary import FEED_TYPES, OLD_FEED_TYPES, event_type_of, statuses_of_types

__all__ = [
    "EVENT_TYPES",
    "FeedCursor",
    "FeedPage",
    "InvalidCursor",
    "event_view",
    "job_timelines",
    "read_feed",
]

Q = Queries("mailer.tracking")

EVENT_TYPES: frozenset[str] = FEED_TYPES | frozenset(OLD_FEED_TYPES)
"""The names a feed filter takes: the event types, and the old names (Mailjet's words)."""
_CURSOR = re.compile(r"^v1\.([0-9]{1,20})\.([0-9]{1,19})$")
_UINT64 = 2**64 - 1
_INT64 = 2**63 - 1


class InvalidCursor(ValueError):
    """The cursor was not made by this feed."""


@dataclass(frozen=True, order=True)
class FeedCursor:
    """A position in the feed: after the event ``event_id`` linked by transaction ``xid``."""

    xid: int
    event_id: int

    def encode(self) -> str:
        """The opaque form handed to apps (URL-safe)."""
        text = f"v1.{self.xid}.{self.event_id}".encode()
        return base64.urlsafe_b64encode(text).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> FeedCursor:
        """Read a cursor handed out by :meth:`encode`.

        Raises:
            InvalidCursor: anything else.
        """
        try:
            text = base64.b64decode(value + "=" * (-len(value) % 4), b"-_", validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidCursor("invalid cursor") from None
        match = _CURSOR.match(text)
        if match is None:
            raise InvalidCursor("invalid cursor")
        xid, event_id = int(match.group(1)), int(match.group(2))
        if xid > _UINT64 or event_id > _INT64:
            raise InvalidCursor("invalid cursor")
        return cls(xid, event_id)


START = FeedCursor(0, 0)


class EventFields(Protocol):
    """What :func:`event_view` reads of an event (a :class:`~.rows.TimelineEvent`)."""

    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def job_id(self) -> uuid.UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def message_id(self) -> int: ...
    @property
    def is_test(self) -> bool: ...
    @property
    def details(self) -> dict[str, Any]: ...
    @property
    def machine_reason(self) -> str | None: ...


def event_view(row: EventFields, metadata: Any, tags: list[str] | None) -> dict[str, Any]:
    """One event as apps see it, in the feed and in a job's status timeline.

    Ids are strings: event ids are stable, MessageIDs exceed 2^53. ``type`` is the event
    type (``email.opened`` …, :mod:`~mailer.tracking.vocabulary`), ``mailjet_event``
    Mailjet's word for it, ``status`` the recipient status the event implies (``null`` for
    event types we do not know);
    the type-specific fields (``url``, ``error``, ``hard_bounce`` …) follow, and for opens
    and clicks whether a machine made them (``machine``, ``machine_reason``);
    ``metadata`` and ``tags`` are the job's, as the app gave them (``[]``: no tags).
    """
    view: dict[str, Any] = {
        "id": str(row.id),
        "type": event_type_of(row.status, row.type),
        "mailjet_event": row.type,
        "status": row.status,
        "time": row.occurred_at,
        "job_id": str(row.job_id),
        "email": row.email,
        "message_id": str(row.message_id) if row.message_id else None,
        "test": row.is_test,
    }
    view.update(row.details)
    view.update(machine_fields(row.type, row.machine_reason))
    view["metadata"] = metadata
    view["tags"] = tags or []
    return view


async def job_timelines(
    conn: Conn, job_id: uuid.UUID, metadata: Any, tags: list[str] | None
) -> dict[int, list[dict[str, Any]]]:
    """Each recipient's (by position) events of a job, oldest first."""
    timelines: dict[int, list[dict[str, Any]]] = {}
    for row in await conn.fetch(Q.job_events, job_id, record_class=TimelineEvent):
        timelines.setdefault(row.position, []).append(event_view(row, metadata, tags))
    return timelines


@dataclass(frozen=True)
class FeedPage:
    """A page of the feed, and where the next one starts."""

    events: list[dict[str, Any]]
    next_cursor: FeedCursor
    has_more: bool


async def read_feed(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    *,
    after: FeedCursor = START,
    limit: int = 100,
    types: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tag: str | None = None,
) -> FeedPage:
    """The app's events after ``after``, at most ``limit``, optionally filtered by event
    type (names of :data:`EVENT_TYPES`), by event time (``since`` inclusive, ``until``
    exclusive) and by a tag of the job.

    ``next_cursor`` is where the next page starts: the last event's position, or ``after``
    itself when the page is empty (poll again with it later).
    """
    args = [
        app_id,
        str(after.xid),
        after.event_id,
        statuses_of_types(types) if types else None,
        since,
        until,
        limit + 1,
    ]
    if tag is None:
        rows = await pool.fetch(Q.feed_page, *args, record_class=FeedEvent)
    else:
        rows = await pool.fetch(Q.feed_page_tagged, *args, tag, record_class=FeedEvent)
    has_more = len(rows) > limit
    rows = rows[:limit]
    events = [event_view(row, row.metadata, row.tags) for row in rows]
    cursor = after
    if rows:
        cursor = FeedCursor(int(rows[-1].feed_xid), rows[-1].id)
    return FeedPage(events, cursor, has_more)

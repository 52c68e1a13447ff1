"""The rows tracking's queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mailer.db.rows import Column, Row

__all__ = [
    "AddedSuppression",
    "BackfillMessage",
    "BackfillRun",
    "CurrentSuppression",
    "EngagementContext",
    "FeedEvent",
    "FilledMessage",
    "LinkedEvent",
    "PendingEvent",
    "Post",
    "ReparsedEvent",
    "SenderAddress",
    "StoredEvent",
    "Suppression",
    "SuppressionChange",
    "TimelineEvent",
]


class PendingEvent(Row):
    """An event that may still find its message (``pending_events_after``)."""

    id = Column[int]()
    job_id = Column[uuid.UUID | None]()
    message_id = Column[int]()
    """Mailjet's MessageID, 0 when the event had none."""


class LinkedEvent(PendingEvent):
    """A stored event as applying it needs it (``insert_events``, ``link_events`` …);
    ``job_id`` is ``None`` while it waits for its message."""

    position = Column[int | None]()
    rank = Column[int | None]()
    suppress_reason = Column[str | None]()
    type = Column[str | None]()
    app_id = Column[uuid.UUID | None]()


class FilledMessage(Row):
    """What applying events did (``apply_events``): a message that just got its MessageID,
    or (``job_id`` None) an address newly suppressed, for the reason ``suppressed``."""

    job_id = Column[uuid.UUID | None]()
    position = Column[int | None]()
    message_id = Column[int | None]()
    suppressed = Column[str | None]()


class ReparsedEvent(PendingEvent):
    """An event a fixed parser rewrote or newly stored (``reparse_events``)."""

    position = Column[int | None]()
    inserted = Column[bool]()


class EngagementContext(Row):
    """What timing needs to know of an event's message (``engagement_context``)."""

    ord = Column[int]()
    job_id = Column[uuid.UUID]()
    position = Column[int]()
    sent_at = Column[datetime | None]()
    accepted_at = Column[datetime | None]()
    click_urls = Column[list[str | None] | None]()
    click_times = Column[list[datetime] | None]()


class Post(Row):
    """A stored callback body (``posts_after``)."""

    id = Column[int]()
    received_at = Column[datetime]()
    body = Column[bytes]()


class TimelineEvent(Row):
    """A linked event as apps see it (``job_events``)."""

    id = Column[int]()
    job_id = Column[uuid.UUID]()
    position = Column[int]()
    type = Column[str | None]()
    status = Column[str | None]()
    occurred_at = Column[datetime]()
    message_id = Column[int]()
    email = Column[str]()
    is_test = Column[bool]()
    details = Column[dict[str, Any]]()
    machine_reason = Column[str | None]()


class FeedEvent(TimelineEvent):
    """A feed entry (``feed_page``): the event, its feed position and its job's metadata."""

    feed_xid = Column[str]()
    metadata = Column[Any]()
    tags = Column[list[str] | None]()


class StoredEvent(Row):
    """A linked event as its webhooks need it (``stored_events``)."""

    id = Column[int]()
    app_id = Column[uuid.UUID]()
    type = Column[str | None]()
    status = Column[str]()
    occurred_at = Column[datetime]()
    job_id = Column[uuid.UUID]()
    email = Column[str]()
    message_id = Column[int | None]()
    details = Column[dict[str, Any] | None]()
    machine_reason = Column[str | None]()
    metadata = Column[Any]()
    tags = Column[list[str] | None]()


class Suppression(Row):
    """An entry of an app's suppression list (``list_suppressions``, ``add_suppression``)."""

    email = Column[str]()
    reason = Column[str]()
    event_id = Column[int | None]()
    created_at = Column[datetime]()
    expires_at = Column[datetime | None]()


class CurrentSuppression(Suppression):
    """An address's entry (``current_suppression``); ``in_force`` false once expired."""

    in_force = Column[bool]()


class SuppressionChange(Row):
    """One change of an address's entry (``suppression_history``)."""

    id = Column[int]()
    action = Column[str]()
    reason = Column[str]()
    event_id = Column[int | None]()
    expires_at = Column[datetime | None]()
    actor = Column[str]()
    at = Column[datetime]()


class AddedSuppression(Suppression):
    """``add_suppression``'s answer: the entry, and whether this call created it."""

    created = Column[bool]()


class SenderAddress(Row):
    """A sending domain in use, with a From address used with it (``sender_addresses_in_use``);
    ``address`` is ``None`` for an app's configured sender domain."""

    domain = Column[str]()
    address = Column[str | None]()


class BackfillRun(Row):
    """A backfill's window and checkpoint (``backfill_start``, ``backfill_resume``)."""

    id = Column[int]()
    from_ts = Column[datetime]()
    to_ts = Column[datetime]()
    next_offset = Column[int]()
    total = Column[int | None]()
    messages_seen = Column[int]()
    histories_fetched = Column[int]()
    events_stored = Column[int]()
    calls = Column[int]()


class BackfillMessage(Row):
    """Our message for a row of Mailjet's /message list (``backfill_messages``), with the
    events it has (``known_types[i]`` at ``known_times[i]``, Unix seconds)."""

    ord = Column[int]()
    job_id = Column[uuid.UUID]()
    position = Column[int]()
    status = Column[str]()
    known_types = Column[list[str]]()
    known_times = Column[list[int]]()

"""Timing classification at intake: the message-level half of :mod:`engagement`'s rules.

Whether an open or click is a scanner's burst depends on its message's delivery time and
on the message's other clicks, which may have come in earlier posts. So before a body's
events are stored, one query (``engagement_context``) finds, for its ``sent``, ``open`` and
``click`` events, their message, its delivery time and its stored clicks; the body's own
``sent`` events and clicks are added to those, and :func:`engagement.timing_reason`
decides. One statement per body, whatever its size, and none for a body without opens or
clicks left to classify.

The delivery time is the message's earliest ``sent`` event (stored, or in the same body);
until one has arrived, the time Mailer recorded Mailjet's acceptance of the job
(``jobs.sent_at``), which is earlier than delivery and so only ever makes a click look
later, never sooner. A message with neither, or an event not linked to a message yet, is
not classified by timing.

The classification is made once, when the event is stored, like the others: what the
feed, webhooks and stats were told does not change afterwards. The first click of a burst
that Mailjet splits across two posts (it groups a second of events per body, so this is
rare), or two posts that run concurrently, therefore leave the earlier click human: the
rule errs towards people. ``mailer events reprocess`` re-derives with everything stored.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from datetime import datetime

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.columns import EventColumns
from mailer.tracking.engagement import ENGAGEMENT_TYPES, timing_reason
from mailer.tracking.rows import EngagementContext

__all__ = ["with_timing"]

Q = Queries("mailer.tracking")

_LOOKED_UP = ENGAGEMENT_TYPES | {"sent"}


async def with_timing(conn: Conn, columns: EventColumns, window: float) -> EventColumns:
    """``columns`` with the opens and clicks that timing makes a machine's classified so
    (``machine_reason`` ``scanner_timing``); the same object when there is nothing to do."""
    if window <= 0 or not any(
        kind in ENGAGEMENT_TYPES and reason is None and not test
        for kind, reason, test in zip(
            columns.type, columns.machine_reason, columns.is_test, strict=True
        )
    ):
        return columns
    places = [
        i
        for i, (kind, test) in enumerate(zip(columns.type, columns.is_test, strict=True))
        if kind in _LOOKED_UP and not test
    ]
    rows = await conn.fetch(
        Q.engagement_context,
        places,
        [columns.message_id[i] for i in places],
        [columns.custom_job_id[i] for i in places],
        [columns.email[i] for i in places],
        record_class=EngagementContext,
    )
    return classify(columns, rows, window)


def classify(
    columns: EventColumns, context: list[EngagementContext], window: float
) -> EventColumns:
    """Apply the timing rule to ``columns`` given each event's message ``context``
    (pure: the database part is :func:`with_timing`)."""
    message: dict[int, tuple[uuid.UUID, int]] = {}
    sent: dict[tuple[uuid.UUID, int], datetime | None] = {}
    accepted: dict[tuple[uuid.UUID, int], datetime | None] = {}
    clicks: defaultdict[tuple[uuid.UUID, int], set[tuple[str | None, datetime]]] = defaultdict(set)
    for row in context:
        key = (row.job_id, row.position)
        message[row.ord] = key
        sent[key] = row.sent_at
        accepted[key] = row.accepted_at
        if key not in clicks:
            clicks[key] = set(zip(row.click_urls or [], row.click_times or [], strict=True))
    for place, key in message.items():
        kind, at = columns.type[place], columns.occurred_at[place]
        if kind == "sent":
            earliest = sent[key]
            sent[key] = at if earliest is None else min(earliest, at)
        elif kind == "click":
            clicks[key].add((columns.details[place].get("url"), at))
    reasons = list(columns.machine_reason)
    changed = False
    for place, key in message.items():
        kind = columns.type[place]
        if kind not in ENGAGEMENT_TYPES or reasons[place] is not None:
            continue
        delivered = sent[key] or accepted[key]
        reason = timing_reason(
            kind, columns.occurred_at[place], delivered, clicks[key], window=window
        )
        if reason is not None:
            reasons[place] = reason
            changed = True
    return dataclasses.replace(columns, machine_reason=reasons) if changed else columns

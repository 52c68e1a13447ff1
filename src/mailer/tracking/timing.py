"""Timing classification at intake: the message-level half of :mod:`engagement`'s rules.

Whether an open or click is part of a scanner's burst depends on its message's delivery
time and on the message's other clicks, some of which may have come in earlier posts. So
before a body's events are stored, one query (``engagement_context``) finds, for the
events that may be classified, their message, its delivery time and its stored clicks; the
body's own ``sent`` events and clicks of the same message are added to those, and
:func:`engagement.timing_reason` decides. One statement per body whatever its size, and
none for a body with nothing to classify.

What is looked up: the messages whose opens or clicks, left human by their User-Agent and
address, have a burst of clicks of the same message around them in the body itself.
Mailjet posts the events of one second together (one body per second and callback URL),
so a scanner's burst, and the pixel fetch that comes with it, arrive in one body; a body
of ordinary opens and clicks, nearly all of them, costs no query. Once a message is looked
up, its stored clicks count towards the burst too.

The delivery time is the message's earliest ``sent`` event (stored, or in the same body);
until one has arrived, the time Mailer recorded Mailjet's acceptance of the job
(``jobs.sent_at``), which is earlier than delivery and so only ever makes a click look
later, never sooner. A message with neither, or an event not linked to a message yet, is
not classified by timing.

The classification is made once, when the event is stored, like the others: what the
feed, webhooks and stats were told does not change afterwards. A burst that Mailjet splits
across two posts (rare, see above) is therefore left human: the rule errs towards people.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.columns import EventColumns
from mailer.tracking.engagement import BURST_LINKS, ENGAGEMENT_TYPES, in_burst, timing_reason
from mailer.tracking.rows import EngagementContext

__all__ = ["BodyKey", "MessageTiming", "candidates", "classify", "with_timing"]

Q = Queries("mailer.tracking")

_LOOKED_UP = ENGAGEMENT_TYPES | {"sent"}

BodyKey = int | tuple[uuid.UUID | None, str]
Click = tuple[str | None, datetime]


@dataclasses.dataclass(frozen=True, slots=True)
class MessageTiming:
    """What is stored of a message that timing needs."""

    sent_at: datetime | None
    """Its earliest stored ``sent`` event."""
    accepted_at: datetime | None
    """When Mailer recorded Mailjet's acceptance of its job."""
    clicks: frozenset[Click] = frozenset()
    """Its stored clicks, ``(url, time)``."""

    @classmethod
    def of(cls, row: EngagementContext) -> MessageTiming:
        """From a row of ``engagement_context``."""
        clicks = zip(row.click_urls or [], row.click_times or [], strict=True)
        return cls(row.sent_at, row.accepted_at, frozenset(clicks))


def _body_key(columns: EventColumns, place: int) -> BodyKey:
    """Which message an event of the body is about, as far as the body tells."""
    message_id = columns.message_id[place]
    return message_id if message_id else (columns.custom_job_id[place], columns.email[place])


def _body_clicks(columns: EventColumns, places: Sequence[int]) -> list[Click]:
    return [
        (columns.details[p].get("url"), columns.occurred_at[p])
        for p in places
        if columns.type[p] == "click"
    ]


def candidates(columns: EventColumns) -> dict[BodyKey, list[int]]:
    """The body's ``sent``, ``open`` and ``click`` events about messages with a burst to
    classify by timing, by message (see the module's docstring); empty when there is
    nothing to look up. One pass over the body, then one over the messages found."""
    clicks: defaultdict[BodyKey, list[Click]] = defaultdict(list)
    human: list[tuple[BodyKey, int]] = []
    for place, kind in enumerate(columns.type):
        if (kind != "click" and kind != "open") or columns.is_test[place]:
            continue
        key = _body_key(columns, place)
        if kind == "click":
            clicks[key].append((columns.details[place].get("url"), columns.occurred_at[place]))
        if columns.machine_reason[place] is None:
            human.append((key, place))
    wanted: set[BodyKey] = set()
    for key, place in human:
        if key not in wanted and len(clicks.get(key, ())) >= BURST_LINKS:
            if in_burst(columns.occurred_at[place], clicks[key]):
                wanted.add(key)
    if not wanted:
        return {}
    found: defaultdict[BodyKey, list[int]] = defaultdict(list)
    for place, kind in enumerate(columns.type):
        if kind in _LOOKED_UP and not columns.is_test[place]:
            key = _body_key(columns, place)
            if key in wanted:
                found[key].append(place)
    return dict(found)


async def with_timing(conn: Conn, columns: EventColumns, window: float) -> EventColumns:
    """``columns`` with the opens and clicks that timing makes a machine's classified so
    (``machine_reason`` ``scanner_timing``); the same object when nothing changes."""
    if window <= 0:
        return columns
    found = candidates(columns)
    if not found:
        return columns
    keys = list(found)
    first = [found[key][0] for key in keys]  # one event per message names it
    rows = await conn.fetch(
        Q.engagement_context,
        list(range(len(keys))),
        [columns.message_id[p] for p in first],
        [columns.custom_job_id[p] for p in first],
        [columns.email[p] for p in first],
        record_class=EngagementContext,
    )
    stored = {keys[row.ord]: MessageTiming.of(row) for row in rows}
    return classify(columns, found, stored, window)


def classify(
    columns: EventColumns,
    found: dict[BodyKey, list[int]],
    stored: dict[BodyKey, MessageTiming],
    window: float,
) -> EventColumns:
    """Apply the timing rule to the ``found`` events of ``columns`` (:func:`candidates`)
    given what is ``stored`` of their messages (those without an entry are not ours, or
    not known yet). Pure: the database part is :func:`with_timing`."""
    reasons = list(columns.machine_reason)
    changed = False
    for key, places in found.items():
        row = stored.get(key)
        if row is None:
            continue
        clicks = set(row.clicks)
        clicks.update(_body_clicks(columns, places))
        sent = [columns.occurred_at[p] for p in places if columns.type[p] == "sent"]
        if row.sent_at is not None:
            sent.append(row.sent_at)
        delivered = min(sent) if sent else row.accepted_at
        for place in places:
            kind = columns.type[place]
            if kind not in ENGAGEMENT_TYPES or reasons[place] is not None:
                continue
            at = columns.occurred_at[place]
            reason = timing_reason(kind, at, delivered, clicks, window=window)
            if reason is not None:
                reasons[place] = reason
                changed = True
    return dataclasses.replace(columns, machine_reason=reasons) if changed else columns

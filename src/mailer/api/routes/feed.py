"""`GET /feed`: every tracking event of the calling app, in a stable order, page by page."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from mailer.api.deps import ReadApp, ServicesDep
from mailer.api.errors import ApiError
from mailer.api.models import FeedPage, IsoDateTime
from mailer.api.responses import Json
from mailer.delivery.email import MAX_TAG_LENGTH, TAG_PATTERN
from mailer.tracking.feed import EVENT_TYPES, START, FeedCursor, InvalidCursor, read_feed
from mailer.tracking.vocabulary import FEED_TYPES, OLD_FEED_TYPES

router = APIRouter(tags=["tracking"])
_ONE_TYPE = "(" + "|".join(re.escape(t) for t in sorted(EVENT_TYPES)) + ")"
# One type or several, comma-separated.
_TYPES = rf"^\s*{_ONE_TYPE}\s*(,\s*{_ONE_TYPE}\s*)*$"


def _types(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    types = sorted({t.strip().lower() for v in values for t in v.split(",") if t.strip()})
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            "invalid fields: type",
            details=[
                {
                    "field": "type",
                    "message": f"unknown event type {', '.join(unknown)}; "
                    f"use {', '.join(sorted(FEED_TYPES))} (or Mailjet's words: "
                    f"{', '.join(sorted(OLD_FEED_TYPES))})",
                }
            ],
        )
    return types or None


@router.get("/feed", response_model=FeedPage)
async def feed(
    app_id: ReadApp,
    services: ServicesDep,
    after: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[list[Annotated[str, StringConstraints(pattern=_TYPES)]] | None, Query()] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_PATTERN)
    ] = None,
) -> Json:
    """The app's tracking events, oldest first in a stable order, `limit` per page.

    Pass the answer's `next_cursor` as `after` to get the next page; when `has_more` is
    false you are caught up (poll again later with the same cursor). Every event appears
    exactly once across pages, also while new events arrive. Filters: `type` (repeatable
    or comma-separated: email.sent, email.opened, email.clicked, email.bounced,
    email.delivery_delayed, email.blocked, email.spam, email.unsubscribed, and Mailer's own
    email.canceled; Mailjet's words sent, open, click, bounce, spam, blocked, unsub and the
    earlier canceled are still accepted), event time (`since` inclusive, `until` exclusive,
    ISO 8601) and `tag` (events of jobs with that tag). Each event carries its job's
    `metadata` and `tags`; ids and Mailjet's `message_id` are strings.
    """
    try:
        cursor = START if after is None else FeedCursor.decode(after)
    except InvalidCursor:
        raise ApiError(400, "invalid_cursor", "`after` is not a cursor of this feed") from None
    page = await read_feed(
        services.pool,
        app_id,
        after=cursor,
        limit=limit,
        types=_types(type),
        since=since,
        until=until,
        tag=tag,
    )
    return Json(
        {
            "events": page.events,
            "next_cursor": page.next_cursor.encode(),
            "has_more": page.has_more,
        }
    )

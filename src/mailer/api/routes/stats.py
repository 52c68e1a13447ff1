"""`GET /stats`: the app's sending statistics per hour or day, from the hourly rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from mailer.api.deps import ReadApp, ServicesDep
from mailer.api.errors import ApiError
from mailer.api.models import IsoDateTime, Stats
from mailer.api.responses import Json
from mailer.delivery.email import MAX_TAG_LENGTH, TAG_PATTERN
from mailer.stats.rollups import MAX_PERIODS, STEP, aligned, as_json, read_periods, total

router = APIRouter(tags=["stats"])

# With no `from`: the last 7 days by the day, the last 24 hours by the hour.
_DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=7)}


def _bad(field: str, message: str) -> ApiError:
    """The 400 for times that are well-formed but make no range (as the feed's cursor)."""
    return ApiError(400, "invalid_range", f"{field}: {message}", field=field)


@router.get("/stats", response_model=Stats)
async def stats(
    app_id: ReadApp,
    services: ServicesDep,
    granularity: Literal["hour", "day"] = "day",
    from_: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    to: IsoDateTime | None = None,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_PATTERN)
    ] = None,
) -> Json:
    """Per hour or day (UTC), how many of the app's emails (per recipient) were accepted,
    sent, delivered, bounced (hard/soft), blocked, complained of, unsubscribed, opened and
    clicked (unique and total, all and human only), with rates. `from` is rounded down and
    `to` up to whole periods; at most 31 days by the hour, 400 by the day. With `tag`:
    only the emails with that tag (counted since migration 0017)."""
    try:
        end = aligned(to or datetime.now(UTC), granularity, up=True)
    except OverflowError:
        raise _bad("to", "out of range") from None
    try:
        start = aligned(from_ or end - _DEFAULT_SPAN[granularity], granularity)
    except OverflowError:
        raise _bad("from", "out of range") from None
    if start >= end:
        raise _bad("from", "must be before `to`")
    if (end - start) / STEP[granularity] > MAX_PERIODS[granularity]:
        raise _bad("from", f"at most {MAX_PERIODS[granularity]} periods by the {granularity}")
    async with services.pool.acquire() as conn:
        periods = await read_periods(conn, app_id, start, end, granularity, tag=tag or "")
    return Json(
        {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "granularity": granularity,
            "tag": tag,
            "periods": [{"start": p.start.isoformat(), **as_json(p.counts)} for p in periods],
            "total": as_json(total(periods)),
        }
    )

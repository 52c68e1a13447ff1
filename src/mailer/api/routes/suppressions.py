"""`/suppressions`: the calling app's suppression list (read, add, remove)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from mailer.api.deps import ReadApp, SendCaller, ServicesDep
from mailer.api.errors import ApiError
from mailer.api.models import Suppression, SuppressionPage
from mailer.api.responses import Json
from mailer.delivery.email import EmailAddress
from mailer.lifecycle.address_key import address_key
from mailer.tracking import suppressions
from mailer.tracking.suppressions import SuppressionReason

router = APIRouter(tags=["suppressions"])


class NewSuppression(BaseModel):
    """An address the app wants no more email sent to."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailAddress
    reason: str | None = Field(default=None, min_length=1, max_length=200)


@router.get("/suppressions", response_model=SuppressionPage)
async def list_suppressions(
    app_id: ReadApp,
    services: ServicesDep,
    after: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Json:
    """The app's suppressed addresses in address order, with the reason and, for those a
    tracking event caused, the event's id. Pass `next_cursor` as `after` for the next page."""
    try:
        page = await suppressions.list_suppressions(services.pool, app_id, after=after, limit=limit)
    except suppressions.InvalidCursor:
        raise ApiError(400, "invalid_cursor", "`after` is not a cursor of this list") from None
    return Json({"suppressions": page.suppressions, "next_cursor": page.next_cursor})


@router.post(
    "/suppressions",
    status_code=201,
    response_model=Suppression,
    responses={200: {"model": Suppression, "description": "Already suppressed"}},
)
async def add_suppression(body: NewSuppression, caller: SendCaller, services: ServicesDep) -> Json:
    """Suppress an address: later emails to it are not sent (status `suppressed`). Answers
    201 when added, 200 with the existing entry when it was already suppressed."""
    entry, created = await suppressions.add_suppression(
        services.pool,
        caller.app_id,
        body.email,
        body.reason or SuppressionReason.MANUAL,
        caller.actor,
    )
    return Json(entry, 201 if created else 200)


@router.delete("/suppressions/{email}", status_code=204)
async def delete_suppression(email: str, caller: SendCaller, services: ServicesDep) -> Response:
    """Allow sending to an address again (also one erased since: its suppression is kept
    as a keyed hash). 404 when it is not on the app's list."""
    erased_hash = None
    if services.box is not None:
        async with services.pool.acquire() as conn:
            erased_hash = (await address_key(conn, services.box)).digest(email)
    if not await suppressions.delete_suppression(
        services.pool, caller.app_id, email, caller.actor, erased_hash=erased_hash
    ):
        raise ApiError(404, "not_found", f"{email} is not suppressed")
    return Response(status_code=204)

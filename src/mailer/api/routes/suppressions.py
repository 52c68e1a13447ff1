"""`/suppressions`: the calling app's suppression list (read, add, reactivate, history)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from mailer.api.deps import ReadApp, SendCaller, ServicesDep
from mailer.api.errors import ApiError, invalid_fields
from mailer.api.models import Suppression, SuppressionHistory, SuppressionPage, iso_only
from mailer.api.responses import Json
from mailer.delivery.email import EmailAddress
from mailer.lifecycle.address_key import address_key
from mailer.metrics import count
from mailer.tracking import suppressions
from mailer.tracking.suppressions import SuppressionReason

router = APIRouter(tags=["suppressions"])


class NewSuppression(BaseModel):
    """An address the app wants no more email sent to."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailAddress
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    expires_at: Annotated[AwareDatetime, BeforeValidator(iso_only)] | None = Field(
        default=None, description="When the suppression stops applying (default: never)"
    )


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
    """Suppress an address: later emails to it are not sent (status `suppressed`), until
    `expires_at` if given (one in the past is recorded, already expired). Answers 201 when
    added, 200 with the entry in force when it was already suppressed."""
    entry, created = await suppressions.add_suppression(
        services.pool,
        caller.app_id,
        body.email,
        body.reason or SuppressionReason.MANUAL,
        caller.actor,
        expires_at=body.expires_at,
    )
    if created:
        # The app's own reason is free text: the metric's label stays bounded.
        count.suppressions_added([SuppressionReason.MANUAL])
    return Json(entry, 201 if created else 200)


@router.delete("/suppressions/{email}", status_code=204)
async def delete_suppression(
    email: str,
    caller: SendCaller,
    services: ServicesDep,
    reason: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="Why the address may be sent to again (kept in its history)",
        ),
    ],
) -> Response:
    """Reactivate an address: allow sending to it again (also one erased since: its
    suppression is kept as a keyed hash). The reason is required and kept in the address's
    history and the audit log. 404 when it is not on the app's list."""
    if not reason.strip():
        raise invalid_fields([{"field": "reason", "message": "must not be blank"}])
    erased_hash = None
    if services.box is not None:
        async with services.pool.acquire() as conn:
            erased_hash = (await address_key(conn, services.box)).digest(email)
    if not await suppressions.reactivate(
        services.pool,
        caller.app_id,
        email,
        reason=reason,
        actor=caller.actor,
        erased_hash=erased_hash,
    ):
        raise ApiError(404, "not_found", f"{email} is not suppressed")
    return Response(status_code=204)


@router.get("/suppressions/{email}/history", response_model=SuppressionHistory)
async def suppression_history(email: str, app_id: ReadApp, services: ServicesDep) -> Json:
    """Whether the address is suppressed now, and every change of its entry, oldest first:
    each suppression (reason, causing event, expiry) and each reactivation (reason)."""
    return Json(await suppressions.history(services.pool, app_id, email))

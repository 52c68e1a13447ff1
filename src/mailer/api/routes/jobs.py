"""`/jobs`: find the app's jobs, and act on one (cancel, reschedule, retry)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict

from mailer.api.deps import ReadApp, SendApp, ServicesDep
from mailer.api.errors import ApiError
from mailer.api.models import IsoDateTime, JobAction, JobList, iso_only
from mailer.api.responses import Json
from mailer.delivery import job_actions, job_search
from mailer.delivery.email import MAX_TAG_LENGTH, TAG_PATTERN
from mailer.delivery.job_search import JobFilters

router = APIRouter(tags=["jobs"])

# The statuses `status` filters on, for the OpenAPI enum (checked against JOB_STATUSES).
JobStatusName = Literal[
    "queued",
    "sending",
    "canceled",
    "suppressed",
    "failed",
    "accepted",
    "deferred",
    "sent",
    "opened",
    "clicked",
    "unsubscribed",
    "spam",
    "bounced",
    "blocked",
]
_IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:#\-]{1,210}$"


@router.get("/jobs", response_model=JobList)
async def list_jobs(
    app_id: ReadApp,
    services: ServicesDep,
    after: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    recipient: Annotated[str | None, Query(min_length=1, max_length=320)] = None,
    status: JobStatusName | None = None,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_PATTERN)
    ] = None,
    created_from: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    created_to: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    idempotency_key: Annotated[str | None, Query(pattern=_IDEMPOTENCY_KEY)] = None,
) -> Json:
    """The app's jobs, newest first, `limit` per page (at most 100).

    Filters, all optional and combined: `recipient` (any of To, Cc, Bcc,
    case-insensitive), `status` (the job's status as `/status` gives it), `tag`, `from`
    (inclusive) and `to` (exclusive) on the time the job was accepted (ISO 8601), and
    `idempotency_key` (a batch's jobs carry `KEY#index`). Pass the answer's `next_cursor` as
    `after` for the next page; it is null on the last one. A page looks at no more
    than 1,000 jobs, so with filters that match few it may hold fewer than `limit` jobs,
    even none, and still have a `next_cursor`: follow it until it is null.
    """
    filters = JobFilters(
        recipient=None if recipient is None else recipient.strip(),
        status=status,
        tag=tag,
        created_from=created_from,
        created_to=created_to,
        idempotency_key=idempotency_key,
    )
    try:
        page = await job_search.list_jobs(services.pool, app_id, filters, after=after, limit=limit)
    except job_search.InvalidCursor:
        raise ApiError(400, "invalid_cursor", "`after` is not a cursor of this list") from None
    return Json({"jobs": page.jobs, "next_cursor": page.next_cursor})


class JobChanges(BaseModel):
    """What to change of a scheduled job."""

    model_config = ConfigDict(extra="forbid")

    send_at: Annotated[AwareDatetime, BeforeValidator(iso_only)]


def _job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", f"no job {value}") from None


def _refused(exc: job_actions.TooLate | job_actions.NotFound, job_id: str) -> ApiError:
    if isinstance(exc, job_actions.NotFound):
        return ApiError(404, "not_found", f"no job {job_id}")
    return ApiError(409, "job_state", str(exc), state=exc.state)


@router.post("/jobs/{job_id}/cancel", response_model=JobAction)
async def cancel_job(job_id: str, app_id: SendApp, services: ServicesDep) -> Json:
    """Cancel a scheduled or queued job: it is never sent, and each recipient gets a
    `canceled` event (feed, timeline, `email.canceled` webhook). 409 with the job's
    `state` when it is too late (a worker holds it, or it was sent, failed or canceled)."""
    try:
        await job_actions.cancel(services.pool, app_id, _job_id(job_id))
    except (job_actions.TooLate, job_actions.NotFound) as exc:
        raise _refused(exc, job_id) from None
    return Json({"job_id": job_id, "status": "canceled"})


@router.patch("/jobs/{job_id}", response_model=JobAction)
async def reschedule_job(
    job_id: str, changes: JobChanges, app_id: SendApp, services: ServicesDep
) -> Json:
    """Move a scheduled job's `send_at` (a time passed already sends it now). 409 with
    the job's `state` unless it is still scheduled."""
    try:
        run_at = await job_actions.reschedule(
            services.pool, app_id, _job_id(job_id), changes.send_at
        )
    except (job_actions.TooLate, job_actions.NotFound) as exc:
        raise _refused(exc, job_id) from None
    return Json({"job_id": job_id, "status": "queued", "send_at": run_at})


@router.post("/jobs/{job_id}/retry", status_code=202, response_model=JobAction)
async def retry_job(job_id: str, app_id: SendApp, services: ServicesDep) -> Json:
    """Send a job whose recipients failed again: the same job id, its failed recipients
    queued again for a new round of attempts; `/status` keeps what the earlier round ended
    with in `history`. 409 with the job's `state` when no recipient failed."""
    try:
        await job_actions.retry(services.pool, app_id, _job_id(job_id))
    except (job_actions.TooLate, job_actions.NotFound) as exc:
        raise _refused(exc, job_id) from None
    return Json({"job_id": job_id, "status": "queued"}, 202)

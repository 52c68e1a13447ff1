"""`POST /queue` and `POST /queue/batch`: accept emails for sending."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from mailer.api.deps import ENQUEUING_OPENAPI, EnqueuingRoute, caller_of
from mailer.api.errors import ApiError
from mailer.api.responses import Json, Queued
from mailer.apps.access import refused_sender
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import Accepted, IdempotencyConflict, new_job, request_hash
from mailer.delivery.job_status import read_job_status
from mailer.delivery.limits import QuotaExceeded
from mailer.metrics import count
from mailer.ops.activity import ACTIVITY
from mailer.services import Services

router = APIRouter(tags=["queue"], route_class=EnqueuingRoute)

MAX_BATCH = 500


class QueuedJob(BaseModel):
    """The answer to an accepted email."""

    job_id: str
    status: str = "queued"


class BatchRequest(BaseModel):
    """Several emails accepted all-or-nothing."""

    emails: list[EmailRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchAccepted(BaseModel):
    """One `job_id` per email, in request order."""

    jobs: list[QueuedJob]


def _app_gone(services: Services, app_id: uuid.UUID) -> ApiError:
    """The 401 for a key verified (and cached) a moment ago whose app is gone now."""
    services.keys.forget_app(app_id)
    return ApiError(
        401,
        "unauthorized",
        "unknown or revoked API key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _over_quota(exc: QuotaExceeded) -> ApiError:
    """The 429 for an app past its daily quota: retry once the UTC day rolls over."""
    return ApiError(
        429,
        "daily_quota_exceeded",
        str(exc),
        headers={"Retry-After": str(exc.retry_after)},
        retry_after=exc.retry_after,
    )


def _body_of(email: EmailRequest) -> dict[str, Any]:
    return email.model_dump(mode="json", by_alias=True, exclude_none=True)


@router.post("/queue", status_code=202, response_model=QueuedJob, openapi_extra=ENQUEUING_OPENAPI)
async def queue_email(email: EmailRequest, request: Request) -> Response:
    """Queue one email. Answers 202 with the job's id once it is durably stored."""
    caller = caller_of(request)
    app_id, services, key = caller.app_id, caller.services, caller.idempotency_key
    if caller.sender_domains is not None:
        _check_sender(caller.sender_domains, email, "from.email")
    body_hash = request_hash(_body_of(email)) if key is not None else None
    job = new_job(app_id, email, idempotency_key=key, body_hash=body_hash)
    try:
        accepted = await services.enqueuer.enqueue(job)
    except IdempotencyConflict as exc:
        ACTIVITY.add("emails_rejected")
        count.enqueued(app_id, "rejected")
        raise ApiError(409, "idempotency_conflict", str(exc)) from None
    except QuotaExceeded as exc:
        ACTIVITY.add("emails_rejected")
        raise _over_quota(exc) from None
    except asyncpg.ForeignKeyViolationError:
        raise _app_gone(services, app_id) from None
    ACTIVITY.add("emails_replayed" if accepted.replayed else "emails_accepted")
    count.enqueued(app_id, "replayed" if accepted.replayed else "accepted")
    if accepted.replayed:
        status = await _current_status(services, app_id, accepted)
        return Json({"job_id": str(accepted.job_id), "status": status}, 202, headers=_REPLAYED)
    return Queued(str(accepted.job_id))


@router.post(
    "/queue/batch",
    status_code=202,
    response_model=BatchAccepted,
    openapi_extra=ENQUEUING_OPENAPI,
)
async def queue_batch(batch: BatchRequest, request: Request) -> Json:
    """Queue up to 500 emails in one transaction: all are accepted, or none."""
    caller = caller_of(request)
    app_id, services, key = caller.app_id, caller.services, caller.idempotency_key
    if caller.sender_domains is not None:
        for index, email in enumerate(batch.emails):
            _check_sender(caller.sender_domains, email, f"emails[{index}].from.email")
    body_hash = request_hash([_body_of(e) for e in batch.emails]) if key is not None else None
    jobs = [
        new_job(
            app_id,
            email,
            # Each job of a keyed batch carries the key and its index; '#' cannot occur in keys.
            idempotency_key=None if key is None else f"{key}#{index}",
            body_hash=body_hash,
        )
        for index, email in enumerate(batch.emails)
    ]
    try:
        accepted = await services.enqueuer.enqueue_batch(jobs)
    except IdempotencyConflict:
        ACTIVITY.add("emails_rejected", len(jobs))
        count.enqueued(app_id, "rejected", len(jobs))
        raise ApiError(
            409, "idempotency_conflict", f"Idempotency-Key {key!r} was used with another batch"
        ) from None
    except QuotaExceeded as exc:
        ACTIVITY.add("emails_rejected", len(jobs))
        raise _over_quota(exc) from None
    except asyncpg.ForeignKeyViolationError:
        raise _app_gone(services, app_id) from None
    replayed = sum(a.replayed for a in accepted)
    ACTIVITY.add("emails_accepted", len(accepted) - replayed)
    ACTIVITY.add("emails_replayed", replayed)
    count.enqueued(app_id, "accepted", len(accepted) - replayed)
    count.enqueued(app_id, "replayed", replayed)
    if any(a.replayed for a in accepted):
        answers = [
            {"job_id": str(a.job_id), "status": await _current_status(services, app_id, a)}
            for a in accepted
        ]
        return Json({"jobs": answers}, 202, headers=_REPLAYED)
    return Json({"jobs": [{"job_id": str(a.job_id), "status": "queued"} for a in accepted]}, 202)


# An idempotent replay says so, as Stripe's and Postmark's APIs do.
_REPLAYED = {"Idempotent-Replayed": "true"}


async def _current_status(services: Services, app_id: uuid.UUID, accepted: Accepted) -> str:
    """The status a replayed job has now (it may have been sent since)."""
    if not accepted.replayed:
        return "queued"
    found = await read_job_status(services.pool, app_id, accepted.job_id)
    return "queued" if found is None else str(found["status"])


def _check_sender(domains: frozenset[str], email: EmailRequest, field: str) -> None:
    """403 when the app may not send from the domain of the email's From address."""
    domain = refused_sender(domains, email.from_.email)
    if domain is not None:
        allowed = ", ".join(sorted(domains)) or "none"
        raise ApiError(
            403,
            "sender_not_allowed",
            f"this app may not send from {domain} (allowed: {allowed})",
            domain=domain,
            field=field,
        )

"""`GET /status/{job_id}`: where a job stands, recipient by recipient."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from mailer.api.deps import ReadApp, ServicesDep
from mailer.api.errors import ApiError
from mailer.api.models import JobStatus
from mailer.api.responses import Json
from mailer.delivery.job_status import read_job_status

router = APIRouter(tags=["status"])


@router.get("/status/{job_id}", response_model=JobStatus)
async def job_status(job_id: str, app_id: ReadApp, services: ServicesDep) -> Json:
    """The job's status, attempts, last error, timestamps, and each recipient's status with
    Mailjet's `message_id` (a string: it exceeds 2^53). Another app's job answers 404."""
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        raise ApiError(404, "not_found", f"no job {job_id}") from None
    status: dict[str, Any] | None = await read_job_status(services.pool, app_id, parsed)
    if status is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return Json(status)

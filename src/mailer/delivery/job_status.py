"""A job's status as an app reads it: the queue state, then what its recipients became."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import asyncpg

from mailer.db.queries import Queries
from mailer.delivery.rows import JobMessage, JobRow
from mailer.tracking.engagement import engagement_of
from mailer.tracking.feed import job_timelines
from mailer.tracking.precedence import RecipientStatus, derive_job_status

Q = Queries("mailer.delivery")


QUEUE_STATES: tuple[str, ...] = ("queued", "sending", "canceled")
"""The job states that are its status as they are (SQL: `derived_job_status`)."""


def job_status_of(state: str, recipient_statuses: list[str]) -> str:
    """Its queue state while queued, sending or canceled; else derived from the recipients."""
    if state in QUEUE_STATES:
        return state
    return str(derive_job_status([RecipientStatus(s) for s in recipient_statuses]))


async def read_job_status(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_id: uuid.UUID
) -> dict[str, Any] | None:
    """The status document of one of the app's jobs, or None (also for another app's job).

    Each recipient carries its timeline: every tracking event linked to it, oldest first,
    in the same shape as the event feed (`mailer.tracking.feed.event_view`).
    """
    async with pool.acquire() as conn:
        job = await conn.fetchrow(Q.job_status, job_id, app_id, record_class=JobRow)
        if job is None:
            return None
        messages = await conn.fetch(Q.job_messages, job_id, record_class=JobMessage)
        timelines = await job_timelines(conn, job_id, job.metadata, job.tags)
    return status_document(job, messages, timelines)


def status_document(
    job: JobRow, messages: list[JobMessage], timelines: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The status document of `job` from its recipients and their timelines."""
    recipients = [
        {
            "email": m.email,
            "kind": m.kind,
            "status": m.status,
            "message_id": None if m.message_id is None else str(m.message_id),
            "error": m.error,
            "updated_at": m.updated_at,
            "events": timelines.get(m.position, []),
            "engagement": engagement_of(timelines.get(m.position, [])),
            # Issue 15: the mentions of this address folded into it (Mailjet sends it once).
            "merged": m.merged or [],
        }
        for m in messages
    ]
    return {
        "job_id": str(job.id),
        "status": job_status_of(job.state, [m.status for m in messages]),
        # Issue 15: beside the single word, how many recipients are in each status.
        "recipient_statuses": dict(Counter(m.status for m in messages)),
        "attempts": job.attempts,
        "next_attempt_at": job.run_at if job.state == "queued" else None,
        "last_error": job.last_error,
        "metadata": job.metadata,
        "tags": job.tags or [],
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "sent_at": job.sent_at,
        "recipients": recipients,
    }

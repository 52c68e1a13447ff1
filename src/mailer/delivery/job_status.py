"""A job's status as an app reads it: the queue state, then what its recipients became."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from mailer.db.queries import Queries
from mailer.delivery.limits import Hold, hold_of
from mailer.delivery.rows import JobDocument, JobMessage
from mailer.tracking.canceled import CANCELED
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


def recipient_status_of(job_state: str, status: str) -> str:
    """A recipient's status as shown: `canceled` for one a canceled job never sent."""
    if job_state == "canceled" and status == "queued":
        return CANCELED
    return status


@dataclass(frozen=True, slots=True)
class QueueFacts:
    """What decides why a job waits (see `waiting_of`)."""

    state: str
    run_at: datetime
    attempts: int
    last_error: Any
    hold: Hold | None = None
    """What holds the app's due jobs back now (its pause or its rate), if anything."""


def waiting_of(job: QueueFacts, now: datetime) -> dict[str, Any] | None:
    """Why a job not yet sent waits: `{"reason", "until", "error"}`, or None when it does
    not wait (due now, being sent, or out of the queue).

    `retrying` after an attempt failed (with that error) while its next attempt is ahead,
    `scheduled` while `send_at` is ahead; once due, `paused` or `rate_limited` (until the
    app's next email may go) when its app is held back, else `retrying` (`until` null) after
    an attempt. The only place the reasons are decided.
    """
    if job.state != "queued":
        return None
    attempted = job.attempts > 0 or job.last_error is not None
    if job.run_at > now:
        if attempted:
            return {"reason": "retrying", "until": job.run_at, "error": job.last_error}
        return {"reason": "scheduled", "until": job.run_at, "error": None}
    if job.hold is not None:
        return {"reason": job.hold.reason, "until": job.hold.until, "error": job.last_error}
    if attempted:
        return {"reason": "retrying", "until": None, "error": job.last_error}
    return None


async def read_job_status(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_id: uuid.UUID
) -> dict[str, Any] | None:
    """The status document of one of the app's jobs, or None (also for another app's job).

    Each recipient carries its timeline: every tracking event linked to it, oldest first,
    in the same shape as the event feed (`mailer.tracking.feed.event_view`).
    """
    async with pool.acquire() as conn:
        job = await conn.fetchrow(Q.job_status, job_id, app_id, record_class=JobDocument)
        if job is None:
            return None
        messages = await conn.fetch(Q.job_messages, job_id, record_class=JobMessage)
        timelines = await job_timelines(conn, job_id, job.metadata, job.tags)
        hold = await hold_of(conn, app_id) if job.state == "queued" else None
    return status_document(job, messages, timelines, datetime.now(UTC), hold)


def status_document(
    job: JobDocument,
    messages: list[JobMessage],
    timelines: dict[int, list[dict[str, Any]]],
    now: datetime,
    hold: Hold | None = None,
) -> dict[str, Any]:
    """The status document of `job` from its recipients and their timelines."""
    statuses = [recipient_status_of(job.state, m.status) for m in messages]
    recipients = [
        {
            "email": m.email,
            "kind": m.kind,
            "status": status,
            "message_id": None if m.message_id is None else str(m.message_id),
            "error": m.error,
            "updated_at": m.updated_at,
            "events": timelines.get(m.position, []),
            "engagement": engagement_of(timelines.get(m.position, [])),
            # Issue 15: the mentions of this address folded into it (Mailjet sends it once).
            "merged": m.merged or [],
        }
        for m, status in zip(messages, statuses, strict=True)
    ]
    facts = QueueFacts(job.state, job.run_at, job.attempts, job.last_error, hold)
    return {
        "job_id": str(job.id),
        "status": job_status_of(job.state, [m.status for m in messages]),
        # Issue 15: beside the single word, how many recipients are in each status.
        "recipient_statuses": dict(Counter(statuses)),
        "waiting": waiting_of(facts, now),
        "attempts": job.attempts,
        "next_attempt_at": job.run_at if job.state == "queued" else None,
        "last_error": job.last_error,
        "metadata": job.metadata,
        "tags": job.tags or [],
        "history": job.history or [],
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "sent_at": job.sent_at,
        "recipients": recipients,
    }

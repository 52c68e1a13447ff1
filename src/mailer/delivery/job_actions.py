"""What an app can do to one of its jobs: cancel it, move its send time, retry it.

Each is one guarded statement, so a worker claiming the job at the same moment and the app
acting on it cannot both win: the loser sees the job's new state and the app gets it in
its 409 (`TooLate`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from mailer import audit
from mailer.audit import Actor
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.delivery.rows import JobState, Rescheduled
from mailer.tracking.canceled import record_canceled

__all__ = [
    "BATCH_SIZE",
    "NotFound",
    "TooLate",
    "cancel",
    "cancel_many",
    "reschedule",
    "retry",
    "retry_many",
]

Q = Queries("mailer.delivery")


class NotFound(Exception):
    """No such job for this app."""


class TooLate(Exception):
    """The job is past the point where this action applies; `state` is where it is."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


async def _refusal(conn: Conn, app_id: uuid.UUID, job_id: uuid.UUID, why: str) -> TooLate:
    """`TooLate` with the job's state as it is now (NotFound if it is not the app's)."""
    row = await conn.fetchrow(Q.job_state, job_id, app_id, record_class=JobState)
    if row is None:
        raise NotFound(str(job_id))
    return TooLate(row.state, f"the job is {row.state}: {why}")


async def cancel(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_id: uuid.UUID, *, actor: Actor | None = None
) -> None:
    """Cancel a scheduled or queued job: it will never be sent. Its recipients get a
    `canceled` event (feed, timeline, `email.canceled` webhooks) in the same transaction,
    and so does an audit entry (`job.canceled`) when an `actor` (an operator) is given.

    Raises:
        NotFound: not one of the app's jobs.
        TooLate: a worker holds it or it was sent, failed or canceled already; or an
            earlier attempt's outcome is unknown (it may have reached Mailjet).
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            canceled = await conn.fetchval(Q.cancel_job, job_id, app_id)
            if canceled is not None:
                await record_canceled(conn, job_id)
                if actor is not None:
                    await _audit(conn, actor, "job.canceled", app_id, [job_id])
                return
        row = await conn.fetchrow(Q.job_state, job_id, app_id, record_class=JobState)
    if row is None:
        raise NotFound(str(job_id))
    if row.state == "queued" and row.needs_lookup:
        raise TooLate(
            row.state,
            "an earlier attempt may have reached Mailjet; it is checked before any resend",
        )
    raise TooLate(row.state, f"the job is {row.state}: only a queued job can be canceled")


async def reschedule(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_id: uuid.UUID, send_at: datetime
) -> datetime:
    """Move a scheduled job to `send_at` (now, if that has passed); answers its new time.

    Raises:
        NotFound: not one of the app's jobs.
        TooLate: the job is not scheduled (due already, attempted, sent or canceled).
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            Q.reschedule_job, job_id, app_id, send_at, record_class=Rescheduled
        )
        if row is not None:
            return row.run_at
        raise await _refusal(conn, app_id, job_id, "only a scheduled job can be moved")


async def retry(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_id: uuid.UUID, *, actor: Actor | None = None
) -> None:
    """Send a job whose recipients failed again: same job, its failed recipients queued
    again, a new round of attempts; what the earlier round ended with stays in `history`.
    With an `actor` (an operator), audited (`job.retried`) in the same transaction.

    Raises:
        NotFound: not one of the app's jobs.
        TooLate: the job has no failed recipient, or is still in the queue.
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            if await conn.fetchval(Q.retry_job, job_id, app_id) is not None:
                if actor is not None:
                    await _audit(conn, actor, "job.retried", app_id, [job_id])
                return
        raise await _refusal(
            conn, app_id, job_id, "only a job with failed recipients can be retried"
        )


BATCH_SIZE = 100
"""Jobs acted on per transaction by `cancel_many` and `retry_many`: each batch holds its
rows' locks only for its own few statements, so workers claiming meanwhile skip past them
briefly, never for the whole bulk action."""


async def cancel_many(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_ids: Sequence[uuid.UUID], *, actor: Actor
) -> list[uuid.UUID]:
    """Cancel each of the app's jobs in `job_ids` that `cancel` would cancel, by the same
    guarded statement, `BATCH_SIZE` per transaction with one `jobs.canceled` audit entry
    each; answers the jobs canceled (the others were too late, or not the app's)."""
    return await _many(pool, app_id, job_ids, actor, "jobs.canceled", _cancel_one)


async def retry_many(
    pool: asyncpg.Pool, app_id: uuid.UUID, job_ids: Sequence[uuid.UUID], *, actor: Actor
) -> list[uuid.UUID]:
    """Retry each of the app's jobs in `job_ids` that `retry` would retry, by the same
    statement, `BATCH_SIZE` per transaction with one `jobs.retried` audit entry each;
    answers the jobs retried."""
    return await _many(pool, app_id, job_ids, actor, "jobs.retried", _retry_one)


async def _cancel_one(conn: Conn, app_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    if await conn.fetchval(Q.cancel_job, job_id, app_id) is None:
        return False
    await record_canceled(conn, job_id)
    return True


async def _retry_one(conn: Conn, app_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    return await conn.fetchval(Q.retry_job, job_id, app_id) is not None


async def _many(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    job_ids: Sequence[uuid.UUID],
    actor: Actor,
    action: str,
    one: Callable[[Conn, uuid.UUID, uuid.UUID], Awaitable[bool]],
) -> list[uuid.UUID]:
    # In id order, so two bulk actions over the same jobs lock them in the same order.
    ordered = sorted(set(job_ids))
    done: list[uuid.UUID] = []
    async with pool.acquire() as conn:
        for start in range(0, len(ordered), BATCH_SIZE):
            async with conn.transaction():
                acted = [
                    j for j in ordered[start : start + BATCH_SIZE] if await one(conn, app_id, j)
                ]
                if acted:
                    await _audit(conn, actor, action, app_id, acted)
            done.extend(acted)
    return done


async def _audit(
    conn: Conn, actor: Actor, action: str, app_id: uuid.UUID, job_ids: list[uuid.UUID]
) -> None:
    target = str(job_ids[0]) if len(job_ids) == 1 else f"{len(job_ids)} jobs"
    details = {"jobs": [str(j) for j in job_ids]} if len(job_ids) > 1 else None
    await audit.record(conn, actor, action, app_id=app_id, target=target, details=details)

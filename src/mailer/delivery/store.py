"""The send path's database operations: claim, record, retry, release, recover."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from mailer.db.conflicts import retrying_conflicts
from mailer.db.queries import Queries
from mailer.delivery.batching import ClaimedJob, Recipient
from mailer.delivery.rows import ClaimedRow, FailedRecipient, SuppressedRecipient
from mailer.delivery.send import NO_TO_RECIPIENT, Outcome
from mailer.metrics.count import Pending
from mailer.tracking.apply import link_recorded
from mailer.webhooks.outbox import EMAIL_FAILED, EMAIL_SUPPRESSED, OutboxEvent, fan_out

Q = Queries("mailer.delivery")


async def claim(
    pool: asyncpg.Pool,
    *,
    limit: int,
    lease_seconds: float,
    worker_id: str,
    erased_key_pads: tuple[bytes, bytes] | None = None,
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs to this worker (committed before any sending), oldest
    due first, with their recipients; suppressed ones (and, given the HMAC pads of the
    erased-address key, erased suppressed ones) are marked so."""
    inner, outer = erased_key_pads or (None, None)
    rows = await pool.fetch(
        Q.claim_jobs, limit, lease_seconds, worker_id, inner, outer, record_class=ClaimedRow
    )
    return [
        ClaimedJob(
            id=row.id,
            app_id=row.app_id,
            message=row.message,
            attempts=row.attempts,
            created_at=row.created_at,
            retried_at=row.retried_at,
            needs_lookup=row.needs_lookup,
            lookup_missed=row.lookup_missed,
            tags=tuple(row.tags or ()),
            recipients=[
                Recipient(position, kind, email, status)
                for position, kind, email, status in zip(
                    row.positions or (),
                    row.kinds or (),
                    row.emails or (),
                    row.statuses or (),
                    strict=True,
                )
            ],
        )
        for row in rows
    ]


async def record(pool: asyncpg.Pool, outcome: Outcome, *, worker_id: str) -> None:
    """Write an outcome: recipients' results, finished jobs, retries — all or nothing.

    The common outcome, every message accepted, takes one statement (atomic on its own):
    it writes nothing if an event might be waiting for one of its recipients, and the
    outcome is then recorded in a transaction that links such events too. Recording takes
    MessageID bucket locks before row locks, an event intake row locks first: in a rare
    interleaving the two deadlock, and the loser runs again (docs/tracking.md, "Linking").
    """
    await retrying_conflicts(
        lambda: _record(pool, outcome, worker_id=worker_id), action="record_retry"
    )


async def _record(pool: asyncpg.Pool, outcome: Outcome, *, worker_id: str) -> None:
    if not outcome.rejected and not outcome.retries and not outcome.suppressed:
        if await pool.fetchval(Q.record_sends, *_sends(outcome), True, *_counted(outcome)):
            return
    counts = Pending()
    async with pool.acquire() as conn, conn.transaction():
        if outcome.accepted or outcome.finished:
            await conn.fetchval(Q.record_sends, *_sends(outcome), False, *_counted(outcome))
        if outcome.accepted:
            # Tracking events that arrived before this result wait for it: link them now.
            a = outcome.accepted
            await link_recorded(conn, [(x.job_id, x.position, x.message_id) for x in a], counts)
        if outcome.rejected:
            r = outcome.rejected
            failed = await conn.fetch(
                Q.record_rejected,
                [x.job_id for x in r],
                [x.position for x in r],
                [x.error for x in r],
                record_class=FailedRecipient,
            )
            await fan_out(conn, [_failed_event(row) for row in failed])
        if outcome.suppressed:
            held = await conn.fetch(
                Q.suppressed_recipients,
                [job for job, _ in outcome.suppressed],
                [position for _, position in outcome.suppressed],
                record_class=SuppressedRecipient,
            )
            await fan_out(conn, [_suppressed_event(row) for row in held])
        if outcome.retries:
            t = outcome.retries
            await conn.execute(
                Q.retry_jobs,
                [x.job_id for x in t],
                [x.run_at for x in t],
                [x.outcome_unknown for x in t],
                [x.error for x in t],
                worker_id,
                [not x.attempted for x in t],
            )
    counts.commit()


def _sends(outcome: Outcome) -> tuple[list[Any], ...]:
    """`record_sends`'s array parameters: the accepted recipients, then the finished jobs."""
    a, f = outcome.accepted, outcome.finished
    return (
        [x.job_id for x in a],
        [x.position for x in a],
        [x.message_id for x in a],
        [x.message_uuid for x in a],
        [x.job_id for x in f],
        [x.state for x in f],
        [x.error for x in f],
    )


def _counted(outcome: Outcome) -> tuple[list[Any], list[Any], list[Any]]:
    """`record_sends`' $9-$11, for the stats' `sent`: each accepted recipient's app, then
    (job, tag) pairs, one per tag of each tagged job (none for untagged jobs)."""
    apps = [x.app_id for x in outcome.accepted]
    tags = {x.job_id: x.tags for x in outcome.accepted if x.tags}
    pairs = [(job_id, tag) for job_id, job_tags in tags.items() for tag in job_tags]
    return apps, [job_id for job_id, _ in pairs], [tag for _, tag in pairs]


def _failed_event(row: FailedRecipient) -> OutboxEvent:
    """The `email.failed` webhook event of a recipient `record_rejected` just failed."""
    return OutboxEvent(
        # One per recipient and round: a recipient fails at most once (only a queued one
        # can) until the app retries the job.
        event_id=f"failed_{row.job_id}_{row.position}"
        + (f"_retry{row.retries}" if row.retries else ""),
        app_id=row.app_id,
        type=EMAIL_FAILED,
        occurred_at=row.failed_at,
        job_id=row.job_id,
        recipient=row.email,
        message_id=None,
        details={"reason": failure_reason(row.error), "error": row.error},
        metadata=row.metadata,
    )


def failure_reason(error: dict[str, Any]) -> str:
    """Why a recipient failed, in one word for `email.failed`: ``rejected`` (Mailjet
    refused the message), ``gave_up`` (our retries ran out), ``no_to_recipient`` (every To
    is suppressed)."""
    if "gave_up" in error:
        return "gave_up"
    if error.get("reason") == NO_TO_RECIPIENT:
        return "no_to_recipient"
    return "rejected"


def _suppressed_event(row: SuppressedRecipient) -> OutboxEvent:
    """The `email.suppressed` webhook event of a recipient not sent to."""
    return OutboxEvent(
        # One per recipient: reported again when a retried job is recorded, and then not
        # delivered twice (the outbox is unique per endpoint and event id).
        event_id=f"suppressed_{row.job_id}_{row.position}",
        app_id=row.app_id,
        type=EMAIL_SUPPRESSED,
        occurred_at=row.suppressed_at,
        job_id=row.job_id,
        recipient=row.email,
        message_id=None,
        details={"reason": row.reason or "suppressed"},
        metadata=row.metadata,
        tags=row.tags,
    )


async def release(pool: asyncpg.Pool, job_ids: Sequence[uuid.UUID], *, worker_id: str) -> None:
    """Give back claimed jobs that were never attempted (a draining worker)."""
    if job_ids:
        await pool.execute(Q.release_jobs, list(job_ids), worker_id)


async def recover_expired(pool: asyncpg.Pool, *, limit: int = 1000) -> int:
    """Requeue jobs whose worker died (lease ended), marked for a lookup before resending."""
    rows = await pool.fetch(Q.recover_expired_leases, limit)
    return len(rows)


async def next_due(pool: asyncpg.Pool) -> datetime | None:
    """When the earliest waiting job is due, if any job waits."""
    value: datetime | None = await pool.fetchval(Q.next_due)
    return value

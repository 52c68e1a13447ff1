"""Accepting jobs: one statement stores the jobs, their recipients and the wake-up signal
(a batch without idempotency keys is COPYed instead, in one transaction).

Concurrent single-email requests are coalesced: whatever arrives while a write is in
flight goes into the next write together (one statement, one commit, one NOTIFY), so the
commit rate, not the request rate, bounds the database work. Every caller is answered only
after its rows are committed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from mailer.db.coalesce import Coalescer
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.delivery.email import EmailRequest
from mailer.delivery.limits import QuotaApps, QuotaExceeded, seconds_until_next_utc_day
from mailer.delivery.rows import ExistingJob, StoredJob
from mailer.ids import uuid7
from mailer.ops.outage import is_connection_lost, is_unavailable

Q = Queries("mailer.delivery")
log = logging.getLogger(__name__)


# Not frozen: building a frozen dataclass costs ~2 µs more, and the enqueue path builds
# one per email (docs/benchmarks.md).
@dataclass(slots=True)
class NewJob:
    """A validated job, ready to store."""

    id: uuid.UUID
    app_id: uuid.UUID
    message: dict[str, Any]
    metadata: dict[str, Any] | None
    recipients: list[tuple[str, str]]
    run_at: datetime | None
    idempotency_key: str | None = None
    request_hash: bytes | None = None
    # Addresses given again, folded into a recipient: {"position": [{kind, email}, ...]}.
    merged: dict[str, list[dict[str, str]]] | None = None
    tags: list[str] | None = None


@dataclass(slots=True)
class Accepted:
    """The answer to an enqueue: the job's id, and whether it was an idempotent replay."""

    job_id: uuid.UUID
    replayed: bool = False


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


class CommitOutcomeUnknown(Exception):
    """The connection broke while the jobs were being written: they may or may not be
    stored. A retry with the same Idempotency-Key answers the first job if it was."""


def request_hash(body: Any) -> bytes:
    """A stable hash of a request body, to tell a retry from a different request."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()


def new_job(
    app_id: uuid.UUID,
    email: EmailRequest,
    *,
    idempotency_key: str | None = None,
    body_hash: bytes | None = None,
) -> NewJob:
    """Turn a validated email into a job to store."""
    return NewJob(
        id=uuid7(),
        app_id=app_id,
        message=email.to_mailjet(),
        metadata=email.metadata,
        recipients=email.recipients(),
        run_at=email.due_at(),
        idempotency_key=idempotency_key,
        request_hash=body_hash,
        merged=email.merged(),
        tags=email.tags,
    )


async def insert_jobs(conn: Conn, jobs: Sequence[NewJob]) -> list[Accepted]:
    """Store jobs (one statement, so all or none even outside a transaction); answer per
    job, in order.

    A job whose idempotency key exists already is not stored again: the answer names the
    first job, or raises `IdempotencyConflict` when the stored body hash differs. Callers
    that must store nothing in that case run this inside a transaction.
    """
    # One JSON parameter rather than an array per column: asyncpg inspects every element
    # of an array parameter in Python, which cost more than encoding the JSON.
    rows = await conn.fetch(Q.insert_jobs, [_as_json(job) for job in jobs], record_class=StoredJob)
    inserted = {row.id for row in rows if row.id is not None}
    if len(inserted) == len(jobs):
        return [Accepted(j.id) for j in jobs]
    return await _resolve_replays(conn, jobs, inserted)


def _as_json(job: NewJob) -> dict[str, Any]:
    return {
        # Ids are asyncpg's own UUID type (`mailer.ids`), which orjson does not know.
        "id": str(job.id),
        "app_id": str(job.app_id),
        "message": job.message,
        "metadata": job.metadata,
        "idempotency_key": job.idempotency_key,
        "request_hash": None if job.request_hash is None else job.request_hash.hex(),
        "run_at": job.run_at,
        "recipients": job.recipients,
        "merged": job.merged,
        "tags": job.tags,
    }


async def copy_jobs(conn: Conn, jobs: Sequence[NewJob]) -> list[Accepted]:
    """Store jobs without idempotency keys in bulk, with COPY, in one transaction.

    COPY cannot skip conflicts, so it is only for jobs that cannot conflict. A job due now
    gets the transaction's `now()`, as `insert_jobs` gives it: the column's default when
    every job is due now (the common case, one round trip less), else read first.
    """
    async with conn.transaction():
        columns = ["id", "app_id", "message", "metadata", "tags"]
        records: list[tuple[Any, ...]]
        if all(j.run_at is None for j in jobs):
            records = [(j.id, j.app_id, j.message, j.metadata, j.tags) for j in jobs]
            due_now = True
        else:
            now = await conn.fetchval(Q.transaction_now)
            columns.append("run_at")
            records = [
                (j.id, j.app_id, j.message, j.metadata, j.tags, j.run_at or now) for j in jobs
            ]
            due_now = any(j.run_at is None or j.run_at <= now for j in jobs)
        await conn.copy_records_to_table("jobs", columns=columns, records=records)
        tagged = [(j.app_id, tag, j.id) for j in jobs for tag in j.tags or ()]
        if tagged:
            await conn.copy_records_to_table(
                "job_tags", columns=["app_id", "tag", "job_id"], records=tagged
            )
        if tagged or any(j.merged is not None for j in jobs):
            await conn.copy_records_to_table(
                "messages",
                columns=["job_id", "position", "app_id", "kind", "email", "merged", "tags"],
                records=[
                    (j.id, position, j.app_id, kind, email, _merged_at(j, position), j.tags)
                    for j in jobs
                    for position, (kind, email) in enumerate(j.recipients)
                ],
            )
        else:
            await conn.copy_records_to_table(
                "messages",
                columns=["job_id", "position", "app_id", "kind", "email"],
                records=[
                    (j.id, position, j.app_id, kind, email)
                    for j in jobs
                    for position, (kind, email) in enumerate(j.recipients)
                ],
            )
        # `accepted` per app under '' (all) and each tag of its jobs.
        counts: dict[tuple[uuid.UUID, str], int] = {}
        for job in jobs:
            for tag in ("", *(job.tags or ())):
                key = (job.app_id, tag)
                counts[key] = counts.get(key, 0) + len(job.recipients)
        await conn.execute(
            Q.count_accepted_emails,
            [app_id for app_id, _ in counts],
            [tag for _, tag in counts],
            list(counts.values()),
        )
        if due_now:
            await conn.execute(Q.notify_jobs)
    return [Accepted(j.id) for j in jobs]


def _merged_at(job: NewJob, position: int) -> list[dict[str, str]] | None:
    return None if job.merged is None else job.merged.get(str(position))


async def store_jobs(conn: Conn, jobs: Sequence[NewJob]) -> list[Accepted]:
    """Store jobs all-or-nothing: jobs without idempotency keys in a single statement (no
    transaction block needed), keyed ones in a transaction, which an
    `IdempotencyConflict` rolls back."""
    if all(j.idempotency_key is None for j in jobs):
        return await insert_jobs(conn, jobs)
    async with conn.transaction():
        return await insert_jobs(conn, jobs)


async def store_counted(conn: Conn, jobs: Sequence[NewJob], *, bulk: bool = True) -> list[Accepted]:
    """Store jobs whose apps have a daily quota and count them against it, in one
    transaction: `QuotaExceeded` (and nothing stored) when an app's do not fit. Replays of
    jobs stored before are not counted again. `bulk` COPYs jobs without idempotency keys (a
    batch); otherwise, as for coalesced single jobs, one statement stores them all."""
    async with conn.transaction():
        if bulk and all(j.idempotency_key is None for j in jobs):
            accepted = await copy_jobs(conn, jobs)
        else:
            accepted = await insert_jobs(conn, jobs)
        fresh: dict[uuid.UUID, int] = {}
        for job, answer in zip(jobs, accepted, strict=True):
            if not answer.replayed:
                fresh[job.app_id] = fresh.get(job.app_id, 0) + 1
        for app_id, emails in fresh.items():
            if await conn.fetchval(Q.count_accepted, app_id, emails) is None:
                raise QuotaExceeded(seconds_until_next_utc_day(datetime.now(UTC)))
    return accepted


async def _resolve_replays(
    conn: Conn, jobs: Sequence[NewJob], inserted: set[uuid.UUID]
) -> list[Accepted]:
    skipped = [j for j in jobs if j.id not in inserted]
    rows = await conn.fetch(
        Q.jobs_by_idempotency_key,
        [j.app_id for j in skipped],
        [j.idempotency_key for j in skipped],
        record_class=ExistingJob,
    )
    existing: dict[tuple[uuid.UUID, str | None], ExistingJob] = {
        (r.app_id, r.idempotency_key): r for r in rows
    }
    answers = []
    for job in jobs:
        if job.id in inserted:
            answers.append(Accepted(job.id))
            continue
        row = existing[(job.app_id, job.idempotency_key)]
        if row.request_hash != job.request_hash:
            raise IdempotencyConflict(
                f"Idempotency-Key {job.idempotency_key!r} was used with a different request"
            )
        answers.append(Accepted(row.id, replayed=True))
    return answers


StoreJobs = Callable[[Conn, Sequence[NewJob]], Awaitable[list[Accepted]]]

# A coalesced write is one jsonb parameter, which PostgreSQL caps at 256 MB; far below
# that, a group of large emails goes out in several writes instead of one huge one.
MAX_GROUP_BYTES = 32 * 1024 * 1024


class Enqueuer:
    """Writes single jobs in coalesced writes, and each batch all-or-nothing in one write."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        writers: int = 2,
        max_group: int = 500,
        max_group_bytes: int = MAX_GROUP_BYTES,
        quota_refresh_seconds: float = 10.0,
    ) -> None:
        self._pool = pool
        self._quotas = QuotaApps(pool, quota_refresh_seconds)
        # Jobs of a combined write whose outcome is unknown: the coalescer writes them again
        # one by one, and each must still answer "unknown", not "not stored", if that fails.
        self._uncertain: set[uuid.UUID] = set()

        def coalescer(store: StoreJobs) -> Coalescer[NewJob, Accepted]:
            return Coalescer(
                functools.partial(self._write, store),
                writers=writers,
                max_group=max_group,
                weigh=job_size,
                max_weight=max_group_bytes,
            )

        self._coalescer = coalescer(store_jobs)
        # Jobs of apps with a daily quota are grouped too, each group counted in the
        # transaction that stores it. A group that does not fit fails whole, and the
        # coalescer then writes its jobs one by one: as many as fit are stored.
        self._counted = coalescer(functools.partial(store_counted, bulk=False))

    async def start(self) -> None:
        """Start the writers."""
        await self._coalescer.start()
        await self._counted.start()

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers."""
        await self._coalescer.stop()
        await self._counted.stop()

    async def enqueue(self, job: NewJob) -> Accepted:
        """Store one job; returns once it is committed (even if the client goes away).
        `QuotaExceeded` when its app has used its daily quota (nothing is stored)."""
        if await self._quotas.has_quota(job.app_id):
            return await self._counted.submit(job)
        return await self._coalescer.submit(job)

    async def enqueue_batch(self, jobs: Sequence[NewJob]) -> list[Accepted]:
        """Store several jobs of one app all-or-nothing (with COPY when none has an
        idempotency key); `QuotaExceeded` when they do not fit in its daily quota."""
        counted = bool(jobs) and await self._quotas.has_quota(jobs[0].app_id)
        return await self._store_batch(jobs, counted=counted)

    async def _store_batch(self, jobs: Sequence[NewJob], *, counted: bool) -> list[Accepted]:
        async with self._pool.acquire() as conn:
            try:
                if counted:
                    return await store_counted(conn, jobs)
                if all(j.idempotency_key is None for j in jobs):
                    return await copy_jobs(conn, jobs)
                return await store_jobs(conn, jobs)
            except Exception as exc:
                if is_connection_lost(exc):
                    raise CommitOutcomeUnknown(str(exc)) from exc
                raise

    async def _write(self, store: StoreJobs, jobs: Sequence[NewJob]) -> list[Accepted]:
        uncertain = len(jobs) == 1 and jobs[0].id in self._uncertain
        try:
            async with self._pool.acquire() as conn:
                try:
                    return await store(conn, jobs)
                except Exception as exc:
                    if is_connection_lost(exc):
                        if len(jobs) > 1:
                            self._uncertain.update(j.id for j in jobs)
                        raise CommitOutcomeUnknown(str(exc)) from exc
                    raise
        except CommitOutcomeUnknown:
            raise
        except Exception as exc:
            if uncertain and is_unavailable(exc):
                raise CommitOutcomeUnknown(str(exc)) from exc
            raise
        finally:
            if len(jobs) == 1:
                self._uncertain.discard(jobs[0].id)


def job_size(job: NewJob) -> int:
    """Roughly how many bytes a job weighs: its bodies and attachments (base64)."""
    message = job.message
    size = len(message.get("TextPart", "")) + len(message.get("HTMLPart", ""))
    for key in ("Attachments", "InlinedAttachments"):
        for attachment in message.get(key, ()):
            size += len(attachment["Base64Content"])
    return size

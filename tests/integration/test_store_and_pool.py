"""Storing jobs and the pool's connections, against the real PostgreSQL: COPY wakes the
workers only for jobs due now, coalesced writes are bounded in bytes, an app's daily quota
holds in coalesced writes, and every connection runs without JIT."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from mailer.db.pool import connect
from mailer.delivery import limits
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import (
    Accepted,
    Enqueuer,
    NewJob,
    StoreJobs,
    copy_jobs,
    job_size,
    new_job,
)
from mailer.delivery.limits import QuotaExceeded
from mailer.delivery.worker import JOBS_CHANNEL as CHANNEL


def _email(**extra: str) -> EmailRequest:
    body = {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": "ann@example.org"}],
        "subject": "Hi",
        "text": "Hello",
        **extra,
    }
    return EmailRequest.model_validate(body)


async def _notified_by_copy(pool: asyncpg.Pool, db_dsn: str, email: EmailRequest) -> bool:
    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, $2)", app_id, str(app_id))
    heard = asyncio.Event()
    listener = await connect(db_dsn)
    try:
        await listener.add_listener(CHANNEL, lambda *_: heard.set())
        async with pool.acquire() as conn:
            await copy_jobs(conn, [new_job(app_id, email)])
        try:
            await asyncio.wait_for(heard.wait(), 1.0)
        except TimeoutError:
            return False
        return True
    finally:
        await listener.close()


async def test_copy_notifies_for_jobs_due_now_only(pool: asyncpg.Pool, db_dsn: str) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await _notified_by_copy(pool, db_dsn, _email()) is True
    assert await _notified_by_copy(pool, db_dsn, _email(send_at=later)) is False


async def test_connections_run_without_jit(pool: asyncpg.Pool, db_dsn: str) -> None:
    assert await pool.fetchval("SHOW jit") == "off"
    conn = await connect(db_dsn)
    try:
        assert await conn.fetchval("SHOW jit") == "off"
    finally:
        await conn.close()


async def test_coalesced_writes_stop_at_their_byte_bound(pool: asyncpg.Pool) -> None:
    groups: list[int] = []

    class CountingEnqueuer(Enqueuer):
        async def _write(self, store: StoreJobs, jobs: Sequence[NewJob]) -> list[Accepted]:
            groups.append(len(jobs))
            return await super()._write(store, jobs)

    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, $2)", app_id, str(app_id))
    jobs = [new_job(app_id, _email(html="x" * 1000)) for _ in range(6)]
    # Two jobs reach the bound: the six, all pending at once, go out two by two.
    enqueuer = CountingEnqueuer(pool, max_group_bytes=2 * job_size(jobs[0]))
    await enqueuer.start()
    try:
        accepted = await asyncio.gather(*(enqueuer.enqueue(job) for job in jobs))
    finally:
        await enqueuer.stop()
    assert groups == [2, 2, 2]
    assert [a.job_id for a in accepted] == [j.id for j in jobs]
    stored = await pool.fetchval("SELECT count(*) FROM jobs WHERE app_id = $1", app_id)
    assert stored == 6


async def test_coalesced_writes_of_a_quota_app_store_exactly_what_fits(
    pool: asyncpg.Pool,
) -> None:
    groups: list[int] = []

    class CountingEnqueuer(Enqueuer):
        async def _write(self, store: StoreJobs, jobs: Sequence[NewJob]) -> list[Accepted]:
            groups.append(len(jobs))
            return await super()._write(store, jobs)

    limited, free = uuid.uuid4(), uuid.uuid4()
    for app_id in (limited, free):
        await pool.execute("INSERT INTO apps (id, name) VALUES ($1, $2)", app_id, str(app_id))
    async with pool.acquire() as conn:
        await limits.set_limits(conn, limited, daily=5)
    enqueuer = CountingEnqueuer(pool, writers=1)
    await enqueuer.start()
    try:
        # The first write goes alone; the 11 that wait behind it go out as one group.
        first = await enqueuer.enqueue(new_job(limited, _email()))
        answers = await asyncio.gather(
            *(enqueuer.enqueue(new_job(limited, _email())) for _ in range(11)),
            enqueuer.enqueue(new_job(free, _email())),
            return_exceptions=True,
        )
    finally:
        await enqueuer.stop()
    stored = [a for a in answers[:11] if isinstance(a, Accepted)]
    refused = [a for a in answers[:11] if isinstance(a, QuotaExceeded)]
    assert isinstance(first, Accepted) and isinstance(answers[11], Accepted)
    # The group of 11 did not fit: written one by one, exactly the 4 that fit are stored.
    assert (len(stored), len(refused)) == (4, 7)
    assert 11 in groups
    counted = await pool.fetchval("SELECT accepted FROM app_daily_usage WHERE app_id = $1", limited)
    assert counted == 5
    kept = await pool.fetchval("SELECT count(*) FROM jobs WHERE app_id = $1", limited)
    assert kept == 5

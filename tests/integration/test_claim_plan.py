"""The claim's plan does not depend on the table's statistics: on a backlog that no ANALYZE
has seen (a burst into a fresh or long-quiet queue), a claim reads the jobs it takes, not
every due job (which it once read and sorted, 110 ms a claim at 100,000 due)."""

from __future__ import annotations

import uuid

import asyncpg

from mailer.db.queries import Queries
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job

Q = Queries("mailer.delivery")

BACKLOG = 3_000
_READ = "SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'jobs'"


def _email(index: int) -> EmailRequest:
    return EmailRequest.model_validate(
        {
            "from": {"email": "noreply@shop.example"},
            "to": [{"email": f"user{index}@example.org"}],
            "subject": "Hi",
            "text": "Hello",
        }
    )


async def test_a_claim_reads_only_what_it_takes_on_a_backlog_without_statistics(
    pool: asyncpg.Pool,
) -> None:
    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'shop')", app_id)
    jobs = [new_job(app_id, _email(i)) for i in range(BACKLOG)]
    async with pool.acquire() as conn:
        await insert_jobs(conn, jobs)
        assert await conn.fetchval(
            "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL "
            "FROM pg_stat_user_tables WHERE relname = 'jobs'"
        )
        async with conn.transaction():
            # Rows of `jobs` this backend read through indexes (bitmap scans included) or
            # by sequential scans, and has not yet reported (the insert's checks are there).
            before = await conn.fetchval(_READ)
            claimed = await conn.fetch(Q.claim_jobs, 10, 60.0, "test", None, None)
            read = await conn.fetchval(_READ) - before
    assert len(claimed) == 10
    assert read < 100, read

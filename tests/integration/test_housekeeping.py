"""Housekeeping: with autovacuum off, the worker gathers the statistics that the queue's
plans depend on, by autovacuum's own rule."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from mailer.db.housekeeping import Housekeeping
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job


def _email(i: int) -> EmailRequest:
    return EmailRequest.model_validate(
        {
            "from": {"email": "noreply@shop.example"},
            "to": [{"email": f"user{i}@example.org"}],
            "subject": "Hi",
            "text": "Hello",
        }
    )


async def test_changed_tables_get_statistics_once(pool: asyncpg.Pool) -> None:
    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'a')", app_id)
    async with pool.acquire() as conn:
        await insert_jobs(conn, [new_job(app_id, _email(i)) for i in range(2000)])
    housekeeping = Housekeeping(pool, pause=0)
    # The server publishes a backend's table counters up to a second after its commit.
    done = None
    for _ in range(50):
        done = await housekeeping.run_once()
        if done is not None:
            break
        await asyncio.sleep(0.1)
    assert done in ("analyze", "vacuum")
    # Each job has its own messages: the planner now knows job_id is nearly unique.
    n_distinct = await pool.fetchval(
        "SELECT n_distinct FROM pg_stats WHERE tablename = 'messages' AND attname = 'job_id'"
    )
    assert n_distinct is not None and n_distinct < -0.5
    assert await housekeeping.run_once() is None  # nothing changed since


async def test_housekeeping_runs_only_without_autovacuum(pool: asyncpg.Pool) -> None:
    housekeeping = Housekeeping(pool, check_every=0.01)
    await housekeeping.start()
    try:
        running = housekeeping._task is not None
        autovacuum = await pool.fetchval("SELECT current_setting('autovacuum')::boolean")
        assert running is (not autovacuum)
    finally:
        await housekeeping.stop()

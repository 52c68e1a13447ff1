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
    assert await _next_run(housekeeping) == "analyze"  # always first: plans need statistics
    # Each job has its own messages: the planner now knows job_id is nearly unique.
    n_distinct = await pool.fetchval(
        "SELECT n_distinct FROM pg_stats WHERE tablename = 'messages' AND attname = 'job_id'"
    )
    assert n_distinct is not None and n_distinct < -0.5
    assert await housekeeping.run_once() is None  # nothing changed since
    await pool.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs LIMIT 1500)")
    assert await _next_run(housekeeping) == "vacuum"
    dead = await pool.fetchval("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'")
    assert dead == 0


async def _next_run(housekeeping: Housekeeping) -> str | None:
    # The server publishes a backend's table counters up to a second after its commit.
    for _ in range(50):
        done = await housekeeping.run_once()
        if done is not None:
            return done
        await asyncio.sleep(0.1)
    return None


async def test_housekeeping_runs_only_without_autovacuum(pool: asyncpg.Pool) -> None:
    housekeeping = Housekeeping(pool, check_every=0.01)
    await housekeeping.start()
    try:
        autovacuum = await pool.fetchval("SELECT current_setting('autovacuum')::boolean")
        assert housekeeping.running is (not autovacuum)
    finally:
        await housekeeping.stop()


async def test_json_columns_round_trip_in_the_binary_format(pool: asyncpg.Pool) -> None:
    value = {"big": 2**63 - 1, "text": "é\u00e9", "null": None, "list": [1, "two", None]}
    row = await pool.fetchrow(
        "SELECT $1::jsonb AS b, $1::json AS j, $2::jsonb AS missing, $3::jsonb[] AS arr",
        value,
        None,
        [value, {"x": 1}],
    )
    assert row is not None
    assert row["b"] == value and row["j"] == value
    assert row["missing"] is None  # SQL NULL, not JSON null
    assert row["arr"] == [value, {"x": 1}]
    assert await pool.fetchval("SELECT 'null'::jsonb") is None  # JSON null reads as None

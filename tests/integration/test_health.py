"""Health: /livez, /readyz, worker heartbeats and `mailer status`, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from mailer import __version__
from mailer.db.pool import connect, create_pool
from mailer.ops import heartbeat
from mailer.ops.heartbeat import Heartbeat
from mailer.ops.status import status_report
from mailer.simulator.server import SimulatorServer
from tests.conftest import admin_execute, with_database
from tests.integration.harness import running_service


async def test_livez_and_readyz_report_live_workers(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    async with running_service(db_dsn, simulator) as svc:
        async with svc.http.get(svc.url + "/livez") as r:
            assert r.status == 200
            assert await r.json() == {"ok": True}
        async with svc.http.get(svc.url + "/readyz") as r:
            assert r.status == 200
            # The in-process worker wrote its heartbeat when it started.
            assert await r.json() == {"ready": True, "live_workers": 1}
    # Stopped cleanly, the worker deleted its row.
    conn = await connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM worker_heartbeats") == 0
    finally:
        await conn.close()


async def test_readyz_is_503_with_the_reason_when_migrations_are_missing(db_dsn: str) -> None:
    async with running_service(db_dsn, None, worker=False) as svc:
        async with svc.http.get(svc.url + "/readyz") as r:
            assert (r.status, await r.json()) == (200, {"ready": True, "live_workers": 0})
        conn = await connect(db_dsn)
        try:
            await conn.execute("DELETE FROM schema_migrations WHERE version = 6")
        finally:
            await conn.close()
        async with svc.http.get(svc.url + "/readyz") as r:
            body = await r.json()
            assert r.status == 503
            assert r.headers["Retry-After"]
        assert body["ready"] is False
        assert body["reason"] == "migrations_pending"
        assert "0006_worker_heartbeats" in body["message"]
        # /livez does not consult the database.
        async with svc.http.get(svc.url + "/livez") as r:
            assert r.status == 200


async def test_readyz_is_503_when_the_database_is_gone(server_dsn: str, template_db: str) -> None:
    name = f"mailer_ready_{os.getpid()}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        async with running_service(with_database(server_dsn, name), None, worker=False) as svc:
            await admin_execute(server_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')
            async with svc.http.get(svc.url + "/readyz") as r:
                body = await r.json()
                assert r.status == 503
            assert body["reason"] == "database_unreachable"
            async with svc.http.get(svc.url + "/livez") as r:
                assert r.status == 200
    finally:
        await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_heartbeat_is_written_refreshed_counted_and_deleted(pool: asyncpg.Pool) -> None:
    beat = Heartbeat(pool, "host-a:123:abcd", interval=0.05)
    await beat.start()
    try:
        row = await pool.fetchrow("SELECT * FROM worker_heartbeats")
        assert row is not None
        assert (row["id"], row["pid"], row["version"]) == (
            "host-a:123:abcd",
            os.getpid(),
            __version__,
        )
        first_seen = row["last_seen_at"]
        for _ in range(100):
            await asyncio.sleep(0.02)
            seen = await pool.fetchval("SELECT last_seen_at FROM worker_heartbeats")
            if seen > first_seen:
                break
        else:
            raise AssertionError("the heartbeat was never refreshed")
        # A row the worker refreshes is counted; one not seen for a minute is not.
        await pool.execute(
            "INSERT INTO worker_heartbeats (id, host, pid, version, started_at, last_seen_at)"
            " VALUES ('dead:1:x', 'dead', 1, '0', now() - interval '1 hour',"
            " now() - interval '1 minute')"
        )
        async with pool.acquire() as conn:
            assert await heartbeat.live_worker_count(conn) == 1
            listed = {w.id: w.alive for w in await heartbeat.workers(conn)}
        assert listed == {"host-a:123:abcd": True, "dead:1:x": False}
    finally:
        await beat.stop()
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM worker_heartbeats")]
    assert ids == ["dead:1:x"]


async def test_heartbeat_start_prunes_rows_of_long_dead_workers(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO worker_heartbeats (id, host, pid, version, started_at, last_seen_at)"
        " VALUES ('old:1:x', 'old', 1, '0', now() - interval '3 days', now() - interval '2 days')"
    )
    beat = Heartbeat(pool, "new:2:y", interval=10)
    await beat.start()
    await beat.stop()
    assert await pool.fetchval("SELECT count(*) FROM worker_heartbeats") == 0


async def _seed(conn: asyncpg.Connection) -> None:
    app = await conn.fetchval(
        "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'a') RETURNING id"
    )
    old = datetime.now(UTC) - timedelta(seconds=90)
    for state, run_at in [
        ("queued", old),
        ("queued", datetime.now(UTC) + timedelta(hours=1)),
        ("sending", old),
        ("done", old),
        ("done", old),
        ("failed", old),
    ]:
        await conn.execute(
            "INSERT INTO jobs (id, app_id, state, message, run_at) "
            "VALUES (gen_random_uuid(), $1, $2, '{}', $3)",
            app,
            state,
            run_at,
        )
    post = await conn.fetchval(
        "INSERT INTO event_posts (event_count, body) VALUES (2, '') RETURNING id"
    )
    for kind, ago in [("sent", 30), ("sent", 5), ("open", 60)]:
        await conn.execute(
            "INSERT INTO events (post_id, dedupe_key, type, understood, occurred_at,"
            " time_estimated, message_id, email, is_test, details, raw, received_at)"
            " VALUES ($1, gen_random_uuid()::text::bytea, $2, true, now(), false, 1, 'a@b',"
            " false, '{}', '{}', now() - make_interval(secs => $3))",
            post,
            kind,
            float(ago),
        )
    # What the intake writes to the event clock for those (ops/event_clock.py).
    await conn.execute(
        "INSERT INTO event_clock (type, last_at) VALUES"
        " ('sent', now() - interval '5 s'), ('open', now() - interval '60 s')"
    )
    await conn.execute(
        "INSERT INTO worker_heartbeats (id, host, pid, version, started_at)"
        " VALUES ('w:1:a', 'w', 1, '0.1.0', now())"
    )


async def test_status_report_counts_the_queue_workers_and_events(db_dsn: str) -> None:
    conn = await connect(db_dsn)
    try:
        await _seed(conn)
        report = await status_report(conn)
    finally:
        await conn.close()
    assert report["jobs"] == {"queued": 2, "sending": 1, "done": 2, "failed": 1, "canceled": 0}
    assert report["due_now"] == 1  # the other queued job is scheduled for later
    assert 85 <= report["oldest_due_seconds"] <= 120
    assert report["live_workers"] == 1
    by_type = {e["type"]: e["seconds_ago"] for e in report["last_event_by_type"]}
    assert set(by_type) == {"sent", "open"}
    assert 4 <= by_type["sent"] <= 15 and 59 <= by_type["open"] <= 70


def test_mailer_status_command_prints_the_report(db_dsn: str) -> None:
    import asyncio as _asyncio

    async def seed() -> None:
        conn = await connect(db_dsn)
        try:
            await _seed(conn)
        finally:
            await conn.close()

    _asyncio.run(seed())
    env = {**os.environ, "DATABASE_URL": db_dsn}
    command = [sys.executable, "-m", "mailer.cli", "status"]
    text = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "queued 2  sending 1  done 2  failed 1" in text.stdout
    assert "workers:  1 alive" in text.stdout
    assert "w:1:a" in text.stdout and "sent" in text.stdout
    as_json = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, timeout=60, check=True
    )
    assert orjson.loads(as_json.stdout)["jobs"]["done"] == 2


async def test_a_pool_sees_the_heartbeat_of_a_worker_in_another_pool(db_dsn: str) -> None:
    # Two processes' pools on one database: what one worker writes, the other API counts.
    worker_pool = await create_pool(db_dsn, min_size=1, max_size=2)
    api_pool = await create_pool(db_dsn, min_size=1, max_size=2)
    beat = Heartbeat(worker_pool, "other:9:z")
    try:
        await beat.start()
        async with api_pool.acquire() as conn:
            assert await heartbeat.live_worker_count(conn) == 1
    finally:
        await beat.stop()
        await worker_pool.close()
        await api_pool.close()

"""Retention: expired bodies, jobs (with recipients and events), raw callbacks and webhook
attempts are removed in small batches, an app's own periods are kept, runs are audited;
and migration 0011 brings an existing database along."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mailer.audit import Actor
from mailer.db import migrate
from mailer.db.pool import connect
from mailer.lifecycle.retention import Periods, run_once, set_app_retention
from mailer.runtime import check_secrets
from mailer.simulator.server import SimulatorServer
from mailer.webhooks.signing import generate_secret
from tests.integration.harness import Service, service_settings
from tests.integration.tracking_helpers import (
    email,
    mj_event,
    post_events,
    sent_messages,
    tracking_service,
)
from tests.integration.webhook_receiver import Receiver


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    async with tracking_service(db_dsn, simulator) as svc:
        yield svc


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def sent_and_opened(service: Service, simulator: SimulatorServer, key: str, to: str) -> str:
    job_id = await service.queue(key, email(to, html="<p>secret body</p>"))
    [message] = await sent_messages(service, simulator, key, job_id)
    status, _ = await post_events(service, [mj_event("sent", message), mj_event("open", message)])
    assert status == 200
    return job_id


async def age(pool: asyncpg.Pool, table: str, column: str, days: int, where: str) -> None:
    await pool.execute(
        f"UPDATE {table} SET {column} = now() - make_interval(days => $1) WHERE {where}", days
    )


async def test_expired_data_goes_in_batches_and_the_run_is_audited(
    service: Service, simulator: SimulatorServer, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    assert (await service.request("POST", "/webhooks", shop, json={"url": receiver.url}))[0] == 201
    jobs = [await sent_and_opened(service, simulator, shop, f"u{i}@example.org") for i in range(5)]
    blog_job = await sent_and_opened(service, simulator, blog, "b@example.org")
    await receiver.wait_for(10)
    ids = [uuid.UUID(j) for j in jobs]
    # The two oldest are past 400 days, the next two past 30; the blog keeps bodies longer.
    await age(pool, "jobs", "created_at", 500, f"id IN ('{ids[0]}', '{ids[1]}')")
    await age(pool, "jobs", "created_at", 40, f"id IN ('{ids[2]}', '{ids[3]}', '{blog_job}')")
    await age(pool, "event_posts", "received_at", 40, "id <= 3")
    await age(pool, "webhook_attempts", "created_at", 40, "true")
    await age(pool, "webhook_deliveries", "created_at", 40, "true")
    blog_id = await pool.fetchval("SELECT id FROM apps WHERE name = 'blog'")
    async with pool.acquire() as conn:
        await set_app_retention(conn, blog_id, {"bodies_days": 1000}, Actor.cli())
    posts_before = await pool.fetchval("SELECT count(*) FROM event_posts")
    attempts = await pool.fetchval("SELECT count(*) FROM webhook_attempts")

    async with pool.acquire() as conn:
        removed = await run_once(conn, Periods(), now=datetime.now(UTC), batch=2)
    assert removed is not None
    assert (removed.jobs, removed.events, removed.bodies) == (2, 4, 2)
    assert removed.callbacks == 3 and removed.webhook_attempts == attempts
    assert removed.webhook_deliveries == 10

    left = {r["id"]: r for r in await pool.fetch("SELECT id, message FROM jobs")}
    assert ids[0] not in left and ids[1] not in left
    assert await pool.fetchval("SELECT count(*) FROM events WHERE job_id = ANY($1)", ids[:2]) == 0
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE job_id = ANY($1)", ids[:2]) == 0
    for stripped in ids[2:4]:
        assert "HTMLPart" not in left[stripped]["message"] and "To" in left[stripped]["message"]
        assert (await service.status(shop, str(stripped)))["status"] == "opened"
    assert "HTMLPart" in left[ids[4]]["message"]
    assert "HTMLPart" in left[uuid.UUID(blog_job)]["message"]
    assert await pool.fetchval("SELECT count(*) FROM event_posts") == posts_before - 3

    [entry] = await pool.fetch("SELECT * FROM audit_log WHERE action = 'retention.run'")
    assert entry["actor"].startswith("mailer:retention") and entry["details"]["jobs"] == 2
    async with pool.acquire() as conn:
        again = await run_once(conn, Periods(), now=datetime.now(UTC), batch=2)
    assert again is not None and not again.anything
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'retention.run'") == 1


async def test_one_run_at_a_time(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as holder, pool.acquire() as other:
        assert await holder.fetchval("SELECT pg_try_advisory_lock(7315002018)")
        assert await run_once(other, Periods(), now=datetime.now(UTC)) is None
        await holder.fetchval("SELECT pg_advisory_unlock(7315002018)")
        assert await run_once(other, Periods(), now=datetime.now(UTC)) is not None


async def test_migration_0011_brings_an_existing_database_along(
    server_dsn: str, db_dsn: str
) -> None:
    """A database at 0010 with data: 0011 applies, the data stays, the clear webhook secret
    is sealed at the next start, retention and audit work on it."""
    from tests.conftest import admin_execute, with_database

    name = f"mailer_pre11_{uuid.uuid4().hex[:8]}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    conn = await connect(dsn)
    try:
        await migrate.migrate(conn, before=11)
        app_id = uuid.uuid4()
        secret = generate_secret()
        await conn.execute("INSERT INTO apps (id, name) VALUES ($1, 'old')", app_id)
        await conn.execute(
            "INSERT INTO jobs (id, app_id, message, state, created_at) "
            "VALUES ($1, $2, '{\"HTMLPart\": \"x\"}', 'done', now() - interval '2 years')",
            uuid.UUID(int=1),
            app_id,
        )
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, app_id, url, secret) VALUES ($1, $2, $3, $4)",
            uuid.uuid4(),
            app_id,
            "https://hooks.example/",
            secret,
        )
        await conn.execute(
            'INSERT INTO event_posts (event_count, body) VALUES (1, \'[{"event": "open"}]\')'
        )
        applied = await migrate.migrate(conn)
        later = [m.version for m in migrate.available_migrations() if m.version >= 11]
        assert [m.version for m in applied] == later
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 1
        # The raw body stays, in the partition of the rows from before; ids go on.
        assert await conn.fetchval("SELECT body FROM event_posts_until_0011") == (
            b'[{"event": "open"}]'
        )
        next_id = await conn.fetchval(
            "INSERT INTO event_posts (event_count, body) VALUES (1, '[]') RETURNING id"
        )
        assert next_id == 2
        await check_secrets(service_settings(), dsn)
        stored = await conn.fetchval("SELECT secret FROM webhook_endpoints")
        assert stored != secret and not stored.startswith("whsec_")
        removed = await run_once(conn, Periods(), now=datetime.now(UTC))
        assert removed is not None and removed.jobs == 1
    finally:
        await conn.close()
        await admin_execute(server_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')


async def partition_names(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'event_posts'::regclass ORDER BY c.relname"
    )
    return [r["relname"] for r in rows]


async def test_raw_callbacks_live_in_day_partitions_made_ahead_and_dropped_whole(
    pool: asyncpg.Pool,
) -> None:
    from mailer.lifecycle import partitions

    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)

    def day(offset: int) -> str:
        return f"event_posts_p{today + timedelta(days=offset):%Y%m%d}"

    async with pool.acquire() as conn:
        posts = (partitions.POSTS,)
        assert await partitions.add_ahead(conn, today.date(), tables=posts) == 3  # today: old rows'
        assert await partitions.add_ahead(conn, today.date(), tables=posts) == 0
    assert await partition_names(pool) == sorted(
        [day(1), day(2), day(3), "event_posts_default", "event_posts_until_0011"]
    )
    for offset in (-40, 0, 1, 2, 10):  # 10 days on: no partition, the default holds it
        await pool.execute(
            "INSERT INTO event_posts (event_count, body, received_at) VALUES (1, '[]', $1)",
            today + timedelta(days=offset),
        )
    later = today + timedelta(days=45)  # everything above is now past 30 days
    async with pool.acquire() as conn:
        removed = await run_once(conn, Periods(), now=later, batch=1)
    assert removed is not None
    # Rows at -40, 0 and +10 days one by one; three whole days, then the emptied old rows'.
    assert removed.callbacks == 3 and removed.callback_days == 4
    assert await pool.fetchval("SELECT count(*) FROM event_posts") == 0
    assert await partition_names(pool) == sorted(
        [day(45), day(46), day(47), day(48), "event_posts_default"]
    )
    new = await pool.fetchval(
        "INSERT INTO event_posts (event_count, body, received_at) VALUES (1, '[]', $1) "
        "RETURNING id",
        later,
    )
    assert new == 6  # ids go on from the sequence


def test_cli_sets_and_clears_an_app_s_periods_and_runs_retention(db_dsn: str) -> None:
    import os
    import subprocess
    import sys

    import orjson

    env = {**os.environ, "DATABASE_URL": db_dsn}

    def mailer(*args: str, ok: bool = True) -> str:
        command = [sys.executable, "-m", "mailer.cli", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert (done.returncode == 0) == ok, done.stderr
        return done.stdout if ok else done.stderr

    mailer("apps", "create", "shop")
    assert "bodies 7 d" in mailer("retention", "set", "shop", "--bodies", "7")
    assert "1 to 36500" in mailer("retention", "set", "shop", "--jobs", "0", ok=False)
    mailer("retention", "clear", "shop")
    removed = orjson.loads(mailer("retention", "run", "--json"))
    assert removed["jobs"] == 0
    actions = [e["action"] for e in orjson.loads(mailer("audit", "--app", "shop", "--json"))]
    assert actions[:2] == ["app.retention_changed", "app.retention_changed"]

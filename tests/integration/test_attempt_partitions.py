"""Webhook attempts partitioned by day (migration 0019, issue 18): an existing database
with attempts is converted (rows, ids, indexes, constraints kept), the send, event and
webhook paths work on it, and retention drops expired days whole while the stats rollups
outlive the rows they came from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mailer.db import migrate
from mailer.db.pool import Conn, connect
from mailer.lifecycle import partitions
from mailer.lifecycle.retention import Periods, run_once
from mailer.simulator.server import SimulatorServer
from tests.conftest import admin_execute, with_database
from tests.integration.harness import running_service
from tests.integration.tracking_helpers import (
    email,
    mj_event,
    post_events,
    sent_messages,
    tracking_settings,
)
from tests.integration.webhook_receiver import Receiver

OLD_ATTEMPTS = 300  # spread over the last 60 days


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def pre_0019(server_dsn: str) -> AsyncIterator[str]:
    """A database migrated up to 0018, with webhook deliveries and attempts stored in the
    layout from before (an unpartitioned table)."""
    name = f"mailer_pre19_{uuid.uuid4().hex[:8]}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    conn = await connect(dsn)
    try:
        await migrate.migrate(conn, before=19)
        await conn.execute(
            """
            WITH app AS (INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'old')
                         RETURNING id),
            endpoint AS (
                INSERT INTO webhook_endpoints (id, app_id, url, secret)
                SELECT gen_random_uuid(), id, 'https://hooks.example/', 'whsec_x' FROM app
                RETURNING id, app_id
            ),
            deliveries AS (
                INSERT INTO webhook_deliveries
                    (id, endpoint_id, app_id, event_id, event_type, body, state, created_at,
                     finished_at)
                SELECT gen_random_uuid(), e.id, e.app_id, 'evt_' || g, 'email.sent', '{}',
                       'delivered', now() - make_interval(days => g % 60),
                       now() - make_interval(days => g % 60)
                FROM endpoint e, generate_series(1, $1) g
                RETURNING id, endpoint_id, event_id, created_at
            )
            INSERT INTO webhook_attempts
                (delivery_id, endpoint_id, event_id, attempt, status_code, duration_ms,
                 response, created_at)
            SELECT id, endpoint_id, event_id, 1, 200, 3, 'ok', created_at FROM deliveries
            ORDER BY created_at
            """,
            OLD_ATTEMPTS,
        )
    finally:
        await conn.close()
    yield dsn
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _attempts(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    rows = await conn.fetch("SELECT * FROM webhook_attempts ORDER BY id")
    return [tuple(r.values()) for r in rows]


async def _children(conn: Conn) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'webhook_attempts'::regclass ORDER BY c.relname"
    )
    return [r["relname"] for r in rows]


async def test_migration_0019_partitions_existing_attempts_and_everything_goes_on(
    pre_0019: str, simulator: SimulatorServer, receiver: Receiver
) -> None:
    conn = await connect(pre_0019)
    try:
        before = await _attempts(conn)
        assert len(before) == OLD_ATTEMPTS
        applied = await migrate.migrate(conn)
        assert [m.version for m in applied] == [
            m.version for m in migrate.available_migrations() if m.version >= 19
        ]
        # Every row, byte for byte, now in the partition of the rows from before.
        assert await _attempts(conn) == before
        assert (
            await conn.fetchval(
                "SELECT relkind::text FROM pg_class WHERE relname = $1", "webhook_attempts"
            )
            == "p"
        )
        today = datetime.now(UTC).date()
        days = [f"webhook_attempts_p{today + timedelta(days=i):%Y%m%d}" for i in range(2, 4)]
        children = await _children(conn)
        assert {"webhook_attempts_until_0019", "webhook_attempts_default", *days} <= set(children)
        assert (
            await conn.fetchval("SELECT count(*) FROM ONLY webhook_attempts_until_0019")
            == OLD_ATTEMPTS
        )
        # Indexes and constraints: the key with the partition key, the app's lookups, the
        # cascade's, and the foreign key.
        indexes = {
            r["indexname"]: r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'webhook_attempts'"
            )
        }
        assert "(id, created_at)" in indexes["webhook_attempts_pkey"]
        assert "(endpoint_id, id DESC)" in indexes["webhook_attempts_endpoint"]
        assert "(delivery_id)" in indexes["webhook_attempts_delivery"]
        [fk] = await conn.fetch(
            "SELECT confdeltype::text, confrelid::regclass::text AS target FROM pg_constraint "
            "WHERE conrelid = 'webhook_attempts'::regclass AND contype = 'f'"
        )
        assert fk["target"] == "webhook_deliveries" and fk["confdeltype"] == "c"
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, "
                "duration_ms, created_at) VALUES ($1, $1, 'x', 1, 1, now())",
                uuid.uuid4(),
            )
        # A delivery deleted takes its attempts along, from the old rows' partition.
        oldest = before[0]
        await conn.execute("DELETE FROM webhook_deliveries WHERE id = $1", oldest[1])
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM webhook_attempts WHERE delivery_id = $1", oldest[1]
            )
            == 0
        )
        last_id: int = await conn.fetchval("SELECT max(id) FROM webhook_attempts_until_0019")
    finally:
        await conn.close()

    # The send, event and webhook paths on the migrated database: an attempt lands in
    # today's partition with the next id.
    async with running_service(pre_0019, simulator, settings=tracking_settings()) as service:
        key = await service.create_app("new")
        status, _ = await service.request("POST", "/webhooks", key, json={"url": receiver.url})
        assert status == 201
        job_id = await service.queue(key, email("ann@example.org"))
        [message] = await sent_messages(service, simulator, key, job_id)
        status, _ = await post_events(service, [mj_event("sent", message)])
        assert status == 200
        await receiver.wait_for(1, timeout=60)
        assert (await service.wait_for(key, job_id, {"sent"}))["status"] == "sent"
    conn = await connect(pre_0019)
    try:
        new = await conn.fetchrow(
            "SELECT id, tableoid::regclass::text AS part FROM webhook_attempts "
            "WHERE id > $1 ORDER BY id LIMIT 1",
            last_id,
        )
        # The ids go on from the old rows' (one went to the insert the foreign key refused).
        assert new is not None and new["id"] == last_id + 2
        assert new["part"] in (f"webhook_attempts_p{today:%Y%m%d}", "webhook_attempts_until_0019")
    finally:
        await conn.close()


async def test_retention_drops_expired_attempt_days_whole_and_rollups_outlive_rows(
    pool: asyncpg.Pool,
) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    app_id = await pool.fetchval(
        "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'a') RETURNING id"
    )
    endpoint = await pool.fetchval(
        "INSERT INTO webhook_endpoints (id, app_id, url, secret) "
        "VALUES (gen_random_uuid(), $1, 'https://hooks.example/', 'x') RETURNING id",
        app_id,
    )
    job = uuid.uuid4()
    await pool.execute(
        "INSERT INTO jobs (id, app_id, message, state, created_at) "
        "VALUES ($1, $2, '{}', 'done', $3)",
        job,
        app_id,
        today - timedelta(days=500),
    )
    await pool.execute(
        "INSERT INTO stats_hourly (app_id, hour, shard, accepted, sent) VALUES ($1, $2, 0, 1, 1)",
        app_id,
        today - timedelta(days=500),
    )
    async with pool.acquire() as conn:
        await partitions.add_ahead(conn, today.date(), tables=(partitions.ATTEMPTS,))
    # Attempts today and the next two days (day partitions), 40 days back and 10 days on
    # (no partition: the default one holds them).
    for offset in (-40, 0, 1, 2, 10):
        delivery = await pool.fetchval(
            "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_id, event_type, "
            "body, state, created_at) VALUES (gen_random_uuid(), $1, $2, $3, 'email.sent', "
            "'{}', 'pending', $4) RETURNING id",
            endpoint,
            app_id,
            f"evt_{offset}",
            today + timedelta(days=offset),
        )
        await pool.execute(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, "
            "duration_ms, created_at) VALUES ($1, $2, 'e', 1, 1, $3)",
            delivery,
            endpoint,
            today + timedelta(days=offset),
        )
    parts: dict[datetime, str] = {
        r[0]: r[1]
        for r in await pool.fetch(
            "SELECT created_at, tableoid::regclass::text FROM webhook_attempts"
        )
    }
    assert parts[today] == f"webhook_attempts_p{today:%Y%m%d}"
    assert parts[today + timedelta(days=10)] == "webhook_attempts_default"

    later = today + timedelta(days=45)  # every attempt above is now past 30 days
    async with pool.acquire() as conn:
        removed = await run_once(conn, Periods(), now=later, batch=1)
    assert removed is not None
    # Today and the next two days dropped whole, the two others deleted one by one; the
    # expired job goes, its rollup stays.
    assert removed.webhook_attempt_days >= 3 and removed.webhook_attempts == 2
    assert removed.jobs == 1
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 0
    left = await _children_of(pool)
    assert f"webhook_attempts_p{today:%Y%m%d}" not in left
    assert f"webhook_attempts_p{later:%Y%m%d}" in left and "webhook_attempts_default" in left
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0
    assert (
        await pool.fetchval("SELECT sum(accepted) FROM stats_hourly WHERE app_id = $1", app_id) == 1
    )


async def _children_of(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        return await _children(conn)


async def test_a_busy_table_is_left_to_the_next_run_instead_of_queueing_writers(
    pool: asyncpg.Pool,
) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    async with pool.acquire() as conn:
        await partitions.add_ahead(conn, today.date(), tables=(partitions.ATTEMPTS,))
    later = today + timedelta(days=45)
    async with pool.acquire() as reader, pool.acquire() as conn:
        # A long read holds the table: detaching a partition would wait for it, and every
        # insert would queue behind that wait.
        reader_tx = reader.transaction()
        await reader_tx.start()
        await reader.execute("LOCK TABLE webhook_attempts IN ACCESS SHARE MODE")
        try:
            assert await partitions.drop_expired(conn, partitions.ATTEMPTS, later) == []
            assert (
                await partitions.add_ahead(conn, later.date(), tables=(partitions.ATTEMPTS,)) == 0
            )
        finally:
            await reader_tx.rollback()
        dropped = await partitions.drop_expired(conn, partitions.ATTEMPTS, later)
        assert f"webhook_attempts_p{today:%Y%m%d}" in dropped
        assert await partitions.add_ahead(conn, later.date(), tables=(partitions.ATTEMPTS,)) == 4

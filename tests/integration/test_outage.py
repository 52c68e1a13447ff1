"""The database going away under load: 503 with Retry-After (never 500), the client's
connection kept, one log line per outage, and recovery without a restart.

A throwaway database is dropped (`DROP DATABASE ... WITH (FORCE)`) while clients keep
queueing, then a new one is created, migrated, given the app's key and renamed into place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest
from pydantic import SecretStr

from mailer.db.pool import connect
from mailer.ops.outage import is_connection_lost, is_unavailable
from mailer.runtime import apply_migrations
from tests.conftest import admin_execute, with_database
from tests.integration.harness import Service, running_service, service_settings
from tests.integration.tracking_helpers import basic_auth

EMAIL = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "b@example.org"}],
    "subject": "s",
    "text": "t",
}
CLIENTS = 6
MAX_REQUESTS_PER_CLIENT = 4000


@dataclass
class Answer:
    status: int
    at: float
    body: dict[str, Any]
    retry_after: str | None


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _client(svc: Service, key: str, number: int, load: Load) -> None:
    for n in range(MAX_REQUESTS_PER_CLIENT):
        if load.stop.is_set():
            return
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"c{number}-{n}"}
        async with svc.http.post(svc.url + "/queue", json=EMAIL, headers=headers) as r:
            body = await r.json(content_type=None)
            load.answers.append(
                Answer(r.status, time.monotonic(), body, r.headers.get("Retry-After"))
            )
        if r.status != 202:
            await asyncio.sleep(0.01)  # as a client would back off, a little


async def _raw_requests(url: str, key: str, count: int) -> list[int]:
    """`count` requests one after the other on ONE TCP connection; their statuses."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    statuses = []
    body = orjson.dumps(EMAIL)
    try:
        for _ in range(count):
            writer.write(
                b"POST /queue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode().split("\r\n")
            statuses.append(int(lines[0].split()[1]))
            length = next(
                int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length")
            )
            await reader.readexactly(length)
            assert not any(h.lower() == "connection: close" for h in lines), lines
    finally:
        writer.close()
    return statuses


async def _copy_app(source: asyncpg.Connection, target: asyncpg.Connection) -> None:
    for table in ("apps", "api_keys"):
        rows = await source.fetch(f"SELECT * FROM {table}")
        await target.copy_records_to_table(
            table, records=[tuple(r) for r in rows], columns=list(rows[0].keys())
        )


def _actions(caplog: pytest.LogCaptureFixture, action: str) -> int:
    return sum(1 for r in caplog.records if getattr(r, "action", None) == action)


async def test_dropping_the_database_under_load_answers_503_then_recovers(
    server_dsn: str, template_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    name = f"mailer_outage_{os.getpid()}"
    spare = f"{name}_new"
    dsn = with_database(server_dsn, name)
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    # Every request checks its key; known credentials for Mailjet's /events.
    settings = service_settings(
        key_cache_seconds=0.0, events_user="mj", events_password=SecretStr("pw")
    )
    try:
        async with running_service(dsn, None, worker=False, settings=settings) as svc:
            key = await svc.create_app()
            load = Load()
            clients = [asyncio.create_task(_client(svc, key, i, load)) for i in range(CLIENTS)]
            await asyncio.sleep(0.5)

            # Before the outage every 202 is stored. The database to come back is made ready
            # now: created, migrated, the app and its key copied.
            accepted_before = [a.body["job_id"] for a in load.answers if a.status == 202]
            assert accepted_before
            await admin_execute(server_dsn, f'CREATE DATABASE "{spare}"')
            await apply_migrations(with_database(server_dsn, spare))
            source = await connect(dsn)
            target = await connect(with_database(server_dsn, spare))
            try:
                assert await _stored(source, accepted_before) == len(accepted_before)
                await _copy_app(source, target)
            finally:
                await source.close()
                await target.close()

            await admin_execute(server_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')
            dropped = time.monotonic()
            await asyncio.sleep(0.5)
            # During the outage: /readyz says why, and a client's connection stays open.
            async with svc.http.get(svc.url + "/readyz") as r:
                assert r.status == 503
                assert (await r.json())["reason"] == "database_unreachable"
            assert await _raw_requests(svc.url, key, 3) == [503, 503, 503]
            # Every route that needs the database answers the same way.
            auth = {"Authorization": f"Bearer {key}"}
            mailjet = {"Authorization": basic_auth("mj", "pw")}
            routes: list[tuple[str, str, dict[str, str], Any]] = [
                ("GET", f"/status/{uuid.uuid4()}", auth, None),
                ("GET", "/feed", auth, None),
                ("GET", "/suppressions", auth, None),
                ("POST", "/events", mailjet, []),
            ]
            for method, path, headers, body in routes:
                request = svc.http.request(method, svc.url + path, headers=headers, json=body)
                async with request as r:
                    assert r.status == 503, (path, await r.text())
                    assert r.headers["Retry-After"]
            await asyncio.sleep(0.5)

            back = time.monotonic()
            await admin_execute(server_dsn, f'ALTER DATABASE "{spare}" RENAME TO "{name}"')
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _accepted_after(load, back) < CLIENTS * 5:
                await asyncio.sleep(0.05)
            load.stop.set()
            await asyncio.gather(*clients)
            for _ in range(100):  # the recovery probe runs every second
                if _actions(caplog, "database_recovered"):
                    break
                await asyncio.sleep(0.05)

            after = [a.body["job_id"] for a in load.answers if a.status == 202 and a.at > back]
            conn = await connect(dsn)
            try:
                stored_after = await _stored(conn, after)
            finally:
                await conn.close()
    finally:
        await admin_execute(
            server_dsn,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{spare}" WITH (FORCE)',
        )

    statuses: dict[int, int] = {}
    for a in load.answers:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    errors = [
        r.__dict__.get("error")
        for r in caplog.records
        if getattr(r, "action", None) == "unhandled_error"
    ]
    assert set(statuses) <= {202, 503}, (statuses, errors)  # never a 500
    assert statuses.get(503, 0) > 0, statuses
    for a in load.answers:
        if a.status == 503:
            assert a.retry_after is not None
            assert a.body["error"] == "unavailable", a.body
    # No 202 while there was no database at all.
    assert not [a for a in load.answers if a.status == 202 and dropped + 0.2 < a.at < back]
    # Accepting again once the database is back, every 202 stored.
    assert len(after) >= CLIENTS * 5
    assert stored_after == len(after)
    # One line when the outage began, one when it ended; no errors logged per request.
    assert _actions(caplog, "database_unavailable") == 1
    assert _actions(caplog, "database_recovered") == 1
    assert _actions(caplog, "unhandled_error") == 0


def _accepted_after(load: Load, moment: float) -> int:
    return sum(1 for a in load.answers if a.status == 202 and a.at > moment)


async def _stored(conn: asyncpg.Connection, job_ids: list[str]) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])", job_ids
    )
    return count


async def _backend_waiting_on_a_lock(conn: asyncpg.Connection, database: str) -> int:
    for _ in range(200):
        # The holder is inside a transaction, which would see one statistics snapshot only.
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'"
            " AND query LIKE '%INSERT INTO jobs%'",
            database,
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    rows = await conn.fetch(
        "SELECT pid, state, wait_event_type, wait_event, left(query, 80) AS q"
        " FROM pg_stat_activity WHERE datname = $1",
        database,
    )
    raise AssertionError(f"the enqueue never waited on the lock: {rows}")


@pytest.mark.parametrize("path", ["/queue", "/queue/batch"])
async def test_a_connection_broken_mid_write_answers_outcome_unknown_and_a_retry_resolves_it(
    db_dsn: str, path: str
) -> None:
    async with running_service(db_dsn, None, worker=False) as svc:
        key = await svc.create_app()
        payload: dict[str, Any] = EMAIL if path == "/queue" else {"emails": [EMAIL]}
        stored_key = "order-1" if path == "/queue" else "order-1#0"
        holder = await connect(db_dsn)
        try:
            # An uncommitted job with the same Idempotency-Key makes the API's INSERT wait;
            # its connection is then cut while the write is in flight.
            app_id = await holder.fetchval("SELECT id FROM apps")
            tx = holder.transaction()
            await tx.start()
            await holder.execute(
                "INSERT INTO jobs (id, app_id, message, idempotency_key, request_hash)"
                " VALUES ($1, $2, '{}', $3, '\\x00')",
                uuid.uuid4(),
                app_id,
                stored_key,
            )
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "order-1"}
            request = asyncio.create_task(
                svc.request("POST", path, None, json=payload, headers=headers)
            )
            database = urlsplit(db_dsn).path.lstrip("/")
            pid = await _backend_waiting_on_a_lock(holder, database)
            await holder.execute("SELECT pg_terminate_backend($1)", pid)
            status, body = await request
            await tx.rollback()
        finally:
            await holder.close()
        assert status == 503, body
        assert body["outcome"] == "unknown"
        assert "Idempotency-Key" in body["message"]
        # The app retries with the same key, as the docs tell it to: now it is stored once.
        status, body = await svc.request("POST", path, None, json=payload, headers=headers)
        assert status == 202, body
        conn = await connect(db_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM jobs") == 1
        finally:
            await conn.close()


async def test_the_errors_of_a_database_not_there_are_told_apart_from_bugs(
    server_dsn: str, db_dsn: str
) -> None:
    name = f"mailer_empty_{os.getpid()}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}"')
    try:
        conn = await connect(with_database(server_dsn, name))
        try:
            with pytest.raises(asyncpg.PostgresError) as missing_table:
                await conn.fetchval("SELECT count(*) FROM jobs")
        finally:
            await conn.close()
    finally:
        await admin_execute(server_dsn, f'DROP DATABASE "{name}"')
    assert is_unavailable(missing_table.value)  # created again, not yet migrated
    with pytest.raises(asyncpg.PostgresError) as no_database:
        await connect(with_database(server_dsn, name))
    assert is_unavailable(no_database.value)
    with pytest.raises(OSError) as refused:
        await connect("postgresql://postgres@127.0.0.1:1/x")
    assert is_unavailable(refused.value) and is_connection_lost(refused.value)
    # A wrong query or wrong data is a bug or bad input, not an outage.
    conn = await connect(db_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError) as syntax:
            await conn.execute("SELEC 1")
        with pytest.raises(asyncpg.PostgresError) as violation:
            await conn.execute("INSERT INTO apps (id, name) VALUES (NULL, 'x')")
    finally:
        await conn.close()
    assert not is_unavailable(syntax.value) and not is_connection_lost(syntax.value)
    assert not is_unavailable(violation.value)


async def test_jobs_of_a_combined_write_that_broke_stay_unknown_when_written_again(
    server_dsn: str, db_dsn: str
) -> None:
    # Two emails coalesced into one write that waits on a lock. The pool's role may then no
    # longer log in, and the write's connection is cut: the combined write's outcome is
    # unknown, and writing each email again fails at connect. Each must still answer
    # "unknown" (the combined write might have committed them), not "not stored".
    from mailer.db.pool import create_pool
    from mailer.delivery.email import EmailRequest
    from mailer.delivery.enqueue import CommitOutcomeUnknown, Enqueuer, new_job

    role = f"mailer_outage_{os.getpid()}"
    database = urlsplit(db_dsn).path.lstrip("/")
    holder = await connect(db_dsn)
    await holder.execute(f'CREATE ROLE "{role}" LOGIN')
    await holder.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
    await holder.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    parts = urlsplit(db_dsn)
    as_role = parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}").geturl()
    pool = await create_pool(as_role, min_size=1, max_size=1)
    enqueuer = Enqueuer(pool, writers=1)
    await enqueuer.start()
    try:
        app_id = await holder.fetchval(
            "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'a') RETURNING id"
        )
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "INSERT INTO jobs (id, app_id, message, idempotency_key) VALUES ($1, $2, '{}', 'k1')",
            uuid.uuid4(),
            app_id,
        )
        email = EmailRequest.model_validate(EMAIL)
        keyed = new_job(app_id, email, idempotency_key="k1", body_hash=b"h")
        plain = new_job(app_id, email)
        both = asyncio.gather(
            enqueuer.enqueue(keyed), enqueuer.enqueue(plain), return_exceptions=True
        )
        pid = await _backend_waiting_on_a_lock(holder, database)
        await admin_execute(server_dsn, f'ALTER ROLE "{role}" NOLOGIN')
        await admin_execute(server_dsn, f"SELECT pg_terminate_backend({pid})")
        results = await asyncio.wait_for(both, 30)
        await tx.rollback()
    finally:
        await enqueuer.stop()
        await pool.close()
        await holder.execute(f'DROP OWNED BY "{role}"')
        await holder.close()
        await admin_execute(server_dsn, f'DROP ROLE "{role}"')
    assert [type(r) for r in results] == [CommitOutcomeUnknown, CommitOutcomeUnknown], results


@pytest.mark.parametrize("path", ["/queue", "/queue/batch"])
async def test_a_cached_key_whose_app_is_gone_answers_401_not_500(db_dsn: str, path: str) -> None:
    # A database replaced by an empty one (or an app deleted) while its key is cached.
    settings = service_settings(key_cache_seconds=300.0)
    payload: dict[str, Any] = EMAIL if path == "/queue" else {"emails": [EMAIL, EMAIL]}
    async with running_service(db_dsn, None, worker=False, settings=settings) as svc:
        key = await svc.create_app()
        assert (await svc.request("POST", path, key, json=payload))[0] == 202
        conn = await connect(db_dsn)
        try:
            await conn.execute("DELETE FROM apps")
        finally:
            await conn.close()
        for _ in range(2):  # and the key is no longer taken from the cache
            status, body = await svc.request("POST", path, key, json=payload)
            assert (status, body["error"]) == (401, "unauthorized")

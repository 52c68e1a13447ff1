"""Webhook secrets at rest: sealed in the database, clear ones from before sealed at start,
re-sealed by `mailer secrets rotate`, and a clear start-up error without the key."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from mailer.runtime import StartupError, check_secrets
from mailer.vault import SecretBox, generate_key
from mailer.webhooks.dispatch import Dispatcher
from mailer.webhooks.outbox import OutboxEvent, fan_out
from mailer.webhooks.signing import generate_secret
from tests.integration.harness import (
    LOOPBACK,
    TEST_BOX,
    TEST_SECRET_KEY,
    Service,
    running_service,
    service_settings,
)
from tests.integration.webhook_receiver import Receiver


@pytest.fixture
async def service(db_dsn: str) -> AsyncIterator[Service]:
    async with running_service(db_dsn, None, worker=False) as svc:
        yield svc


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def text_of_every_column(pool: asyncpg.Pool, table: str) -> str:
    rows = await pool.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t")
    return "\n".join(r["row"] for r in rows)


async def deliver(pool: asyncpg.Pool, box: SecretBox, event_id: int, endpoints: int = 1) -> None:
    """One event, delivered to each of the app's endpoints."""
    from datetime import UTC, datetime

    app_id = await pool.fetchval("SELECT id FROM apps")
    event = OutboxEvent(
        event_id=event_id,
        app_id=app_id,
        type="email.opened",
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        job_id=uuid.UUID(int=5),
        recipient="ann@example.org",
        message_id=7,
        details={},
        metadata=None,
    )
    async with pool.acquire() as conn, conn.transaction():
        await fan_out(conn, [event])
    async with Dispatcher(pool, rng=random.Random(1), targets=LOOPBACK, box=box) as dispatcher:
        assert await dispatcher.run_once() == endpoints


async def test_a_dump_of_the_endpoints_reveals_no_secret_and_deliveries_verify(
    service: Service, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    key = await service.create_app()
    status, endpoint = await service.request("POST", "/webhooks", key, json={"url": receiver.url})
    assert status == 201
    status, rotated = await service.request(
        "POST", f"/webhooks/{endpoint['id']}/rotate-secret", key
    )
    assert status == 200
    dump = await text_of_every_column(pool, "webhook_endpoints")
    for secret in (endpoint["secret"], rotated["secret"]):
        assert secret not in dump and secret.removeprefix("whsec_") not in dump
    assert "whsec_" not in dump
    await deliver(pool, TEST_BOX, 1)
    (got,) = receiver.received
    Webhook(rotated["secret"]).verify(got.body, got.headers)
    Webhook(endpoint["secret"]).verify(got.body, got.headers)  # still signing, for a day


async def insert_clear_endpoint(pool: asyncpg.Pool, url: str) -> str:
    """An endpoint as the code before sealing stored it: the secret in clear."""
    secret = generate_secret()
    app_id = await pool.fetchval("SELECT id FROM apps")
    await pool.execute(
        "INSERT INTO webhook_endpoints (id, app_id, url, secret) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(),
        app_id,
        url,
        secret,
    )
    return secret


async def test_clear_secrets_from_before_are_sealed_at_start_and_sign_throughout(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, db_dsn: str
) -> None:
    await service.create_app()
    secret = await insert_clear_endpoint(pool, receiver.url)
    await deliver(pool, TEST_BOX, 1)  # a worker started before the sealing signs too
    await check_secrets(service_settings(), db_dsn)
    assert secret not in await text_of_every_column(pool, "webhook_endpoints")
    await deliver(pool, TEST_BOX, 2)
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)
    assert len(receiver.received) == 2


async def test_without_a_key_a_database_with_endpoints_refuses_to_start(
    service: Service, pool: asyncpg.Pool, db_dsn: str
) -> None:
    settings = service_settings(secret_key=None, database_url=db_dsn)
    await check_secrets(settings, db_dsn)  # no endpoints yet: nothing to open
    key = await service.create_app()
    assert (await service.request("POST", "/webhooks", key, json={"url": "http://127.0.0.1/"}))[
        0
    ] == 201
    with pytest.raises(StartupError) as caught:
        await check_secrets(settings, db_dsn)
    message = str(caught.value)
    assert message.startswith("MAILER_SECRET_KEY: must be set") and "\n" not in message
    with pytest.raises(StartupError, match=r"^MAILER_SECRET_KEY: expected"):
        await check_secrets(service_settings(secret_key="nope"), db_dsn)


async def test_without_a_key_the_api_answers_503_for_new_endpoints(db_dsn: str) -> None:
    settings = service_settings(secret_key=None, database_url=db_dsn)
    async with running_service(db_dsn, None, worker=False, settings=settings) as svc:
        key = await svc.create_app()
        status, body = await svc.request(
            "POST", "/webhooks", key, json={"url": "http://127.0.0.1/"}
        )
    assert status == 503 and body["error"] == "secret_key_missing", body


async def rotate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`mailer secrets rotate`, the command as an operator runs it."""
    command = [sys.executable, "-m", "mailer.cli", "secrets", "rotate"]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )


async def test_mailer_secrets_rotate_reseals_with_the_new_key(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, db_dsn: str
) -> None:
    key = await service.create_app()
    status, endpoint = await service.request("POST", "/webhooks", key, json={"url": receiver.url})
    assert status == 201
    clear = await insert_clear_endpoint(pool, receiver.url + "2")
    new = generate_key()
    env = {**os.environ, "DATABASE_URL": db_dsn, "MAILER_SECRET_KEY": f"{new},{TEST_SECRET_KEY}"}
    done = await rotate(env)
    assert done.returncode == 0, done.stderr
    assert "2 webhook endpoint(s)" in done.stdout
    only_new = SecretBox([new])
    rows = await pool.fetch("SELECT url, secret FROM webhook_endpoints ORDER BY url")
    assert [only_new.open(r["secret"]) for r in rows] == [endpoint["secret"], clear]
    await deliver(pool, only_new, 1, endpoints=2)
    resealed = await pool.fetchval(
        "SELECT details FROM audit_log WHERE action = 'secrets.resealed'"
    )
    assert resealed == {"endpoints": 2, "own": 0, "keys": 2}
    assert len(receiver.received) == 2
    env["MAILER_SECRET_KEY"] = generate_key()  # a key that opens nothing: refused, unchanged
    done = await rotate(env)
    assert done.returncode == 1 and "keep the old key" in done.stderr
    assert [
        only_new.open(r["secret"])
        for r in await pool.fetch("SELECT secret FROM webhook_endpoints ORDER BY url")
    ] == [endpoint["secret"], clear]

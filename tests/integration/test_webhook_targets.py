"""Webhook targets (SSRF): refused at creation, and again at delivery on the address the
connection uses; no redirect followed."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from mailer.webhooks.dispatch import Dispatcher
from mailer.webhooks.outbox import OutboxEvent, fan_out
from mailer.webhooks.targets import TargetPolicy
from tests.integration.harness import TEST_BOX, Service, running_service, service_settings
from tests.integration.webhook_receiver import Receiver


@pytest.fixture
async def public_only(db_dsn: str) -> AsyncIterator[Service]:
    """The API with the default policy: public addresses only."""
    settings = service_settings(webhook_allowed_networks=None)
    async with running_service(db_dsn, None, worker=False, settings=settings) as svc:
        yield svc


@pytest.fixture
async def loopback_allowed(db_dsn: str) -> AsyncIterator[Service]:
    async with running_service(db_dsn, None, worker=False) as svc:
        yield svc


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def create(service: Service, key: str, url: str) -> tuple[int, Any]:
    return await service.request("POST", "/webhooks", key, json={"url": url})


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://localhost:9/x", "loopback"),  # a name, resolved at creation
        ("http://[::1]/x", "loopback"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://2130706433/x", "loopback"),  # 127.0.0.1 as one number
        ("http://10.0.0.5/x", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://100.64.1.1/", "CGNAT"),
        ("http://0.0.0.0:9/", "unspecified"),
    ],
)
async def test_creation_refuses_non_public_targets_naming_why(
    public_only: Service, url: str, named: str
) -> None:
    key = await public_only.create_app()
    status, body = await create(public_only, key, url)
    assert status == 422, body
    assert "refused" in body["message"] and named in body["message"], body


async def test_a_change_of_url_is_checked_too(public_only: Service) -> None:
    key = await public_only.create_app()
    status, created = await create(public_only, key, "https://93.184.215.14/hook")
    assert status == 201, created
    status, body = await public_only.request(
        "PATCH", f"/webhooks/{created['id']}", key, json={"url": "http://192.168.0.1/"}
    )
    assert status == 422 and "private" in body["message"], body


async def test_allowed_networks_open_loopback_but_not_the_metadata_address(
    loopback_allowed: Service,
) -> None:
    key = await loopback_allowed.create_app()
    assert (await create(loopback_allowed, key, "http://127.0.0.1:9/x"))[0] == 201
    status, body = await create(loopback_allowed, key, "http://169.254.169.254/")
    assert status == 422 and "metadata" in body["message"], body


def event(app_id: uuid.UUID, event_id: int) -> OutboxEvent:
    from datetime import UTC, datetime

    return OutboxEvent(
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


async def attempt_errors(pool: asyncpg.Pool) -> list[str | None]:
    return [r["error"] for r in await pool.fetch("SELECT error FROM webhook_attempts ORDER BY id")]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_delivery_checks_the_address_it_connects_to(
    loopback_allowed: Service, pool: asyncpg.Pool, receiver: Receiver, host: str
) -> None:
    """Accepted while loopback was allowed (as a name that resolved publicly once would be),
    then delivered by a dispatcher whose policy refuses it: nothing reaches the receiver."""
    key = await loopback_allowed.create_app()
    url = receiver.url.replace("127.0.0.1", host)
    assert (await create(loopback_allowed, key, url))[0] == 201
    app_id = await pool.fetchval("SELECT id FROM apps")
    async with pool.acquire() as conn, conn.transaction():
        await fan_out(conn, [event(app_id, 1)])
    async with Dispatcher(
        pool, rng=random.Random(1), targets=TargetPolicy(), box=TEST_BOX
    ) as dispatcher:
        assert await dispatcher.run_once() == 1
    assert receiver.received == []
    (error,) = await attempt_errors(pool)
    assert error is not None and "loopback" in error, error


async def test_a_redirect_is_not_followed(
    loopback_allowed: Service, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    key = await loopback_allowed.create_app()
    assert (await create(loopback_allowed, key, receiver.url))[0] == 201
    receiver.default = 302
    receiver.headers = {"Location": receiver.url.replace("/hook", "/elsewhere")}
    app_id = await pool.fetchval("SELECT id FROM apps")
    async with pool.acquire() as conn, conn.transaction():
        await fan_out(conn, [event(app_id, 1)])
    policy = TargetPolicy.allowing("127.0.0.0/8")
    async with Dispatcher(pool, rng=random.Random(1), targets=policy, box=TEST_BOX) as dispatcher:
        assert await dispatcher.run_once() == 1
    assert [r.path for r in receiver.received] == ["/hook"]
    status = await pool.fetchval("SELECT status_code FROM webhook_attempts")
    assert status == 302

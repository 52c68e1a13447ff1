"""Outbound webhooks end to end: the API, the outbox, a real receiver on 127.0.0.1, and a
dispatcher driven by an injectable clock (no sleeping through retry delays)."""

from __future__ import annotations

import asyncio
import base64
import random
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mailer.queue.loop import LoopOptions
from mailer.simulator.faults import FaultConfig
from mailer.simulator.server import SimulatorServer
from mailer.webhooks.dispatch import Dispatcher
from mailer.webhooks.outbox import EVENT_TYPES, OutboxEvent, fan_out
from mailer.webhooks.schedule import MAX_ATTEMPTS, next_attempt_delay
from tests.integration.harness import LOOPBACK, TEST_BOX, Service, running_service
from tests.integration.webhook_receiver import Receiver


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def service(db_dsn: str) -> AsyncIterator[Service]:
    async with running_service(db_dsn, None, worker=False) as svc:
        yield svc


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def dispatcher(pool: asyncpg.Pool, clock: Clock) -> AsyncIterator[Dispatcher]:
    async with Dispatcher(
        pool, clock=clock, rng=random.Random(7), targets=LOOPBACK, box=TEST_BOX
    ) as d:
        yield d


async def new_app(service: Service, pool: asyncpg.Pool, name: str) -> tuple[str, uuid.UUID]:
    key = await service.create_app(name)
    app_id: uuid.UUID = await pool.fetchval("SELECT id FROM apps WHERE name = $1", name)
    return key, app_id


async def new_endpoint(service: Service, key: str, url: str, **fields: Any) -> dict[str, Any]:
    status, body = await service.request("POST", "/webhooks", key, json={"url": url, **fields})
    assert status == 201, body
    result: dict[str, Any] = body
    return result


def event(app_id: uuid.UUID, type_: str = "email.opened", event_id: int = 1) -> OutboxEvent:
    return OutboxEvent(
        event_id=event_id,
        app_id=app_id,
        type=type_,
        occurred_at=datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC),
        job_id=uuid.UUID(int=5),
        recipient="ann@example.org",
        message_id=2**60 + 3,
        details={"url": "https://shop.example/x"} if type_ == "email.clicked" else {},
        metadata={"order": "42"},
    )


async def store_events(pool: asyncpg.Pool, events: list[OutboxEvent]) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await fan_out(conn, events)


async def delivery_row(pool: asyncpg.Pool) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow("SELECT * FROM webhook_deliveries")
    assert row is not None
    return row


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hook"


async def test_endpoint_management_and_app_isolation(service: Service, pool: asyncpg.Pool) -> None:
    key, _ = await new_app(service, pool, "shop")
    other, _ = await new_app(service, pool, "blog")
    created = await new_endpoint(
        service, key, "https://hooks.example/in", event_types=["email.opened"], description="x"
    )
    assert created["secret"].startswith("whsec_") and len(created["secret"]) >= 6 + 32
    assert created["event_types"] == ["email.opened"] and created["enabled"] is True
    path = f"/webhooks/{created['id']}"
    for bad in ("ftp://hooks.example/", "https://user:pw@hooks.example/", "/relative"):
        status, body = await service.request("POST", "/webhooks", key, json={"url": bad})
        assert status == 422, body
    status, body = await service.request(
        "POST", "/webhooks", key, json={"url": "http://127.0.0.1/", "event_types": ["nope"]}
    )
    assert status == 422 and "nope" in body["message"]

    status, body = await service.request("GET", "/webhooks", key)
    assert status == 200 and [e["id"] for e in body["endpoints"]] == [created["id"]]
    assert "secret" not in body["endpoints"][0]
    status, body = await service.request(
        "PATCH", path, key, json={"event_types": None, "description": "all", "enabled": False}
    )
    assert status == 200 and body["event_types"] is None and body["enabled"] is False
    assert body["disabled_reason"] == "disabled by the app"

    # Another app sees nothing of it.
    status, body = await service.request("GET", "/webhooks", other)
    assert status == 200 and body["endpoints"] == []
    for method, suffix in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("GET", "/attempts"),
        ("POST", "/test"),
        ("POST", "/recover"),
        ("POST", f"/deliveries/{uuid.uuid4()}/resend"),
    ]:
        json: Any = {"since": "2026-01-01T00:00:00Z"} if suffix == "/recover" else {}
        status, body = await service.request(method, path + suffix, other, json=json)
        assert status == 404, (method, suffix, body)
    status, _ = await service.request("DELETE", path, key)
    assert status == 204
    status, _ = await service.request("GET", path, key)
    assert status == 404


async def test_signed_delivery_for_each_subscribed_type_only(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    wanted = ["email.clicked", "email.opened", "email.bounced"]
    endpoint = await new_endpoint(service, key, receiver.url, event_types=wanted)
    events = [event(app_id, t, i) for i, t in enumerate(sorted(EVENT_TYPES), start=1)]
    assert await store_events(pool, events) == len(wanted)
    assert await dispatcher.run_once() == len(wanted)
    assert sorted(r.json["type"] for r in receiver.received) == sorted(wanted)

    clicked = next(r for r in receiver.received if r.json["type"] == "email.clicked")
    assert clicked.json == {
        "type": "email.clicked",
        "timestamp": "2026-03-01T12:00:05Z",
        "data": {
            "job_id": str(uuid.UUID(int=5)),
            "recipient": "ann@example.org",
            "message_id": str(2**60 + 3),
            "details": {"url": "https://shop.example/x"},
            "metadata": {"order": "42"},
            "tags": [],
        },
    }
    index = sorted(EVENT_TYPES).index("email.clicked") + 1
    assert clicked.headers["webhook-id"] == f"evt_{index}"
    hook = Webhook(endpoint["secret"])
    assert hook.verify(clicked.body, clicked.headers)["type"] == "email.clicked"
    with pytest.raises(WebhookVerificationError):
        hook.verify(clicked.body.replace(b"42", b"43"), clicked.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUFB" * 11).verify(clicked.body, clicked.headers)

    # An event stored twice is delivered once.
    assert await store_events(pool, events) == 0


async def test_500_twice_then_200_is_delivered_once_on_the_third_attempt(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    endpoint = await new_endpoint(service, key, receiver.url)
    receiver.script = [500, 500]
    await store_events(pool, [event(app_id)])
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0  # not due before its retry delay
    clock.advance(seconds=10)
    assert await dispatcher.run_once() == 1
    clock.advance(minutes=7)
    assert await dispatcher.run_once() == 1
    clock.advance(days=10)
    assert await dispatcher.run_once() == 0
    assert [r.headers["webhook-id"] for r in receiver.received] == ["evt_1"] * 3
    row = await delivery_row(pool)
    assert row["state"] == "delivered" and row["attempts"] == 3

    status, body = await service.request("GET", f"/webhooks/{endpoint['id']}/attempts", key)
    assert status == 200
    log = body["attempts"]
    assert [a["status_code"] for a in log] == [200, 500, 500]  # newest first
    assert [a["attempt"] for a in log] == [3, 2, 1]
    assert log[1]["response"] == "answer 500" and log[1]["error"] == "HTTP 500"
    assert all(a["event_id"] == "evt_1" and a["delivery_id"] == str(row["id"]) for a in log)
    status, page = await service.request("GET", f"/webhooks/{endpoint['id']}/attempts?limit=2", key)
    assert [a["attempt"] for a in page["attempts"]] == [3, 2]
    status, page = await service.request(
        "GET", f"/webhooks/{endpoint['id']}/attempts?limit=2&before={page['next_before']}", key
    )
    assert [a["attempt"] for a in page["attempts"]] == [1] and page["next_before"] is None


async def test_receiver_down_is_retried_on_schedule_then_given_up(
    service: Service, pool: asyncpg.Pool, dispatcher: Dispatcher, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    endpoint = await new_endpoint(service, key, closed_port_url())
    await store_events(pool, [event(app_id)])
    expected = random.Random(7)  # the dispatcher's seed: the same jitter
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert await dispatcher.run_once() == 1, attempt
        row = await delivery_row(pool)
        assert row["attempts"] == attempt
        assert "Connect" in row["last_error"] and row["last_status"] is None
        delay = next_attempt_delay(attempt, rng=expected)
        if delay is None:
            assert row["state"] == "failed"
            break
        assert row["state"] == "pending"
        assert row["next_attempt_at"] == clock.now + timedelta(seconds=delay)
        clock.advance(seconds=delay - 1)
        assert await dispatcher.run_once() == 0  # a second early: not yet
        clock.advance(seconds=1)
    assert attempt == MAX_ATTEMPTS
    _status, body = await service.request("GET", f"/webhooks/{endpoint['id']}", key)
    assert body["enabled"] is True and body["failing_since"] is not None  # ~3 days < 5


async def test_410_disables_the_endpoint_at_once(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    endpoint = await new_endpoint(service, key, receiver.url)
    receiver.default = 410
    await store_events(pool, [event(app_id, event_id=1)])
    await dispatcher.run_once()
    _status, body = await service.request("GET", f"/webhooks/{endpoint['id']}", key)
    assert body["enabled"] is False and "410" in body["disabled_reason"]
    assert (await delivery_row(pool))["state"] == "failed"
    assert await store_events(pool, [event(app_id, event_id=2)]) == 0


async def test_five_days_of_failures_disable_with_a_visible_reason(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    endpoint = await new_endpoint(service, key, receiver.url)
    path = f"/webhooks/{endpoint['id']}"
    receiver.default = 500
    await store_events(pool, [event(app_id, event_id=1)])
    await dispatcher.run_once()
    # A success resets the run of failures ...
    receiver.script = [200]
    clock.advance(minutes=1)
    await dispatcher.run_once()
    _, body = await service.request("GET", path, key)
    assert body["failing_since"] is None
    # ... then five days of nothing but failures disable it.
    started = clock.now
    for day in range(6):
        await store_events(pool, [event(app_id, event_id=10 + day)])
        await dispatcher.run_once()
        _status, body = await service.request("GET", path, key)
        if day < 5:
            assert body["enabled"] is True, day
            clock.advance(days=1)
    assert body["enabled"] is False
    assert "5 days" in body["disabled_reason"]
    assert datetime.fromisoformat(body["failing_since"]) == started
    sent = len(receiver.received)
    clock.advance(days=1)
    assert await dispatcher.run_once() == 0 and len(receiver.received) == sent


async def test_a_dispatcher_killed_mid_delivery_is_taken_over_after_its_lease(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    await new_endpoint(service, key, receiver.url)
    receiver.script = ["hang"]
    await store_events(pool, [event(app_id)])
    options = LoopOptions(concurrency=16, lease_seconds=60)
    async with Dispatcher(
        pool, options=options, clock=clock, targets=LOOPBACK, box=TEST_BOX
    ) as first:
        task = asyncio.create_task(first.run_once())
        await asyncio.wait_for(receiver.arrived.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with Dispatcher(
        pool, options=options, clock=clock, targets=LOOPBACK, box=TEST_BOX
    ) as second:
        assert await second.run_once() == 0  # leased
        clock.advance(seconds=61)
        assert await second.run_once() == 1
    assert [r.headers["webhook-id"] for r in receiver.received] == ["evt_1", "evt_1"]
    assert (await delivery_row(pool))["state"] == "delivered"


async def test_stop_lets_the_attempt_in_flight_finish_and_be_recorded(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    await new_endpoint(service, key, receiver.url)
    receiver.script, receiver.slow_seconds = ["slow"], 1.0
    await store_events(pool, [event(app_id)])
    # A short poll: the claim loop itself ends at once, the attempt is still in flight.
    dispatcher = Dispatcher(
        pool,
        options=LoopOptions(concurrency=16, lease_seconds=60, poll_interval=0.05),
        clock=clock,
        targets=LOOPBACK,
        box=TEST_BOX,
    )
    await dispatcher.start()
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    await dispatcher.stop()  # while the receiver is still answering
    row = await delivery_row(pool)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    # A stopped dispatcher claims nothing more.
    await store_events(pool, [event(app_id, event_id=2)])
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1


async def test_rotation_signs_with_both_secrets_for_a_day(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    endpoint = await new_endpoint(service, key, receiver.url)
    status, rotated = await service.request(
        "POST", f"/webhooks/{endpoint['id']}/rotate-secret", key
    )
    assert status == 200 and rotated["secret"] != endpoint["secret"]
    await store_events(pool, [event(app_id, event_id=1)])
    await dispatcher.run_once()
    [first] = receiver.received
    assert len(first.headers["webhook-signature"].split()) == 2
    for secret in (endpoint["secret"], rotated["secret"]):
        Webhook(secret).verify(first.body, first.headers)
    clock.advance(hours=25)
    await store_events(pool, [event(app_id, event_id=2)])
    await dispatcher.run_once()
    assert len(receiver.received[1].headers["webhook-signature"].split()) == 1


async def test_resend_recover_and_test_event(
    service: Service, pool: asyncpg.Pool, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    key, app_id = await new_app(service, pool, "shop")
    endpoint = await new_endpoint(service, key, receiver.url)
    path = f"/webhooks/{endpoint['id']}"
    await store_events(pool, [event(app_id)])
    await dispatcher.run_once()
    delivery = await delivery_row(pool)
    status, body = await service.request("POST", f"{path}/deliveries/{delivery['id']}/resend", key)
    assert status == 202, body
    clock.advance(seconds=1)
    assert await dispatcher.run_once() == 1
    assert [r.headers["webhook-id"] for r in receiver.received] == ["evt_1", "evt_1"]

    # A test event that fails is attempted once, then recovered.
    receiver.script = [500]
    status, body = await service.request("POST", f"{path}/test", key)
    assert status == 202
    assert await dispatcher.run_once() == 1
    clock.advance(days=1)
    assert await dispatcher.run_once() == 0  # manual: no retry schedule
    test = receiver.received[-1]
    assert test.json["type"] == "webhook.test"
    Webhook(endpoint["secret"]).verify(test.body, test.headers)
    status, body = await service.request(
        "POST", f"{path}/recover", key, json={"since": "2020-01-01T00:00:00Z"}
    )
    assert status == 202 and body == {"requeued": 1}
    clock.now = max(clock.now, datetime.now(UTC) + timedelta(seconds=1))
    assert await dispatcher.run_once() == 1
    assert receiver.received[-1].headers["webhook-id"] == test.headers["webhook-id"]
    states = await pool.fetch("SELECT state FROM webhook_deliveries")
    assert {r["state"] for r in states} == {"delivered"}


async def test_the_worker_process_delivers_webhooks(
    db_dsn: str, pool: asyncpg.Pool, receiver: Receiver, simulator: SimulatorServer
) -> None:

    async with running_service(db_dsn, simulator) as service:
        key, app_id = await new_app(service, pool, "shop")
        endpoint = await new_endpoint(service, key, receiver.url)
        await store_events(pool, [event(app_id)])
        status, _ = await service.request("POST", f"/webhooks/{endpoint['id']}/test", key)
        assert status == 202
        await receiver.wait_for(2)
        assert sorted(r.json["type"] for r in receiver.received) == [
            "email.opened",
            "webhook.test",
        ]


async def test_an_event_posted_by_mailjet_reaches_the_endpoint(
    db_dsn: str, pool: asyncpg.Pool, receiver: Receiver, simulator: SimulatorServer
) -> None:
    from tests.integration.harness import service_settings

    settings = service_settings(events_user="mj", events_password="pw")
    async with running_service(db_dsn, simulator, settings=settings) as service:
        key, _ = await new_app(service, pool, "shop")
        endpoint = await new_endpoint(service, key, receiver.url, event_types=["email.opened"])
        email = {
            "from": {"email": "noreply@shop.example"},
            "to": [{"email": "ann@example.org"}],
            "subject": "Hi",
            "text": "Hi",
            "metadata": {"order": "42"},
        }
        job_id = await service.queue(key, email)
        done = await service.wait_for(key, job_id)
        message_id = int(done["recipients"][0]["message_id"])
        opened = {
            "event": "open",
            "time": 1767225600,
            "MessageID": message_id,
            "email": "ann@example.org",
            "CustomID": job_id,
            "ip": "127.0.0.1",
            "geo": "FR",
            "agent": "test",
        }
        auth = {"Authorization": "Basic " + base64.b64encode(b"mj:pw").decode()}
        for event_ in ({**opened, "event": "sent", "smtp_reply": "250 OK"}, opened):
            async with service.http.post(service.url + "/events", json=event_, headers=auth) as r:
                assert r.status == 200, await r.text()
        await receiver.wait_for(1)
        [got] = receiver.received
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "email.opened"
        assert payload["timestamp"] == "2026-01-01T00:00:00Z"
        assert payload["data"]["job_id"] == job_id
        assert payload["data"]["message_id"] == str(message_id)
        assert payload["data"]["metadata"] == {"order": "42"}
        assert got.headers["webhook-id"].startswith("evt_")


async def test_a_recipient_given_up_on_sends_email_failed(
    db_dsn: str, pool: asyncpg.Pool, receiver: Receiver, simulator: SimulatorServer
) -> None:
    # With its only To on the suppression list, the email cannot go out: its Cc fails, and
    # the app hears of it once, signed, with the reason and its metadata. The suppressed To
    # is not a failure (it has its own status).

    async with running_service(db_dsn, simulator) as service:
        key, _ = await new_app(service, pool, "shop")
        endpoint = await new_endpoint(service, key, receiver.url, event_types=["email.failed"])
        status, _ = await service.request(
            "POST", "/suppressions", key, json={"email": "ann@example.org"}
        )
        assert status == 201
        email = {
            "from": {"email": "noreply@shop.example"},
            "to": [{"email": "ann@example.org"}],
            "cc": [{"email": "bob@example.org"}],
            "subject": "Hi",
            "text": "Hi",
            "metadata": {"order": "42"},
        }
        job_id = await service.queue(key, email)
        done = await service.wait_for(key, job_id)
        assert [r["status"] for r in done["recipients"]] == ["suppressed", "failed"]
        await receiver.wait_for(1)
        await asyncio.sleep(0.3)  # room for a duplicate to show up, if there were one
        [got] = receiver.received
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "email.failed"
        assert payload["data"]["job_id"] == job_id
        assert payload["data"]["recipient"] == "bob@example.org"
        assert payload["data"]["message_id"] is None
        assert payload["data"]["details"] == {
            "reason": "no_to_recipient",
            "error": {"reason": "every To recipient is suppressed"},
        }
        assert payload["data"]["metadata"] == {"order": "42"}
        assert got.headers["webhook-id"] == f"evt_failed_{job_id}_1"
        assert simulator.state.count_for(job_id) == 0


async def test_a_suppressed_recipient_sends_email_suppressed_once_with_the_reason(
    db_dsn: str, pool: asyncpg.Pool, receiver: Receiver, simulator: SimulatorServer
) -> None:
    # One To is suppressed, the other goes out: the app hears of the first once (a retried
    # job is reported again and not delivered twice), with the suppression's reason.
    async with running_service(db_dsn, simulator) as service:
        key, _ = await new_app(service, pool, "shop")
        # An old name is still taken, as the type it stands for now.
        endpoint = await new_endpoint(
            service, key, receiver.url, event_types=["email.suppressed", "email.deferred"]
        )
        assert endpoint["event_types"] == ["email.delivery_delayed", "email.suppressed"]
        status, _ = await service.request(
            "POST", "/suppressions", key, json={"email": "ann@example.org", "reason": "asked"}
        )
        assert status == 201
        simulator.set_faults(FaultConfig(error_500_rate=1.0))  # a first attempt that fails
        job_id = await service.queue(
            key,
            {"from": {"email": "noreply@shop.example"},
             "to": [{"email": "ann@example.org"}, {"email": "bob@example.org"}],
             "subject": "Hi", "text": "Hi"},
        )  # fmt: skip
        await receiver.wait_for(1)
        simulator.set_faults(FaultConfig())
        done = await service.wait_for(key, job_id)
        assert [r["status"] for r in done["recipients"]] == ["suppressed", "accepted"]
        assert done["attempts"] >= 2
        await asyncio.sleep(0.3)  # room for a duplicate to show up, if there were one
        [got] = receiver.received
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "email.suppressed"
        assert payload["data"]["recipient"] == "ann@example.org"
        assert payload["data"]["details"] == {"reason": "asked"}
        assert got.headers["webhook-id"] == f"evt_suppressed_{job_id}_0"

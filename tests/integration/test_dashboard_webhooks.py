"""The dashboard's overview from the stats rollups, its Webhooks page with replay and
recover, and the message page's raw events and webhook deliveries: over real HTTP from the
service, on a real database, with a real webhook receiver on 127.0.0.1 (issue 17)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mailer.dashboard import DashboardConfig, pages, webhook_pages
from mailer.dashboard.operators import Role
from mailer.ids import uuid7
from mailer.mailjet import MailjetClient, registration
from mailer.mailjet.registration import ALL_EVENT_TYPES
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET
from mailer.simulator.server import SimulatorServer
from mailer.webhooks import endpoints
from mailer.webhooks.outbox import OutboxEvent, fan_out
from tests.integration.dashboard_helpers import browser, csrf_of, dashboard_service, new_operator
from tests.integration.harness import Service, running_service
from tests.integration.tracking_helpers import (
    EVENTS_PASSWORD,
    EVENTS_USER,
    FAST_RETRY,
    email,
    mj_event,
    post_events,
    sent_messages,
    tracking_settings,
)
from tests.integration.webhook_receiver import Receiver

WAIT_S = 60.0


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    async with dashboard_service(db_dsn, simulator) as svc:
        yield svc


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Wait (generously) until `check()` answers something truthy, and return it."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.1)


async def new_endpoint(service: Service, key: str, url: str) -> str:
    status, body = await service.request("POST", "/webhooks", key, json={"url": url})
    assert status == 201, body
    endpoint_id: str = body["id"]
    return endpoint_id


async def test_the_overview_sums_the_rollups_per_app_and_rates_them(pool: asyncpg.Pool) -> None:
    now = datetime(2026, 3, 1, 12, 20, tzinfo=UTC)
    shop, blog = uuid7(), uuid7()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'shop'), ($2, 'blog')", shop, blog)
    rows = [  # app, hour, accepted, sent, delivered, bounced_hard, complained, opened_unique
        (shop, now.replace(minute=0), 100, 100, 90, 8, 0, 40),  # 12:00, the last bar
        (shop, now.replace(minute=0) - timedelta(hours=3), 10, 10, 10, 0, 0, 2),  # 09:00
        (shop, now - timedelta(hours=30), 999, 999, 999, 0, 0, 0),  # before the period
        (blog, now.replace(minute=0) - timedelta(hours=1), 50, 50, 40, 0, 1, 0),  # 11:00
    ]
    for app_id, hour, accepted, sent, delivered, bounced, complained, opened in rows:
        await pool.execute(
            "INSERT INTO stats_hourly (app_id, tag, hour, shard, accepted, sent, delivered,"
            " bounced_hard, complained, opened_unique)"
            " VALUES ($1, '', date_trunc('hour', $2::timestamptz, 'UTC'), 0, $3, $4, $5, $6,"
            " $7, $8)",
            *(app_id, hour, accepted, sent, delivered, bounced, complained, opened),
        )
    data = await pages.overview(pool, pages.PERIODS["24h"], now=now)
    assert data.labels[-1] == "12:00" and data.labels[-4] == "09:00" and len(data.labels) == 24
    assert data.series["accepted"][-4:] == [10, 0, 50, 100]
    assert data.series["bounced"][-4:] == [0, 0, 0, 8]
    assert data.engagement["complained"][-2:] == [1, 0]
    by_name = {s.name: s for s in data.per_app}
    assert by_name["shop"].columns["accepted"] == 110 and by_name["shop"].columns["opened"] == 42
    assert by_name["shop"].bounce_rate == round(8 / 110, 4)
    assert by_name["shop"].bounce_level == "warn" and by_name["shop"].complaint_level == "ok"
    assert by_name["blog"].complaint_rate == 0.025 and by_name["blog"].complaint_level == "risk"
    assert data.total.columns["accepted"] == 160 and data.total.columns["delivered"] == 140
    only_blog = await pages.overview(pool, pages.PERIODS["24h"], app=blog, now=now)
    assert only_blog.series["accepted"][-4:] == [0, 0, 50, 0]
    assert only_blog.total == data.total  # the table still shows every app
    by_day = await pages.overview(pool, pages.PERIODS["7d"], now=now)
    assert by_day.series["accepted"][-2:] == [999, 160]  # yesterday, today


async def test_reenable_and_recover_requeues_what_failed_since_and_enables(
    pool: asyncpg.Pool,
) -> None:
    shop, blog = uuid7(), uuid7()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'shop'), ($2, 'blog')", shop, blog)
    endpoint_id = uuid7()
    await pool.execute(
        "INSERT INTO webhook_endpoints (id, app_id, url, secret, enabled, disabled_reason,"
        " disabled_at, first_failure_at)"
        " VALUES ($1, $2, 'http://127.0.0.1:9/hook', 'sealed', false, 'gone', now(), now())",
        endpoint_id,
        shop,
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    for event_id, finished in (("evt_old", since - timedelta(hours=1)), ("evt_new", since)):
        await pool.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_id, event_type, body,"
            " state, attempts, finished_at) VALUES ($1, $2, $3, $4, 'email.sent', '{}', 'failed',"
            " 10, $5)",
            *(uuid7(), endpoint_id, shop, event_id, finished),
        )
    assert await endpoints.reenable_and_recover(pool, blog, endpoint_id, since) is None
    assert not await pool.fetchval("SELECT enabled FROM webhook_endpoints")  # another app's
    done = await endpoints.reenable_and_recover(pool, shop, endpoint_id, since)
    assert done is not None
    row, requeued = done
    assert requeued == 1 and row.enabled and row.disabled_reason is None
    assert row.first_failure_at is None
    rows = await pool.fetch("SELECT event_id, state FROM webhook_deliveries")
    states = {r["event_id"]: r["state"] for r in rows}
    assert states == {"evt_old": "failed", "evt_new": "pending"}


async def test_the_delivery_log_pages_by_keyset_and_bounds_its_scan(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_pages, "PAGE_SIZE", 3)
    monkeypatch.setattr(webhook_pages, "SCAN_LIMIT", 4)
    shop = uuid7()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'shop')", shop)
    endpoint_id, delivery_id = uuid7(), uuid7()
    await pool.execute(
        "INSERT INTO webhook_endpoints (id, app_id, url, secret)"
        " VALUES ($1, $2, 'http://127.0.0.1:9/hook', 'sealed')",
        endpoint_id,
        shop,
    )
    await pool.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_id, event_type, body)"
        " VALUES ($1, $2, $3, 'evt_1', 'email.sent', '{}')",
        delivery_id,
        endpoint_id,
        shop,
    )
    # Oldest first: one 500, then seven 200s.
    for attempt, status in enumerate([500] + [200] * 7, start=1):
        await pool.execute(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt,"
            " status_code, duration_ms, created_at) VALUES ($1, $2, 'evt_1', $3, $4, 5, now())",
            *(delivery_id, endpoint_id, attempt, status),
        )
    seen: list[list[int]] = []
    search = webhook_pages.AttemptFilter(endpoints=[endpoint_id])
    while True:
        page = await webhook_pages.attempt_log(pool, search)
        seen.append([row.attempt for row in page.rows])
        if page.next is None:
            break
        search = webhook_pages.AttemptFilter(endpoints=[endpoint_id], before=page.next)
    assert seen == [[8, 7, 6], [5, 4, 3], [2, 1]]
    failed = await webhook_pages.attempt_log(pool, webhook_pages.AttemptFilter(outcome="failed"))
    assert failed.rows == [] and failed.partial  # looked at the latest 4 only
    assert failed.next is not None
    older = await webhook_pages.attempt_log(
        pool, webhook_pages.AttemptFilter(outcome="failed", before=failed.next)
    )
    assert [row.status_code for row in older.rows] == [500] and not older.partial
    none = await webhook_pages.attempt_log(pool, webhook_pages.AttemptFilter(endpoints=[]))
    assert none.rows == [] and none.next is None


async def test_the_message_page_shows_raw_events_masked_and_webhook_deliveries_and_an_admin_replays(
    service: Service,
    simulator: SimulatorServer,
    receiver: Receiver,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await service.create_app("shop")
    await new_endpoint(service, key, receiver.url)
    job_id = await service.queue(key, email("ann@example.org"))
    [message] = await sent_messages(service, simulator, key, job_id)
    link = "https://shop.example/reset?token=tok-3141&step=2"
    status, _ = await post_events(
        service,
        [mj_event("sent", message), mj_event("click", message, url=link, Payload="pw=1")],
    )
    assert status == 200
    await receiver.wait_for(2, timeout=WAIT_S)
    assert len(receiver.received) == 2
    sent_delivery = await eventually(
        lambda: pool.fetchval(
            "SELECT id FROM webhook_deliveries WHERE event_type = 'email.sent'"
            " AND state = 'delivered'"
        ),
        "the email.sent delivery",
    )
    viewer = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", viewer)
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert status == 200
        assert "Mailjet events, as posted" in page and '"smtp_reply": "sent (250' in page
        assert "tok-3141" not in page and "step=2" in page  # the link's token is masked
        assert "email.sent" in page and "email.clicked" in page and "HTTP 200" in page
        assert "Replay" not in page
        status, page, _ = await b.get("/dashboard/webhooks")
        assert status == 200 and receiver.url in page and "Replay" not in page
        status, page, _ = await b.get(f"/dashboard/webhooks/replay?delivery={sent_delivery}")
        assert status == 403 and "Viewers can look but not act" in page
        status, _, _ = await b.post(
            "/dashboard/webhooks/replay", {"csrf": csrf_of(page), "delivery": str(sent_delivery)}
        )
        assert status == 403
    admin = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        await b.login("ann", admin)
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert f"/dashboard/webhooks/replay?delivery={sent_delivery}" in page
        status, confirm, _ = await b.get(f"/dashboard/webhooks/replay?delivery={sent_delivery}")
        assert status == 200 and "Deliver email.sent" in confirm and receiver.url in confirm
        form = {"delivery": str(sent_delivery)}
        status, _, _ = await b.post("/dashboard/webhooks/replay", form)  # no CSRF token
        assert status == 403
        status, _, _ = await b.get(f"/dashboard/webhooks/replay?delivery={uuid7()}")
        assert status == 404
        with caplog.at_level(logging.INFO, logger="mailer.dashboard"):
            status, _, answer = await b.post(
                "/dashboard/webhooks/replay", form | {"csrf": csrf_of(confirm)}
            )
        assert status == 303 and "notice=replayed" in answer.headers["Location"]
        await receiver.wait_for(3, timeout=WAIT_S)
        assert len(receiver.received) == 3
        assert receiver.received[-1].json["type"] == "email.sent"  # the same event again
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) = 2 FROM webhook_attempts WHERE delivery_id = $1", sent_delivery
            ),
            "the replay's attempt in the log",
        )
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert page.count("#2 HTTP 200") == 1  # the delivery's second attempt, shown
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "webhook.replayed"]
    assert record.__dict__["operator"] == "ann" and record.__dict__["target"] == str(sent_delivery)
    audited = await pool.fetchrow(
        "SELECT actor, target, app_id FROM audit_log WHERE action = 'webhook.replayed'"
    )
    assert audited is not None and audited["actor"] == "operator:ann"
    assert audited["target"] == str(sent_delivery) and audited["app_id"] is not None


async def test_an_admin_recovers_a_disabled_endpoint_and_what_failed_is_delivered(
    service: Service, receiver: Receiver, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    key = await service.create_app("shop")
    app_id = await pool.fetchval("SELECT id FROM apps")
    receiver.script = [410]  # Gone: the endpoint is disabled at once, the delivery failed
    endpoint_id = await new_endpoint(service, key, receiver.url)
    event = OutboxEvent(
        event_id=77,
        app_id=app_id,
        type="email.opened",
        occurred_at=datetime.now(UTC),
        job_id=uuid.UUID(int=5),
        recipient="ann@example.org",
        message_id=42,
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await fan_out(conn, [event]) == 1
    await eventually(
        lambda: pool.fetchval("SELECT NOT enabled FROM webhook_endpoints"), "the endpoint disabled"
    )
    viewer = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        status, _, answer = await b.get("/dashboard/webhooks")  # no session yet
        assert status == 303 and "/dashboard/login" in answer.headers["Location"]
        await b.login("vic", viewer)
        status, page, _ = await b.get("/dashboard/webhooks")
        assert status == 200 and "disabled" in page and "410 Gone" in page
        status, _, _ = await b.get(f"/dashboard/webhooks/recover?endpoint={endpoint_id}")
        assert status == 403
        assert "Recover" not in page
        status, page, _ = await b.get("/dashboard/webhooks?outcome=failed")
        assert "HTTP 410" in page
        status, page, _ = await b.get("/dashboard/webhooks?outcome=delivered")
        assert "HTTP 410" not in page and "No attempt matches" in page
        status, page, _ = await b.get("/dashboard/webhooks?outcome=maybe&before=x")
        assert status == 400 and "outcome:" in page and "before:" in page
        status, _, _ = await b.post(
            "/dashboard/webhooks/recover",
            {"csrf": csrf_of(page), "endpoint": endpoint_id, "since": "2020-01-01T00:00"},
        )
        assert status == 403
    assert not await pool.fetchval("SELECT enabled FROM webhook_endpoints")
    admin = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        await b.login("ann", admin)
        status, page, _ = await b.get(f"/dashboard/webhooks?app={app_id}")
        assert f"/dashboard/webhooks/recover?endpoint={endpoint_id}" in page
        status, confirm, _ = await b.get(f"/dashboard/webhooks/recover?endpoint={endpoint_id}")
        assert status == 200 and "Recover shop" in confirm and "410 Gone" in confirm
        form = {"endpoint": endpoint_id, "since": "2020-01-01T00:00"}
        status, _, _ = await b.post("/dashboard/webhooks/recover", form)  # no CSRF token
        assert status == 403
        status, _, _ = await b.post(
            "/dashboard/webhooks/recover", form | {"since": "soon", "csrf": csrf_of(confirm)}
        )
        assert status == 400
        with caplog.at_level(logging.INFO, logger="mailer.dashboard"):
            status, _, answer = await b.post(
                "/dashboard/webhooks/recover", form | {"csrf": csrf_of(confirm)}
            )
        assert status == 303 and "requeued=1" in answer.headers["Location"]
        endpoint = await pool.fetchrow("SELECT enabled, disabled_reason FROM webhook_endpoints")
        assert endpoint is not None
        assert endpoint["enabled"] and endpoint["disabled_reason"] is None
        await eventually(
            lambda: pool.fetchval("SELECT state = 'delivered' FROM webhook_deliveries"),
            "the failed delivery delivered",
        )
        assert [r.headers["webhook-id"] for r in receiver.received] == ["evt_77", "evt_77"]
        status, page, _ = await b.get(answer.headers["Location"])
        assert status == 200 and "enabled again" in page and "1 failed delivery" in page
    [record] = [
        r for r in caplog.records if getattr(r, "action", "") == "webhook.endpoint_recovered"
    ]
    assert record.__dict__["target"] == endpoint_id and record.__dict__["requeued"] == 1
    audited = await pool.fetchrow(
        "SELECT target, app_id FROM audit_log WHERE action = 'webhook.endpoint_recovered'"
    )
    assert audited is not None and audited["target"] == endpoint_id
    assert audited["app_id"] == app_id


async def test_the_mailjet_page_checks_the_registered_callbacks_as_the_doctor_does(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    settings = tracking_settings(mailjet_api_url=simulator.url)
    async with running_service(
        db_dsn, simulator, settings=settings, policy=FAST_RETRY, dashboard=DashboardConfig()
    ) as service:
        viewer = await new_operator(service.dsn, "vic", Role.VIEWER)
        async with browser(service) as b:
            await b.login("vic", viewer)
            status, page, _ = await b.get("/dashboard/mailjet")
            assert status == 200 and "accepts the API key" in page
            assert page.count("none registered") == len(ALL_EVENT_TYPES)
            url = registration.webhook_url(service.url + "/events", EVENTS_USER, EVENTS_PASSWORD)
            async with MailjetClient(simulator.url, SIMULATOR_KEY, SIMULATOR_SECRET) as client:
                await registration.register(client, url)
            _, page, _ = await b.get("/dashboard/mailjet")
            assert "none registered" in page  # asked a moment ago: kept for a minute
            _, page, _ = await b.get("/dashboard/mailjet?recheck=1")
            assert "none registered" not in page
            assert page.count("posts to Mailer") == len(ALL_EVENT_TYPES)
            assert EVENTS_PASSWORD not in page  # the callback URLs are shown masked

"""The operator dashboard over real HTTP: who gets in, sessions and CSRF, what each page
shows from a real database, and an admin's action (issue 17)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import pytest

from mailer.dashboard import DashboardConfig, pages
from mailer.dashboard.operators import LoginPolicy, Role
from mailer.db.pool import connect
from mailer.ids import uuid7, uuid7_floor
from mailer.simulator.server import SimulatorServer
from tests.conftest import admin_execute
from tests.integration.dashboard_helpers import (
    browser,
    csrf_of,
    dashboard_service,
    new_operator,
)
from tests.integration.harness import Service, running_service
from tests.integration.tracking_helpers import email


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    config = DashboardConfig(logins=LoginPolicy(max_failures_per_name=3))
    async with dashboard_service(db_dsn, simulator, config) as svc:
        yield svc


async def test_without_a_session_every_page_redirects_to_the_login_page(service: Service) -> None:
    async with browser(service) as b:
        for path in ("/dashboard", "/dashboard/messages?recipient=a%40b.c", "/dashboard/mailjet"):
            status, _, answer = await b.get(path)
            assert status == 303, path
            assert answer.headers["Location"].startswith("/dashboard/login?next=%2Fdashboard")
        status, page, answer = await b.get("/dashboard/login")
        assert status == 200 and 'name="password"' in page
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


async def test_login_sets_a_strict_http_only_cookie_and_logout_ends_the_session(
    service: Service,
) -> None:
    password = await new_operator(service.dsn, "ann", Role.VIEWER)
    async with browser(service) as b:
        status, _, answer = await b.login("ann", password)
        assert status == 303 and answer.headers["Location"] == "/dashboard"
        cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        status, page, _ = await b.get("/dashboard")
        assert status == 200 and "ann" in page
        [token] = [c for c in b.http.cookie_jar if c.key == "mailer_session"]
        status, _, _ = await b.post("/dashboard/logout", {"csrf": csrf_of(page)})
        assert status == 303
    async with browser(service) as again:  # the old cookie, replayed, opens nothing
        again.http.cookie_jar.update_cookies({"mailer_session": token.value})
        status, _, _ = await again.get("/dashboard")
        assert status == 303


async def test_behind_an_https_proxy_the_cookie_is_secure(service: Service) -> None:
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        _, page, _ = await b.get("/dashboard/login")
        # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS' default).
        status, _, answer = await b.post(
            "/dashboard/login",
            {"csrf": csrf_of(page), "name": "ann", "password": password},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert status == 303 and "Secure" in answer.headers["Set-Cookie"]


async def test_wrong_passwords_are_refused_then_rate_limited_across_processes(
    service: Service,
) -> None:
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        for _ in range(3):
            status, page, _ = await b.login("ann", "wrong")
            assert status == 401 and "Wrong name or password" in page
        status, page, _ = await b.login("ann", password)  # right, but too late
        assert status == 429 and "Too many failed logins" in page
        status, _, _ = await b.login("nobody", "wrong")  # another name is still let try
        assert status == 401
    conn = await connect(service.dsn)  # counted in the database, not in this process
    try:
        assert await conn.fetchval("SELECT count(*) FROM operator_login_failures") == 4
    finally:
        await conn.close()


async def test_a_login_without_its_csrf_token_is_refused(service: Service) -> None:
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        await b.get("/dashboard/login")
        status, _, _ = await b.post("/dashboard/login", {"name": "ann", "password": password})
        assert status == 403


async def test_sessions_expire_when_idle_and_absolutely_and_when_disabled(
    service: Service,
) -> None:
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    conn = await connect(service.dsn)
    try:
        for expire in (
            "UPDATE operator_sessions SET last_seen_at = now() - interval '31 minutes'",
            "UPDATE operator_sessions SET created_at = now() - interval '13 hours'",
            "UPDATE operators SET disabled_at = now()",
        ):
            await conn.execute("UPDATE operators SET disabled_at = NULL")
            async with browser(service) as b:
                assert (await b.login("ann", password))[0] == 303
                assert (await b.get("/dashboard"))[0] == 200
                await conn.execute(expire)
                assert (await b.get("/dashboard"))[0] == 303, expire
    finally:
        await conn.close()


async def _suppress(service: Service, key: str, address: str) -> None:
    status, _ = await service.request("POST", "/suppressions", key, json={"email": address})
    assert status == 201


async def test_a_viewer_sees_the_pages_but_cannot_act(service: Service) -> None:
    key = await service.create_app("shop")
    await _suppress(service, key, "bob@example.org")
    password = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", password)
        for path in ("/dashboard", "/dashboard/messages", "/dashboard/mailjet"):
            assert (await b.get(path))[0] == 200, path
        status, page, _ = await b.get("/dashboard/suppressions")
        assert status == 200 and "bob@example.org" in page and "Remove" not in page
        app_id = await _app_id(service)
        status, page, _ = await b.get(
            f"/dashboard/suppressions/remove?app={app_id}&email=bob@example.org"
        )
        assert status == 403 and "Viewers can look but not act" in page
        status, _, _ = await b.post(
            "/dashboard/suppressions/remove",
            {"csrf": csrf_of(page), "app": app_id, "email": "bob@example.org"},
        )
        assert status == 403
    status, body = await service.request("GET", "/suppressions", key)
    assert [s["email"] for s in body["suppressions"]] == ["bob@example.org"]


async def _app_id(service: Service) -> str:
    conn = await connect(service.dsn)
    try:
        return str(await conn.fetchval("SELECT id FROM apps"))
    finally:
        await conn.close()


async def test_an_admin_removes_a_suppression_after_confirming_and_it_is_recorded(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    key = await service.create_app("shop")
    await _suppress(service, key, "bob@example.org")
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    app_id = await _app_id(service)
    async with browser(service) as b:
        await b.login("ann", password)
        _, listing, _ = await b.get("/dashboard/suppressions?q=bob")
        assert "Remove" in listing
        status, confirm, _ = await b.get(
            f"/dashboard/suppressions/remove?app={app_id}&email=bob@example.org"
        )
        assert status == 200 and "Remove bob@example.org from shop" in confirm
        form = {"app": app_id, "email": "bob@example.org", "reason": "asked by support"}
        status, _, _ = await b.post("/dashboard/suppressions/remove", form)  # no CSRF token
        assert status == 403
        without_reason = {k: v for k, v in form.items() if k != "reason"}
        status, _, _ = await b.post(
            "/dashboard/suppressions/remove", without_reason | {"csrf": csrf_of(confirm)}
        )
        assert status == 400
        with caplog.at_level(logging.INFO, logger="mailer.dashboard"):
            status, _, answer = await b.post(
                "/dashboard/suppressions/remove", form | {"csrf": csrf_of(confirm)}
            )
        assert status == 303 and "notice=unsuppressed" in answer.headers["Location"]
    status, body = await service.request("GET", "/suppressions", key)
    assert body["suppressions"] == []
    status, body = await service.request("GET", "/suppressions/bob@example.org/history", key)
    assert body["history"][-1]["reason"] == "asked by support", body
    assert body["history"][-1]["actor"] == "operator:ann", body
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "suppression.removed"]
    assert record.__dict__["operator"] == "ann" and record.__dict__["target"] == "bob@example.org"


async def test_find_a_message_by_recipient_and_open_it(service: Service) -> None:
    key = await service.create_app("shop")
    other = await service.create_app("blog")
    job_id = await service.queue(
        key, email("Ann@Example.org", "cy@example.org"), headers={"Idempotency-Key": "order-42"}
    )
    await service.queue(other, email("dan@example.org"))
    await service.wait_for(key, job_id)
    password = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", password)
        status, page, _ = await b.get("/dashboard/messages?recipient=ann%40example.org")
        assert status == 200 and job_id in page and "dan@example.org" not in page
        _, everything, _ = await b.get("/dashboard/messages")
        assert "dan@example.org" in everything and "cy@example.org" in everything
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert status == 200
        assert "order-42" in page and "Mailjet CustomID" in page
        assert "ann@example.org" in page and "cy@example.org" in page
        status, page, _ = await b.get("/dashboard/messages?since=yesterday")
        assert status == 400 and "since: a date is written YYYY-MM-DD" in page
        status, _, _ = await b.get("/dashboard/messages/not-a-job")
        assert status == 404
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        scheduled = await service.queue(key, email("eve@example.org", send_at=later))
        _, page, _ = await b.get(f"/dashboard/messages/{scheduled}")
        assert "next attempt" in page and "queue state queued" in page


async def test_messages_are_found_by_tag(service: Service) -> None:
    key = await service.create_app("shop")
    welcome = await service.queue(key, email("ann@example.org", tags=["welcome", "v2"]))
    receipt = await service.queue(key, email("ann@example.org", tags=["receipt"]))
    untagged = await service.queue(key, email("bob@example.org"))
    password = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", password)
        status, page, _ = await b.get("/dashboard/messages?tag=welcome")
        assert status == 200 and welcome in page
        assert receipt not in page and untagged not in page
        _, page, _ = await b.get("/dashboard/messages?tag=receipt&recipient=ann%40example.org")
        assert receipt in page and welcome not in page
        _, page, _ = await b.get("/dashboard/messages?tag=none-has-it")
        assert welcome not in page and receipt not in page and untagged not in page
        status, page, _ = await b.get("/dashboard/messages?tag=no%20spaces")
        assert status == 400 and "tag: 1-64 of the characters" in page


async def test_the_overview_counts_per_app_and_draws_the_chart(service: Service) -> None:
    key = await service.create_app("shop")
    job_id = await service.queue(key, email("ann@example.org", "bob@example.org"))
    await service.wait_for(key, job_id)
    password = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", password)
        status, page, _ = await b.get("/dashboard?period=24h")
        assert status == 200
        assert "<svg" in page and '<rect class="bar s-accepted"' in page  # from the rollups
        assert "<tr><td>shop</td><td>2</td><td>2</td>" in page  # two accepted, two sent
        assert '<span class="n" id="live-workers">1</span>' in page


async def _job_at(pool: asyncpg.Pool, app_id: uuid.UUID, at: datetime, status: str) -> uuid.UUID:
    job = uuid.UUID(int=uuid7_floor(at).int | 1)
    await pool.execute(
        "INSERT INTO jobs (id, app_id, state, message, created_at)"
        " VALUES ($1, $2, 'done', '{}', $3)",
        job,
        app_id,
        at,
    )
    await pool.execute(
        "INSERT INTO messages (job_id, position, app_id, kind, email, status)"
        " VALUES ($1, 0, $2, 'to', 'a@example.org', $3)",
        job,
        app_id,
        status,
    )
    return job


async def test_a_rare_filter_looks_at_a_bounded_number_of_messages_per_page(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "SCAN_LIMIT", 4)
    shop, blog = uuid7(), uuid7()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'shop'), ($2, 'blog')", shop, blog)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    old = await _job_at(pool, blog, start, "bounced")
    for minute in range(1, 11):
        await _job_at(pool, shop, start + timedelta(minutes=minute), "sent")
    search = pages.MessageFilter(app=blog)
    seen: list[tuple[int, bool]] = []
    while True:
        page = await pages.search_messages(pool, search, [shop, blog])
        seen.append((len(page.rows), page.partial))
        if page.next is None:
            break
        search = pages.MessageFilter(app=blog, after=page.next)
    assert seen == [(0, True), (0, True), (1, False)]  # 4, 4, then the last 3 looked at
    assert page.rows[0].job_id == old
    bounced = await pages.search_messages(pool, pages.MessageFilter(status="bounced"), [shop, blog])
    assert bounced.rows == [] and bounced.partial


async def test_the_dashboard_is_not_in_the_openapi_description(service: Service) -> None:
    status, schema = await service.request("GET", "/openapi.json", None)
    assert status == 200 and not [p for p in schema["paths"] if p.startswith("/dashboard")]


async def test_with_the_database_gone_a_page_answers_503_with_retry_after(
    db_dsn: str, server_dsn: str
) -> None:
    async with running_service(db_dsn, None, worker=False, dashboard=DashboardConfig()) as svc:
        password = await new_operator(svc.dsn, "ann", Role.VIEWER)
        async with browser(svc) as b:
            assert (await b.login("ann", password))[0] == 303
            name = urlsplit(db_dsn).path.lstrip("/")  # also a socket DSN (?host=…)
            await admin_execute(server_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')
            status, body, answer = await b.get("/dashboard")
            assert status == 503 and "Retry-After" in answer.headers, body

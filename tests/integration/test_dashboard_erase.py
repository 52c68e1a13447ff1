"""The dashboard's erasure page over real HTTP on a real database (issue 18): admins only,
CSRF-checked, a confirmation that counts what will go, then the same erasure as
`mailer erase`: no trace of the address in any text column, audited without it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from mailer.dashboard.operators import Role
from mailer.simulator.server import SimulatorServer
from tests.integration.dashboard_helpers import browser, csrf_of, dashboard_service, new_operator
from tests.integration.harness import Service
from tests.integration.test_erasure import columns_naming, journey
from tests.integration.tracking_helpers import email, feed_until

ANN = "ann@example.org"


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    async with dashboard_service(db_dsn, simulator) as svc:
        yield svc


async def test_a_viewer_may_not_erase(service: Service, pool: asyncpg.Pool) -> None:
    key = await service.create_app("shop")
    job = await service.queue(key, email(ANN))
    await service.wait_for(key, job, {"accepted"})
    password = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", password)
        _, overview, _ = await b.get("/dashboard")
        assert "/dashboard/erase" not in overview  # no link for a viewer
        status, page, _ = await b.get("/dashboard/erase")
        assert status == 403 and "Viewers can look but not act" in page
        for path in ("/dashboard/erase/confirm", "/dashboard/erase"):
            status, _, _ = await b.post(path, {"csrf": csrf_of(page), "address": ANN})
            assert status == 403, path
    assert (await service.status(key, job))["recipients"][0]["email"] == ANN
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'erasure'") == 0


async def test_an_admin_erases_after_a_confirmation_that_counts_and_no_trace_is_left(
    service: Service,
    simulator: SimulatorServer,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await service.create_app("shop")
    ann_job = await journey(service, simulator, key, ANN)
    bob_job = await journey(service, simulator, key, "bob@example.org")
    await feed_until(service, key, 8)
    assert len(await columns_naming(pool, ANN)) >= 4  # the journey did leave traces
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        await b.login("ann", password)
        status, form_page, _ = await b.get("/dashboard/erase")
        assert status == 200 and 'action="/dashboard/erase/confirm"' in form_page
        asked = {"address": ANN.upper(), "app": ""}
        status, _, _ = await b.post("/dashboard/erase/confirm", asked)  # no CSRF token
        assert status == 403
        status, page, _ = await b.post(
            "/dashboard/erase/confirm", {"csrf": csrf_of(form_page), "address": "nobody"}
        )
        assert status == 400 and "address: give an email address" in page
        status, page, _ = await b.post(
            "/dashboard/erase/confirm", asked | {"csrf": csrf_of(form_page), "app": "x"}
        )
        assert status == 400 and "app: no such app" in page
        status, confirm, _ = await b.post(
            "/dashboard/erase/confirm", asked | {"csrf": csrf_of(form_page)}
        )
        assert status == 200 and "from every app?" in confirm
        assert "<li>1 jobs</li>" in confirm and "<li>4 events</li>" in confirm
        assert "<li>1 suppressions</li>" in confirm
        # The confirmation erased nothing and audited nothing.
        assert (await service.status(key, ann_job))["recipients"][0]["email"] == ANN
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'erasure'") == 0
        status, _, _ = await b.post("/dashboard/erase", asked)  # no CSRF token
        assert status == 403
        assert (await service.status(key, ann_job))["recipients"][0]["email"] == ANN
        with caplog.at_level(logging.INFO, logger="mailer.dashboard"):
            status, done, _ = await b.post("/dashboard/erase", asked | {"csrf": csrf_of(confirm)})
        assert status == 200 and "Erased from every app" in done and "<li>1 jobs</li>" in done

    assert await columns_naming(pool, ANN) == []
    assert (await service.request("GET", f"/status/{ann_job}", key))[0] == 404
    assert (await service.status(key, bob_job))["recipients"][0]["email"] == "bob@example.org"
    [entry] = await pool.fetch("SELECT * FROM audit_log WHERE action = 'erasure'")
    assert entry["actor"] == "operator:ann" and entry["app_id"] is None
    assert ANN not in str(dict(entry)).lower()
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "erasure"]
    assert record.__dict__["jobs"] == 1 and ANN not in str(record.__dict__).lower()
    # Still suppressed, as a keyed hash: a new email to the address is not sent.
    again = await service.queue(key, email(ANN))
    assert (await service.wait_for(key, again))["status"] == "suppressed"


async def test_an_erasure_for_one_app_leaves_the_others(service: Service) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    shop_job = await service.queue(shop, email(ANN))
    blog_job = await service.queue(blog, email(ANN))
    await service.wait_for(shop, shop_job, {"accepted"})
    await service.wait_for(blog, blog_job, {"accepted"})
    password = await new_operator(service.dsn, "ann", Role.ADMIN)
    async with browser(service) as b:
        await b.login("ann", password)
        _, form_page, _ = await b.get("/dashboard/erase")
        shop_id = form_page.split('">shop</option>')[0].rsplit('value="', 1)[1]
        asked = {"csrf": csrf_of(form_page), "address": ANN, "app": shop_id}
        status, confirm, _ = await b.post("/dashboard/erase/confirm", asked)
        assert status == 200 and "from shop?" in confirm and "<li>1 jobs</li>" in confirm
        status, done, _ = await b.post("/dashboard/erase", asked)
        assert status == 200 and "Erased from shop" in done
    assert (await service.request("GET", f"/status/{shop_job}", shop))[0] == 404
    assert (await service.status(blog, blog_job))["recipients"][0]["email"] == ANN

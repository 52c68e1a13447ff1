"""The dashboard in a real browser, as an operator uses it: Debian's Chromium driven by
Playwright (`/usr/bin/chromium`; `.ci/run` installs it), against the service on 127.0.0.1
with a simulator that posts its scripted tracking events back.

With `MAILER_SCREENSHOTS=docs/dashboard` the test also writes a PNG of each page there
(docs/dashboard.md): `MAILER_SCREENSHOTS=docs/dashboard .venv/bin/pytest
tests/integration/test_dashboard_browser.py`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailer.dashboard import DashboardConfig
from mailer.dashboard.operators import Role
from tests.integration.dashboard_helpers import new_operator
from tests.integration.harness import Service
from tests.integration.live import live_mailer, wait_recipients
from tests.integration.tracking_helpers import email
from tests.integration.webhook_receiver import Receiver

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed (the dev extra has it: python3 dev.py test)",
    ),
]

SHOTS = os.environ.get("MAILER_SCREENSHOTS")


async def _shot(page: Page, name: str) -> None:
    """A full-page PNG of what the browser shows, when screenshots are asked for."""
    if SHOTS:  # Playwright makes the folder
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


async def _seed(service: Service, hooks: str) -> dict[str, str]:
    """Two apps' mail in every state the pages show: clicked, bounced (and so suppressed),
    blocked, opened; one with an idempotency key; the shop's events sent to its webhook
    endpoint at `hooks`."""
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    status, body = await service.request("POST", "/webhooks", shop, json={"url": hooks})
    assert status == 201, body
    order = await service.queue(
        shop,
        email("ann+click@example.org", "cy+open@example.org", subject="Your order 42"),
        headers={"Idempotency-Key": "order-42-confirmation"},
    )
    bounced = await service.queue(shop, email("bob+bounce@example.org", subject="Welcome"))
    blocked = await service.queue(blog, email("dan+blocked@example.org", subject="Digest"))
    newsletter = await service.queue(blog, email("eve+open@example.org", subject="News"))
    await wait_recipients(service, shop, order, {"clicked", "opened"})
    await wait_recipients(service, shop, bounced, {"bounced"})
    await wait_recipients(service, blog, blocked, {"blocked"})
    await wait_recipients(service, blog, newsletter, {"opened"})
    # Later mail to the bounced address is suppressed at the send.
    again = await service.queue(shop, email("bob+bounce@example.org", subject="Still there?"))
    await wait_recipients(service, shop, again, {"suppressed"})
    return {"order": order, "again": again, "shop": shop, "blog": blog}


async def _log_in(page: Page, base: str, name: str, password: str) -> None:
    await page.goto(f"{base}/dashboard")
    assert "/dashboard/login" in page.url  # no session: the login page
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/dashboard")


async def test_an_admin_finds_a_message_sees_the_chart_acts_and_logs_out(
    db_dsn: str, chromium: Browser
) -> None:
    async with (
        Receiver() as hooks,
        live_mailer(db_dsn, dashboard=DashboardConfig()) as (service, _),
    ):
        jobs = await _seed(service, hooks.url)
        password = await new_operator(service.dsn, "ann", Role.ADMIN)
        page = await chromium.new_page(viewport={"width": 1200, "height": 800})
        base = service.url

        await _log_in(page, base, "ann", password)
        # The chart drew bars for the mail just sent, counted by the stats rollups.
        accepted = page.locator("svg.chart rect.bar.s-accepted")
        assert await accepted.count() > 0
        assert "accepted" in (await accepted.first.locator("title").text_content() or "")
        assert await page.locator("svg.chart rect.bar.s-delivered").count() > 0
        assert await page.locator("#live-workers").inner_text() == "1"
        rates = await page.locator("table.overview tbody").inner_text()
        assert "shop" in rates and "blog" in rates and ("warn" in rates or "risk" in rates)
        await _shot(page, "overview")

        await page.get_by_role("link", name="Messages").click()
        await _shot(page, "messages")
        await page.get_by_label("Recipient").fill("ann+click@example.org")
        await page.get_by_role("button", name="Search").click()
        rows = page.locator("table.messages tbody tr")
        assert await rows.count() == 1
        await rows.first.get_by_role("link").click()
        await page.wait_for_url(f"{base}/dashboard/messages/{jobs['order']}")
        facts = await page.locator("dl.facts").inner_text()
        assert "order-42-confirmation" in facts and jobs["order"] in facts
        timeline = await page.locator("section.recipient").first.inner_text()
        assert "click" in timeline and "open" in timeline and "sent" in timeline
        await _shot(page, "message")

        await page.get_by_role("link", name="Webhooks").click()
        assert hooks.url in await page.locator("table.endpoints").inner_text()
        log = page.locator("table.attempts tbody tr")
        assert await log.count() > 0 and "HTTP 200" in await log.first.inner_text()
        assert await page.get_by_role("link", name="Replay").count() > 0
        await _shot(page, "webhooks")

        await page.get_by_role("link", name="Mailjet").click()
        assert await page.locator("#live-workers").inner_text() == "1"
        assert "bounce" in await page.locator("main").inner_text()
        await _shot(page, "mailjet")

        await page.get_by_role("link", name="Suppressions").click()
        listing = await page.locator("table.suppressions").inner_text()
        assert "bob+bounce@example.org" in listing and "bounce at" in listing
        await _shot(page, "suppressions")

        # The suppressed recipient's page offers to unsuppress; the admin confirms.
        await page.goto(f"{base}/dashboard/messages/{jobs['again']}")
        await page.get_by_role("link", name="Unsuppress bob+bounce@example.org").click()
        assert "Remove bob+bounce@example.org from shop" in await page.locator("h1").inner_text()
        await page.get_by_label("Why").fill("the customer asked us to write again")
        await _shot(page, "confirm")
        await page.get_by_role("button", name="Remove from the list").click()
        await page.wait_for_url(f"{base}/dashboard/messages/{jobs['again']}")
        await page.get_by_role("link", name="Suppressions").click()
        assert "bob+bounce@example.org" not in await page.locator("main").inner_text()
        _, body = await service.request("GET", "/suppressions", jobs["shop"])
        assert body["suppressions"] == []

        # A scheduled job canceled from its page, after confirming.
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        scheduled = await service.queue(
            jobs["shop"], email("fay@example.org", subject="Tomorrow's offer", send_at=later)
        )
        for n in range(3):  # the Queue page's screenshot shows jobs that wait
            await service.queue(jobs["blog"], email(f"reader{n}@example.org", send_at=later))
        await page.goto(f"{base}/dashboard/messages/{scheduled}")
        await page.get_by_role("link", name="Cancel this job").click()
        assert "Cancel this job?" in await page.locator("h1").inner_text()
        await page.get_by_role("button", name="Cancel the job").click()
        await page.wait_for_url(f"{base}/dashboard/messages/{scheduled}?notice=canceled")
        assert "will not be sent" in await page.locator("p.notice").inner_text()
        assert (await service.status(jobs["shop"], scheduled))["status"] == "canceled"

        # Pause and resume an app from the Queue page.
        await page.get_by_role("link", name="Queue").click()
        await page.get_by_role("button", name="Pause blog").click()
        await page.wait_for_url(f"{base}/dashboard/queue?notice=paused")
        row = page.locator("tr[data-app=blog] td.app-state")
        assert "paused" in await row.inner_text()
        await _shot(page, "queue")
        await page.get_by_role("button", name="Resume blog").click()
        await page.wait_for_url(f"{base}/dashboard/queue?notice=resumed")
        assert "paused" not in await row.inner_text()

        # Each of those actions is in the audit log, newest first.
        await page.get_by_role("link", name="Audit").click()
        actions = await page.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts()
        assert actions[:3] == ["app.resumed", "app.paused", "job.canceled"], actions
        assert "suppression.removed" in actions and "operator.login" in actions
        await _shot(page, "audit")

        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(f"{base}/dashboard/login")
        await page.goto(f"{base}/dashboard")
        assert "/dashboard/login" in page.url


async def test_a_viewer_sees_suppressions_but_cannot_act(db_dsn: str, chromium: Browser) -> None:
    async with live_mailer(db_dsn, dashboard=DashboardConfig()) as (service, _):
        shop = await service.create_app("shop")
        for address in ("bob@example.org", "carl@example.org"):
            status, _ = await service.request(
                "POST", "/suppressions", shop, json={"email": address}
            )
            assert status == 201
        password = await new_operator(service.dsn, "vic", Role.VIEWER)
        page = await chromium.new_page(viewport={"width": 1200, "height": 700})
        base = service.url
        await _log_in(page, base, "vic", password)
        await page.get_by_role("link", name="Suppressions").click()
        listing = await page.locator("table.suppressions").inner_text()
        assert "bob@example.org" in listing and "carl@example.org" in listing
        assert await page.get_by_role("link", name="Remove").count() == 0
        await page.goto(f"{base}/dashboard/suppressions/remove?app=x&email=bob@example.org")
        assert "Viewers can look but not act" in await page.locator("main").inner_text()
        await _shot(page, "viewer-refused")
        await page.goto(f"{base}/dashboard/queue")
        assert "shop" in await page.locator("table.queue").inner_text()
        assert await page.get_by_role("button", name="Pause shop").count() == 0
        _, body = await service.request("GET", "/suppressions", shop)
        assert len(body["suppressions"]) == 2

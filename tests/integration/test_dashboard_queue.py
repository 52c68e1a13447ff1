"""The dashboard's job actions, Queue page and audit log over real HTTP, against a real
database and the simulator (issue 17): cancel and retry from a message's page, pause and
resume an app, bulk cancel or retry by filter after a confirmation that counts the jobs,
and every operator action in the audit log."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mailer import audit
from mailer.dashboard import pages
from mailer.dashboard.operators import Role
from mailer.db.pool import create_pool
from mailer.simulator.faults import FaultConfig
from mailer.simulator.server import SimulatorServer
from tests.integration.dashboard_helpers import (
    Browser,
    browser,
    csrf_of,
    dashboard_service,
    new_operator,
)
from tests.integration.harness import Service
from tests.integration.tracking_helpers import email

WAIT = 60.0  # generous: CI runs on two loaded cores


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    async with dashboard_service(db_dsn, simulator) as svc:
        yield svc


@pytest.fixture
async def db(service: Service) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(service.dsn, min_size=1, max_size=4)
    yield p
    await p.close()


async def _app_ids(db: asyncpg.Pool) -> dict[str, str]:
    return {r["name"]: str(r["id"]) for r in await db.fetch("SELECT id, name FROM apps")}


async def _audit(db: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT actor, action, target, source, app_id, details FROM audit_log"
        " WHERE action = $1 ORDER BY id",
        action,
    )


async def _admin(service: Service, b: Browser, name: str = "ann") -> None:
    password = await new_operator(service.dsn, name, Role.ADMIN)
    assert (await b.login(name, password))[0] == 303


_JOBS_FIELD = re.compile(r'name="jobs" value="([^"]*)"')


def _form_of(page: str) -> dict[str, str]:
    """The hidden fields of a confirmation page's form, as the browser would post them."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


async def test_an_admin_cancels_a_scheduled_job_after_confirming_and_it_is_audited(
    service: Service, db: asyncpg.Pool
) -> None:
    key = await service.create_app("shop")
    job_id = await service.queue(key, email(send_at=later(hours=1)))
    async with browser(service) as b:
        await _admin(service, b)
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert status == 200 and f"/dashboard/messages/{job_id}/cancel" in page
        assert "Retry the failed recipients" not in page  # nothing failed
        status, confirm, _ = await b.get(f"/dashboard/messages/{job_id}/cancel")
        assert status == 200 and "Cancel this job?" in confirm
        status, _, _ = await b.post(f"/dashboard/messages/{job_id}/cancel", {})  # no CSRF
        assert status == 403
        assert (await service.status(key, job_id))["status"] == "queued"
        status, _, answer = await b.post(f"/dashboard/messages/{job_id}/cancel", _form_of(confirm))
        assert status == 303
        assert answer.headers["Location"] == f"/dashboard/messages/{job_id}?notice=canceled"
        status, page, _ = await b.get(answer.headers["Location"])
        assert "Canceled: this job will not be sent." in page
        assert f"/dashboard/messages/{job_id}/cancel" not in page  # no longer offered
        # Again, from the old confirmation page: too late, said so, nothing changes.
        status, page, _ = await b.post(f"/dashboard/messages/{job_id}/cancel", _form_of(confirm))
        assert status == 409 and "Too late: the job is canceled" in page
    assert (await service.status(key, job_id))["status"] == "canceled"
    [entry] = await _audit(db, "job.canceled")
    assert entry["actor"] == "operator:ann" and entry["source"] == "127.0.0.1"
    assert entry["target"] == job_id and str(entry["app_id"]) == (await _app_ids(db))["shop"]


async def test_canceling_a_job_a_worker_sent_meanwhile_answers_409(
    service: Service, db: asyncpg.Pool
) -> None:
    key = await service.create_app("shop")
    job_id = await service.queue(key, email(send_at=later(hours=1)))
    async with browser(service) as b:
        await _admin(service, b)
        _, confirm, _ = await b.get(f"/dashboard/messages/{job_id}/cancel")
        # While the operator reads the confirmation, the job becomes due and is sent.
        status, _ = await service.request(
            "PATCH", f"/jobs/{job_id}", key, json={"send_at": later(hours=-1)}
        )
        assert status == 200
        await service.wait_for(key, job_id, {"accepted", "sent"}, timeout=WAIT)
        status, page, _ = await b.post(f"/dashboard/messages/{job_id}/cancel", _form_of(confirm))
        assert status == 409 and "Too late: the job is done" in page
        assert "Nothing was changed" in page
    assert await _audit(db, "job.canceled") == []


async def test_an_admin_retries_a_failed_job_from_its_page(
    service: Service, simulator: SimulatorServer, db: asyncpg.Pool
) -> None:
    key = await service.create_app("shop")
    simulator.set_faults(FaultConfig(error_500_rate=1.0))
    job_id = await service.queue(key, email())
    await service.wait_for(key, job_id, {"failed"}, timeout=WAIT)
    simulator.set_faults(FaultConfig())
    async with browser(service) as b:
        await _admin(service, b)
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert "Retry the failed recipients" in page and "Cancel this job" not in page
        _, confirm, _ = await b.get(f"/dashboard/messages/{job_id}/retry")
        status, _, answer = await b.post(f"/dashboard/messages/{job_id}/retry", _form_of(confirm))
        assert status == 303 and answer.headers["Location"].endswith("notice=retried")
        await service.wait_for(key, job_id, {"accepted", "sent"}, timeout=WAIT)
        status, page, _ = await b.post(f"/dashboard/messages/{job_id}/retry", _form_of(confirm))
        assert status == 409 and "Too late" in page
    [entry] = await _audit(db, "job.retried")
    assert (entry["actor"], entry["target"]) == ("operator:ann", job_id)


async def test_a_viewer_sees_the_queue_and_the_audit_log_but_every_action_answers_403(
    service: Service, db: asyncpg.Pool
) -> None:
    key = await service.create_app("shop")
    job_id = await service.queue(key, email(send_at=later(hours=1)))
    app_id = (await _app_ids(db))["shop"]
    password = await new_operator(service.dsn, "vic", Role.VIEWER)
    async with browser(service) as b:
        await b.login("vic", password)
        status, page, _ = await b.get(f"/dashboard/messages/{job_id}")
        assert status == 200 and "/cancel" not in page
        status, queue, _ = await b.get("/dashboard/queue")
        assert status == 200 and "shop" in queue
        assert "Pause shop" not in queue and "/queue/bulk" not in queue
        assert (await b.get("/dashboard/audit"))[0] == 200
        csrf = csrf_of(queue)
        for path in (f"/dashboard/messages/{job_id}/cancel", f"/dashboard/messages/{job_id}/retry"):
            assert (await b.get(path))[0] == 403, path
            assert (await b.post(path, {"csrf": csrf}))[0] == 403, path
        assert (await b.get(f"/dashboard/queue/bulk?action=cancel&app={app_id}"))[0] == 403
        for path in ("/dashboard/queue/pause", "/dashboard/queue/resume"):
            assert (await b.post(path, {"csrf": csrf, "app": app_id}))[0] == 403, path
        bulk = {"csrf": csrf, "action": "cancel", "app": app_id, "jobs": job_id}
        assert (await b.post("/dashboard/queue/bulk", bulk))[0] == 403
    assert (await service.status(key, job_id))["status"] == "queued"
    assert await db.fetchval("SELECT count(*) FROM app_limits") == 0


async def test_the_queue_page_counts_jobs_by_state_and_why_they_wait(
    service: Service, db: asyncpg.Pool
) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    for _ in range(2):
        await service.queue(shop, email(send_at=later(hours=1)))
    canceled = await service.queue(shop, email(send_at=later(hours=1)))
    assert (await service.request("POST", f"/jobs/{canceled}/cancel", shop))[0] == 200
    ids = await _app_ids(db)
    async with browser(service) as b:
        await _admin(service, b)
        _, queue, _ = await b.get("/dashboard/queue")
        status, _, _ = await b.post("/dashboard/queue/pause", {"app": ids["blog"]})  # no CSRF
        assert status == 403
        assert await db.fetchval("SELECT count(*) FROM app_limits") == 0
        status, _, answer = await b.post(
            "/dashboard/queue/pause", {"csrf": csrf_of(queue), "app": ids["blog"]}
        )
        assert status == 303 and answer.headers["Location"] == "/dashboard/queue?notice=paused"
        held = await service.queue(blog, email())
        _, queue, _ = await b.get(answer.headers["Location"])
        assert "Paused: the app" in queue and "Resume blog" in queue and "Pause shop" in queue

        data = await pages.queue(db)
        by_name = {a.name: a for a in data.apps}
        assert by_name["shop"].counts == {"queued": 2, "sending": 0, "failed": 0, "canceled": 1}
        assert by_name["shop"].waits["scheduled"] == 2 and not by_name["shop"].paused
        assert by_name["blog"].paused and by_name["blog"].counts["queued"] == 1
        assert by_name["blog"].waits == {
            "due": 0,
            "scheduled": 0,
            "retrying": 0,
            "paused": 1,
            "rate_limited": 0,
        }
        assert by_name["blog"].oldest_queued_seconds is not None
        assert (await service.status(blog, held))["waiting"]["reason"] == "paused"

        status, _, answer = await b.post(
            "/dashboard/queue/resume", {"csrf": csrf_of(queue), "app": ids["blog"]}
        )
        assert status == 303 and answer.headers["Location"].endswith("notice=resumed")
        await service.wait_for(blog, held, {"accepted", "sent"}, timeout=WAIT)
        status, _, _ = await b.post("/dashboard/queue/pause", {"csrf": csrf_of(queue), "app": "x"})
        assert status == 404
    [paused] = await _audit(db, "app.paused")
    [resumed] = await _audit(db, "app.resumed")
    for entry in (paused, resumed):
        assert entry["actor"] == "operator:ann" and entry["source"] == "127.0.0.1"
        assert str(entry["app_id"]) == ids["blog"]


async def test_bulk_cancel_by_tag_acts_on_exactly_the_jobs_it_counted(
    service: Service, db: asyncpg.Pool
) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    promo = [
        await service.queue(shop, email(send_at=later(hours=1), tags=["promo"])) for _ in "abc"
    ]
    other = await service.queue(shop, email(send_at=later(hours=1), tags=["order"]))
    elsewhere = await service.queue(blog, email(send_at=later(hours=1), tags=["promo"]))
    ids = await _app_ids(db)
    async with browser(service) as b:
        await _admin(service, b)
        query = f"/dashboard/queue/bulk?action=cancel&app={ids['shop']}&tag=promo"
        status, confirm, _ = await b.get(query)
        assert status == 200 and 'id="bulk-count">3<' in confirm
        match = _JOBS_FIELD.search(confirm)
        assert match and sorted(match.group(1).split(",")) == sorted(promo)
        status, _, _ = await b.post("/dashboard/queue/bulk", _form_of(confirm) | {"csrf": "x"})
        assert status == 403
        status, done, _ = await b.post("/dashboard/queue/bulk", _form_of(confirm))
        assert status == 200 and 'id="bulk-acted">3<' in done and "of 3 jobs" in done
        for job_id in promo:
            assert (await service.status(shop, job_id))["status"] == "canceled"
        assert (await service.status(shop, other))["status"] == "queued"
        assert (await service.status(blog, elsewhere))["status"] == "queued"

        # Counted, then one is taken by someone else before the confirmation: it says so.
        late = [
            await service.queue(shop, email(send_at=later(hours=1), tags=["promo"])) for _ in "ab"
        ]
        _, confirm, _ = await b.get(query)
        assert 'id="bulk-count">2<' in confirm
        assert (await service.request("POST", f"/jobs/{late[0]}/cancel", shop))[0] == 200
        _, done, _ = await b.post("/dashboard/queue/bulk", _form_of(confirm))
        assert 'id="bulk-acted">1<' in done and "of 2 jobs" in done and "1 had changed" in done

        # A time range that holds none of them: nothing to confirm.
        _, none, _ = await b.get(query + "&created_from=" + later(hours=2)[:16])
        assert "No queued job of shop matches" in none and 'name="jobs"' not in none
    entries = await _audit(db, "jobs.canceled")
    assert [e["target"] for e in entries] == ["3 jobs", late[1]]
    assert sorted(entries[0]["details"]["jobs"]) == sorted(promo)
    assert all(e["actor"] == "operator:ann" for e in entries)


async def test_bulk_retry_of_failed_jobs(
    service: Service, simulator: SimulatorServer, db: asyncpg.Pool
) -> None:
    shop = await service.create_app("shop")
    simulator.set_faults(FaultConfig(error_500_rate=1.0))
    failed = [await service.queue(shop, email()) for _ in "ab"]
    for job_id in failed:
        await service.wait_for(shop, job_id, {"failed"}, timeout=WAIT)
    simulator.set_faults(FaultConfig())
    async with browser(service) as b:
        await _admin(service, b)
        app_id = (await _app_ids(db))["shop"]
        _, confirm, _ = await b.get(f"/dashboard/queue/bulk?action=retry&app={app_id}")
        assert 'id="bulk-count">2<' in confirm and "Retry 2 jobs" in confirm
        _, done, _ = await b.post("/dashboard/queue/bulk", _form_of(confirm))
        assert 'id="bulk-acted">2<' in done
    for job_id in failed:
        await service.wait_for(shop, job_id, {"accepted", "sent"}, timeout=WAIT)
    [entry] = await _audit(db, "jobs.retried")
    assert sorted(entry["details"]["jobs"]) == sorted(failed)


async def test_bad_bulk_input_answers_400_naming_the_field(
    service: Service, db: asyncpg.Pool
) -> None:
    await service.create_app("shop")
    app_id = (await _app_ids(db))["shop"]
    async with browser(service) as b:
        await _admin(service, b)
        for query, says in (
            (f"action=delete&app={app_id}", "action: one of cancel, retry"),
            ("action=cancel&app=nope", "app: choose the app"),
            (f"action=cancel&app={app_id}&created_from=yesterday", "created from: a time"),
        ):
            status, page, _ = await b.get(f"/dashboard/queue/bulk?{query}")
            assert status == 400 and says in page, query
        _, queue, _ = await b.get("/dashboard/queue")
        form = {"csrf": csrf_of(queue), "action": "cancel", "app": app_id, "jobs": "x,y"}
        status, page, _ = await b.post("/dashboard/queue/bulk", form)
        assert status == 400 and "jobs:" in page


async def _entries(db: asyncpg.Pool, n: int, **kwargs: Any) -> None:
    async with db.acquire() as conn:
        for i in range(n):
            await audit.record(
                conn, audit.Actor("cli", "root", "host"), "test.thing", target=str(i), **kwargs
            )


async def test_the_audit_page_lists_entries_newest_first_filtered_and_paged(
    service: Service, db: asyncpg.Pool
) -> None:
    await service.create_app("shop")
    app_id = uuid.UUID((await _app_ids(db))["shop"])
    await _entries(db, pages.PAGE_SIZE + 5, app_id=app_id)
    async with browser(service) as b:
        await b.login("nobody", "wrong")  # a refused login is audited too
        await _admin(service, b)
        status, page, _ = await b.get("/dashboard/audit")
        assert status == 200
        actors = re.findall(r'\?actor=[^"]*">([^<]+)</a>', page)
        assert actors[0] == "operator:ann" and "operator:nobody" in actors
        assert "operator.login_failed" in page and "operator.login" in page

        seen: list[str] = []
        path = f"/dashboard/audit?action=test.thing&app={app_id}"
        while path:
            status, page, _ = await b.get(path)
            assert status == 200
            seen += re.findall(r"<td>(\d+)</td>", page)
            more = re.search(r'class="more" href="([^"]+)"', page)
            path = more.group(1).replace("&amp;", "&") if more else ""
        assert seen == [str(i) for i in reversed(range(pages.PAGE_SIZE + 5))]

        for who in ("operator:nobody", "nobody"):  # a bare name is an operator's
            _, page, _ = await b.get(f"/dashboard/audit?actor={who}")
            assert "operator.login_failed" in page and "test.thing" not in page, who
        status, page, _ = await b.get("/dashboard/audit?before=soon")
        assert status == 400 and "before:" in page
    [login] = await _audit(db, "operator.login")
    assert (login["actor"], login["source"]) == ("operator:ann", "127.0.0.1")

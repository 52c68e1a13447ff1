"""`GET /jobs` over real HTTP against PostgreSQL: newest first, keyset pages, each filter,
scoped to the app; and the SQL job status held to the Python one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.delivery import job_search
from mailer.simulator.server import SimulatorServer
from mailer.tracking.precedence import STATUS_CHAIN, RecipientStatus, derive_job_status
from tests.integration.harness import Service
from tests.integration.tracking_helpers import email


async def page(service: Service, key: str, query: str = "") -> tuple[list[str], str | None]:
    status, body = await service.request("GET", f"/jobs?{query}", key)
    assert status == 200, body
    return [j["job_id"] for j in body["jobs"]], body["next_cursor"]


async def every_page(service: Service, key: str, query: str, limit: int) -> list[str]:
    found: list[str] = []
    after = ""
    while True:
        ids, cursor = await page(service, key, f"{query}&limit={limit}{after}")
        found += ids
        if cursor is None:
            return found
        after = f"&after={cursor}"


async def test_jobs_newest_first_paged_and_filtered(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app("shop")
    other = await service.create_app("other")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    jobs: list[str] = []
    jobs.append(await service.queue(key, email("ann@example.org", tags=["welcome"])))
    jobs.append(
        await service.queue(key, email("bob@example.org", cc=[{"email": "Ann@Example.org"}]))
    )
    jobs.append(
        await service.queue(key, email("cat@example.org", send_at=later, tags=["welcome", "b"]))
    )
    jobs.append(
        await service.queue(key, email("dan@example.org"), headers={"Idempotency-Key": "order-7"})
    )
    status, batch = await service.request(
        "POST",
        "/queue/batch",
        key,
        json={"emails": [email("eve@example.org")]},
        headers={"Idempotency-Key": "batch-1"},
    )
    assert status == 202, batch
    jobs.append(batch["jobs"][0]["job_id"])
    await service.queue(other, email("ann@example.org", tags=["welcome"]))
    for job_id in (jobs[0], jobs[1], jobs[3], jobs[4]):
        await service.wait_for(key, job_id, {"accepted"})

    newest_first = list(reversed(jobs))
    assert (await page(service, key))[0] == newest_first
    assert await every_page(service, key, "", 2) == newest_first
    assert await every_page(service, key, "recipient=ANN@example.org", 1) == [jobs[1], jobs[0]]
    assert await every_page(service, key, "tag=welcome", 1) == [jobs[2], jobs[0]]
    assert (await page(service, key, "status=queued"))[0] == [jobs[2]]
    assert (await page(service, key, "status=accepted&tag=welcome"))[0] == [jobs[0]]
    assert (await page(service, key, "idempotency_key=order-7"))[0] == [jobs[3]]
    assert (await page(service, key, "idempotency_key=batch-1%230"))[0] == [jobs[4]]
    assert (await page(service, key, "recipient=nobody@example.org"))[0] == []

    status, body = await service.request("GET", "/jobs?recipient=bob@example.org", key)
    [listed] = body["jobs"]
    assert listed["recipients"] == [
        {"email": "bob@example.org", "kind": "to", "status": "accepted"},
        {"email": "ann@example.org", "kind": "cc", "status": "accepted"},
    ]
    assert listed["subject"] == "Your order" and listed["tags"] == []

    created = [(await service.status(key, j))["created_at"] for j in jobs]
    since = created[2].replace("+00:00", "Z")
    window = f"from={since}&to={created[4].replace('+00:00', 'Z')}"
    assert (await page(service, key, window))[0] == [jobs[3], jobs[2]]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert (await page(service, key, f"from={future}"))[0] == []

    assert (await page(service, other, ""))[0] != [] and jobs[0] not in (
        await page(service, other)
    )[0]
    for bad in ("limit=101", "limit=0", "status=lost", "tag=a%20b", "from=12345"):
        status, body = await service.request("GET", f"/jobs?{bad}", key)
        assert status == 422, (bad, body)
    status, body = await service.request("GET", "/jobs?after=nonsense", key)
    assert (status, body["error"]) == (400, "invalid_cursor")


async def test_a_page_scans_a_bounded_range_and_the_cursor_continues(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await service.create_app("shop")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    jobs = []
    for i in range(7):
        extra = {"send_at": later} if i in (1, 2, 5) else {}
        jobs.append(await service.queue(key, email(f"u{i}@example.org", **extra)))
    sent = [jobs[i] for i in (0, 3, 4, 6)]
    for job_id in sent:
        await service.wait_for(key, job_id, {"accepted"})
    monkeypatch.setattr(job_search, "SCAN_BUDGET", 2)
    pages: list[list[str]] = []
    after = ""
    while True:  # 7 jobs looked at 2 per page: 4 pages, whatever the limit
        ids, cursor = await page(service, key, f"status=accepted&limit=5{after}")
        pages.append(ids)
        if cursor is None:
            break
        after = f"&after={cursor}"
    assert pages == [[jobs[6]], [jobs[4], jobs[3]], [], [jobs[0]]]
    # A full page continues after its last job, as without a budget.
    assert await every_page(service, key, "status=queued", 1) == [jobs[5], jobs[2], jobs[1]]
    status, body = await service.request("GET", "/jobs?limit=5&tag=none", key)
    assert (status, body) == (200, {"jobs": [], "next_cursor": None})


statuses = st.lists(st.sampled_from(STATUS_CHAIN), min_size=1, max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    state=st.sampled_from(["queued", "sending", "done", "failed", "canceled"]), recipients=statuses
)
async def test_sql_job_status_is_the_python_one(
    pool: asyncpg.Pool, state: str, recipients: list[str]
) -> None:
    found = await pool.fetchval(
        "SELECT derived_job_status($1, $2, $3)", state, recipients, STATUS_CHAIN
    )
    expected: Any = state
    if state not in ("queued", "sending", "canceled"):
        expected = str(derive_job_status([RecipientStatus(s) for s in recipients]))
    assert found == expected

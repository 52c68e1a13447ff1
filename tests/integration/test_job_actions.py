"""Acting on a job over real HTTP against PostgreSQL and the real worker: cancel (also
racing the worker's claim), reschedule, retry; and why a job waits."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from mailer.db.pool import create_pool
from mailer.delivery import job_actions, store
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.delivery.retry import RetryPolicy
from mailer.simulator.faults import FaultConfig
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service, running_service
from tests.integration.test_app_keys import key_with
from tests.integration.tracking_helpers import email, feed_until, tracking_service


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.fixture
async def quick(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    """API and worker whose retries run out after 3 quick attempts."""
    policy = RetryPolicy(base_delay_s=0.02, max_delay_s=0.05, max_attempts=3)
    async with tracking_service(db_dsn, simulator, policy=policy) as svc:
        yield svc


async def test_cancel_a_scheduled_job(
    service: Service, simulator: SimulatorServer, pool: asyncpg.Pool
) -> None:
    key = await service.create_app()
    await service.request("POST", "/webhooks", key, json={"url": "http://127.0.0.1:9/hook"})
    job_id = await service.queue(
        key, email("ann@example.org", "bob@example.org", send_at=later(hours=1), tags=["t"])
    )
    waiting = (await service.status(key, job_id))["waiting"]
    assert waiting["reason"] == "scheduled" and waiting["error"] is None
    assert datetime.fromisoformat(waiting["until"]) > datetime.now(UTC)

    read_only = await key_with(service, "shop", "read")
    for method, path in (("POST", "/cancel"), ("POST", "/retry"), ("PATCH", "")):
        status, body = await service.request(
            method, f"/jobs/{job_id}{path}", read_only, json={"send_at": later(hours=2)}
        )
        assert (status, body.get("scope")) == (403, "send"), (path, body)
    status, body = await service.request("POST", f"/jobs/{job_id}/cancel", key)
    assert (status, body) == (200, {"job_id": job_id, "status": "canceled"})
    document = await service.status(key, job_id)
    assert document["status"] == "canceled" and document["waiting"] is None
    assert document["recipient_statuses"] == {"canceled": 2}
    timeline = [e["type"] for r in document["recipients"] for e in r["events"]]
    assert timeline == ["email.canceled"] * 2

    events = await feed_until(service, key, 2)
    assert [(e["type"], e["email"], e["tags"]) for e in events] == [
        ("email.canceled", "ann@example.org", ["t"]),
        ("email.canceled", "bob@example.org", ["t"]),
    ]
    for name in ("email.canceled", "canceled"):  # the type, and its name before #16
        assert await feed_until(service, key, 2, query=f"&type={name}") == events
    hooks = [
        orjson.loads(r["body"]) for r in await pool.fetch("SELECT body FROM webhook_deliveries")
    ]
    assert sorted((h["type"], h["data"]["recipient"]) for h in hooks) == [
        ("email.canceled", "ann@example.org"),
        ("email.canceled", "bob@example.org"),
    ]

    status, body = await service.request("POST", f"/jobs/{job_id}/cancel", key)
    assert (status, body["error"], body["state"]) == (409, "job_state", "canceled")
    # Even made due, a canceled job is never claimed.
    await pool.execute("UPDATE jobs SET run_at = now() - interval '1 hour'")
    await pool.execute("NOTIFY mailer_jobs")
    sent = await service.queue(key, email("cat@example.org"))
    await service.wait_for(key, sent, {"accepted"})
    assert simulator.state.count_for(job_id) == 0

    status, body = await service.request("POST", f"/jobs/{sent}/cancel", key)
    assert (status, body["state"]) == (409, "done")
    other = await service.create_app("other")
    for path in (f"/jobs/{job_id}/cancel", "/jobs/nonsense/cancel"):
        status, body = await service.request("POST", path, other)
        assert status == 404, body


async def test_cancel_races_the_claim_and_exactly_one_wins(db_dsn: str) -> None:
    async with running_service(db_dsn, None, worker=False) as service:
        await service.create_app()
        pool = await create_pool(db_dsn, min_size=4, max_size=12)
        try:
            app_id = await pool.fetchval("SELECT id FROM apps")
            jobs = [
                new_job(app_id, EmailRequest.model_validate(email(f"u{i}@example.org")))
                for i in range(200)
            ]
            async with pool.acquire() as conn:
                await insert_jobs(conn, jobs)
            claimed: set[str] = set()
            canceled: set[str] = set()
            refused: dict[str, str] = {}

            async def claim() -> None:
                while len(claimed) + len(canceled) < len(jobs):
                    taken = await store.claim(pool, limit=7, lease_seconds=60, worker_id="w")
                    claimed.update(str(j.id) for j in taken)
                    await asyncio.sleep(0)

            async def cancel(job_id: str) -> None:
                await asyncio.sleep(random.random() * 0.05)
                try:
                    await job_actions.cancel(pool, app_id, uuid.UUID(job_id))
                    canceled.add(job_id)
                except job_actions.TooLate as exc:
                    refused[job_id] = exc.state

            ids = [str(j.id) for j in jobs]
            await asyncio.wait_for(
                asyncio.gather(claim(), claim(), *(cancel(i) for i in ids)), timeout=60
            )
            assert claimed | canceled == set(ids)
            assert not claimed & canceled
            assert set(refused) == claimed and set(refused.values()) == {"sending"}
            assert canceled and claimed  # the race was run both ways
            rows = await pool.fetch("SELECT id::text AS id, state FROM jobs")
            states = {row["id"]: row["state"] for row in rows}
            assert {i for i, s in states.items() if s == "canceled"} == canceled
        finally:
            await pool.close()


async def test_reschedule_a_scheduled_job(service: Service, simulator: SimulatorServer) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email(send_at=later(hours=1)))
    target = later(hours=2)
    status, body = await service.request("PATCH", f"/jobs/{job_id}", key, json={"send_at": target})
    assert status == 200, body
    assert datetime.fromisoformat(body["send_at"]) == datetime.fromisoformat(target)
    assert (await service.status(key, job_id))["waiting"]["until"] == body["send_at"]
    for bad in (
        {},
        {"send_at": 12},
        {"send_at": "2030-01-01T00:00:00"},
        {"send_at": target, "x": 1},
    ):
        status, answer = await service.request("PATCH", f"/jobs/{job_id}", key, json=bad)
        assert status == 422, (bad, answer)
    # A time passed sends it now.
    status, body = await service.request(
        "PATCH", f"/jobs/{job_id}", key, json={"send_at": later(hours=-1)}
    )
    assert status == 200, body
    await service.wait_for(key, job_id, {"accepted"})
    status, body = await service.request("PATCH", f"/jobs/{job_id}", key, json={"send_at": target})
    assert (status, body["state"]) == (409, "done")


async def test_retry_a_failed_job_keeps_its_history(
    quick: Service, simulator: SimulatorServer
) -> None:
    key = await quick.create_app()
    simulator.set_faults(FaultConfig(error_500_rate=1.0))
    job_id = await quick.queue(key, email())
    seen_retrying = False
    for _ in range(400):
        document = await quick.status(key, job_id)
        waiting = document["waiting"]
        if waiting is not None and waiting["reason"] == "retrying":
            assert waiting["error"] is not None
            seen_retrying = True
        if document["status"] == "failed":
            break
        await asyncio.sleep(0.01)
    assert document["status"] == "failed", document
    assert seen_retrying and document["waiting"] is None
    simulator.set_faults(FaultConfig())
    status, body = await quick.request("POST", f"/jobs/{job_id}/retry", key)
    assert (status, body) == (202, {"job_id": job_id, "status": "queued"})
    done = await quick.wait_for(key, job_id, {"accepted"})
    assert simulator.state.count_for(job_id) == 1
    [round_] = done["history"]
    assert round_["attempts"] == 3 and round_["error"] is not None
    assert round_["recipients"][0]["email"] == "ann@example.org"
    assert round_["recipients"][0]["error"] is not None
    assert done["attempts"] == 1 and done["last_error"] is None
    status, body = await quick.request("POST", f"/jobs/{job_id}/retry", key)
    assert (status, body["error"], body["state"]) == (409, "job_state", "done")

"""Pause, rate limits, daily quotas and the account's Mailjet ceiling, enforced in the claim
and the enqueue across workers: real PostgreSQL, real HTTP, the simulator as Mailjet."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from mailer.config import Settings
from mailer.db.pool import connect, create_pool
from mailer.delivery import limits
from mailer.delivery.retry import RetryPolicy
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET, MailjetTarget, running_worker
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service, running_service, service_settings

FAST_RETRY = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, max_attempts=10)


def email(to: str = "ann@example.org", **extra: Any) -> dict[str, Any]:
    return {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": to}],
        "subject": "Your order",
        "text": "Thanks!",
        **extra,
    }


@contextlib.asynccontextmanager
async def database(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def app_id_of(dsn: str, name: str) -> uuid.UUID:
    async with database(dsn) as conn:
        found: uuid.UUID = await conn.fetchval("SELECT id FROM apps WHERE name = $1", name)
    return found


@contextlib.asynccontextmanager
async def second_worker(
    settings: Settings, dsn: str, simulator: SimulatorServer
) -> AsyncIterator[None]:
    """Another worker process's send loop on the same database (its own pool)."""
    target = MailjetTarget(simulator.url, SIMULATOR_KEY, SIMULATOR_SECRET)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        async with running_worker(settings, dsn, pool, target, policy=FAST_RETRY):
            yield
    finally:
        await pool.close()


async def wait_sent(simulator: SimulatorServer, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(simulator.state.count_for(j) for j in job_ids):
        assert time.monotonic() < deadline, "jobs not sent in time"
        await asyncio.sleep(0.05)


async def queue_batch(service: Service, key: str, emails: list[dict[str, Any]]) -> list[str]:
    status, body = await service.request("POST", "/queue/batch", key, json={"emails": emails})
    assert status == 202, body
    return [job["job_id"] for job in body["jobs"]]


async def test_a_paused_app_keeps_its_jobs_queued_until_resumed(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    async with running_service(db_dsn, simulator, policy=FAST_RETRY) as service:
        paused_key = await service.create_app("paused")
        other_key = await service.create_app("other")
        paused = await app_id_of(db_dsn, "paused")
        async with database(db_dsn) as conn:
            await limits.pause(conn, paused)
            held = await queue_batch(
                service, paused_key, [email(f"p{i}@example.org") for i in range(3)]
            )
            other = await service.queue(other_key, email())
            await wait_sent(simulator, [other], timeout=10)
            await asyncio.sleep(0.5)  # several claims pass by the paused app's jobs
            assert not any(simulator.state.count_for(j) for j in held)
            for job_id in held:
                document = await service.status(paused_key, job_id)
                assert document["status"] == "queued"
                assert document["waiting"] == {"reason": "paused", "until": None, "error": None}
            assert await limits.hold_of(conn, paused) == limits.Hold("paused", None)
            assert await limits.hold_of(conn, await app_id_of(db_dsn, "other")) is None
            await limits.resume(conn, paused)
        await wait_sent(simulator, held, timeout=10)
        assert [simulator.state.count_for(j) for j in held] == [1, 1, 1]


async def test_two_workers_together_keep_an_apps_rate(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    settings = service_settings()
    async with (
        running_service(db_dsn, simulator, settings=settings, policy=FAST_RETRY) as service,
        second_worker(settings, db_dsn, simulator),
    ):
        slow_key = await service.create_app("slow")
        fast_key = await service.create_app("fast")
        async with database(db_dsn) as conn:
            await limits.set_limits(conn, await app_id_of(db_dsn, "slow"), rate=10)
        slow = await queue_batch(service, slow_key, [email(f"s{i}@example.org") for i in range(40)])
        fast = await queue_batch(service, fast_key, [email(f"f{i}@example.org") for i in range(40)])
        started = time.time()
        await wait_sent(simulator, fast, timeout=5)
        fast_done = time.time() - started
        await wait_sent(simulator, slow, timeout=20)
    sent_at = sorted(m.accepted_at for j in slow for m in simulator.state.messages_for(j))
    # 40 emails at 10/s from a full bucket (10): the last no sooner than 3 s after the first.
    assert sent_at[-1] - sent_at[0] >= 2.7
    # In any window of w seconds, at most a bucket (10) plus w seconds of rate, and a little
    # for calls claimed together but answered apart.
    for i, start in enumerate(sent_at):
        for w in (0.5, 1.0, 2.0):
            inside = sum(1 for t in sent_at[i:] if t < start + w)
            assert inside <= 10 + 10 * w + 2, (w, inside)
    # The other app is not held back by the slow one's backlog.
    assert fast_done < 3.0
    assert all(simulator.state.count_for(j) == 1 for j in slow + fast)


async def test_past_the_daily_quota_queue_answers_429_and_stores_nothing(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    async with running_service(db_dsn, None, worker=False) as service:
        key = await service.create_app("quota")
        app_id = await app_id_of(db_dsn, "quota")
        first = await service.queue(key, email(), headers={"Idempotency-Key": "one"})
        async with database(db_dsn) as conn:
            await limits.set_limits(conn, app_id, daily=3)  # counts the one stored today
        await service.queue(key, email())
        status, body = await service.request(
            "POST", "/queue/batch", key, json={"emails": [email(), email()]}
        )
        assert status == 429, body
        assert body["error"] == "daily_quota_exceeded"
        assert 0 < body["retry_after"] <= 86_400
        await service.queue(key, email())  # the third fits
        async with service.http.post(
            service.url + "/queue", json=email(), headers={"Authorization": f"Bearer {key}"}
        ) as refused:
            assert refused.status == 429
            assert 0 < int(refused.headers["Retry-After"]) <= 86_400
        # A replay is not a new email: it still answers its job.
        again = await service.request(
            "POST", "/queue", key, json=email(), headers={"Idempotency-Key": "one"}
        )
        assert again[0] == 202 and again[1]["job_id"] == first
        async with database(db_dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM jobs") == 3
            assert await conn.fetchval("SELECT accepted FROM app_daily_usage") == 3
            await limits.clear_limits(conn, app_id)
        await service.queue(key, email())


async def test_the_mailjet_ceiling_spaces_calls_across_workers(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    settings = service_settings(mailjet_max_calls_per_second=5.0)
    async with (
        running_service(db_dsn, simulator, settings=settings, policy=FAST_RETRY) as service,
        second_worker(settings, db_dsn, simulator),
    ):
        key = await service.create_app()
        # 26 recipients each: no two jobs fit in one call of 50, so 8 jobs are 8 calls.
        many = [{"email": f"c{i}@example.org"} for i in range(25)]
        jobs = await queue_batch(
            service, key, [email(f"t{n}@example.org", cc=many) for n in range(8)]
        )
        await wait_sent(simulator, jobs, timeout=15)
    times = sorted(simulator.state.call_times)
    assert len(times) == 8
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 5 calls per second: 0.2 s apart, less what one call's latency may shift.
    assert min(gaps) >= 0.12, gaps
    assert times[-1] - times[0] >= 7 * 0.2 - 0.1


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan")])
async def test_a_rate_must_be_positive(db_dsn: str, rate: float) -> None:
    async with database(db_dsn) as conn:
        app = await conn.fetchval(
            "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'a') RETURNING id"
        )
        with pytest.raises(ValueError, match="positive"):
            await limits.set_limits(conn, app, rate=rate)


def test_cli_pause_resume_and_limits(db_dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_dsn}

    def mailer(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mailer.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    mailer("apps", "create", "shop")
    assert "paused" in mailer("apps", "pause", "shop")
    assert "PAUSED" in mailer("apps", "list")
    mailer("apps", "limits", "set", "shop", "--rate", "10", "--daily", "5000")
    [listed] = orjson.loads(mailer("apps", "list", "--json"))
    assert (listed["paused"], listed["rate_per_second"], listed["daily_quota"]) == (
        True,
        10.0,
        5000,
    )
    assert "resumed" in mailer("apps", "resume", "shop")
    mailer("apps", "limits", "clear", "shop")
    [listed] = orjson.loads(mailer("apps", "list", "--json"))
    assert (listed["paused"], listed["rate_per_second"], listed["daily_quota"]) == (
        False,
        None,
        None,
    )
    entries = orjson.loads(mailer("audit", "--app", "shop", "--json"))
    changes = [e for e in reversed(entries) if e["action"].startswith("app.")]
    assert [e["action"] for e in changes] == [
        "app.created",
        "app.paused",
        "app.limits_set",
        "app.resumed",
        "app.limits_cleared",
    ]
    assert changes[2]["details"] == {"rate_per_second": 10.0, "daily_quota": 5000}
    assert all(e["actor"].startswith("cli:") for e in changes)
    refused = subprocess.run(
        [sys.executable, "-m", "mailer.cli", "apps", "limits", "set", "shop", "--rate", "0"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "positive" in refused.stderr

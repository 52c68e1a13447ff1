"""Webhook dispatch in batches: claims of many deliveries by dispatchers at once, and one
statement recording a batch of mixed results (migration 0020), on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mailer.apps import store as apps
from mailer.queue.loop import LoopOptions
from mailer.webhooks.dispatch import Answer, Dispatcher
from mailer.webhooks.outbox import OutboxEvent, fan_out
from mailer.webhooks.schedule import DISABLE_AFTER
from mailer.webhooks.signing import generate_secret
from tests.integration.harness import LOOPBACK, TEST_BOX
from tests.integration.webhook_receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def new_app(pool: asyncpg.Pool) -> uuid.UUID:
    async with pool.acquire() as conn:
        app, _key = await apps.create_app(conn, f"shop-{uuid.uuid4().hex[:8]}")
    return app.id


async def new_endpoint(
    pool: asyncpg.Pool, app_id: uuid.UUID, url: str, *, failing_since: datetime | None = None
) -> uuid.UUID:
    endpoint_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO webhook_endpoints (id, app_id, url, secret, first_failure_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        endpoint_id,
        app_id,
        url,
        generate_secret(),
        failing_since,
    )
    return endpoint_id


async def store_events(pool: asyncpg.Pool, app_id: uuid.UUID, ids: range) -> int:
    events = [
        OutboxEvent(
            event_id=i,
            app_id=app_id,
            type="email.opened",
            occurred_at=datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC),
            job_id=uuid.UUID(int=i),
            recipient=f"user{i}@example.org",
            message_id=2**60 + i,
        )
        for i in ids
    ]
    async with pool.acquire() as conn, conn.transaction():
        return await fan_out(conn, events)


async def test_two_dispatchers_claiming_at_once_never_take_one_delivery_twice(
    pool: asyncpg.Pool,
) -> None:
    app_id = await new_app(pool)
    await new_endpoint(pool, app_id, "http://127.0.0.1:9/hook")
    assert await store_events(pool, app_id, range(1, 301)) == 300
    first = Dispatcher(pool, targets=LOOPBACK, box=TEST_BOX)
    second = Dispatcher(pool, targets=LOOPBACK, box=TEST_BOX)
    taken: dict[str, list[uuid.UUID]] = {first.dispatcher_id: [], second.dispatcher_id: []}
    for _ in range(100):
        # Both claims are in PostgreSQL at the same time, on two connections.
        batches = await asyncio.gather(first.claim(16), second.claim(16))
        for dispatcher, batch in zip((first, second), batches, strict=True):
            taken[dispatcher.dispatcher_id] += [d.id for d in batch]
        if not any(batches):
            break
    everything = taken[first.dispatcher_id] + taken[second.dispatcher_id]
    assert sorted(everything) == sorted(set(everything))  # none claimed twice
    assert len(everything) == 300
    assert taken[first.dispatcher_id] and taken[second.dispatcher_id]
    rows = await pool.fetch("SELECT id, attempts, locked_by FROM webhook_deliveries")
    holder = {i: d for d, ids in taken.items() for i in ids}
    assert all(r["attempts"] == 1 and r["locked_by"] == holder[r["id"]] for r in rows)


async def test_two_running_dispatchers_deliver_each_event_once(
    pool: asyncpg.Pool, receiver: Receiver
) -> None:
    app_id = await new_app(pool)
    await new_endpoint(pool, app_id, receiver.url)
    assert await store_events(pool, app_id, range(1, 201)) == 200
    options = LoopOptions(concurrency=8, ahead=8, min_free=4, poll_interval=0.05)
    dispatchers = [Dispatcher(pool, options=options, targets=LOOPBACK, box=TEST_BOX) for _ in "ab"]
    for d in dispatchers:
        await d.start()
    try:
        await receiver.wait_for(200, timeout=120)
    finally:
        for d in dispatchers:
            await d.stop()  # drains: every answer in is recorded before this returns
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 200 and set(ids.values()) == {1}
    states = await pool.fetch("SELECT state, count(*) FROM webhook_deliveries GROUP BY 1")
    assert [(r["state"], r["count"]) for r in states] == [("delivered", 200)]
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 200


async def test_a_batch_of_mixed_results_records_each_correctly(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    app_id = await new_app(pool)
    healthy = await new_endpoint(pool, app_id, "http://127.0.0.1:9/a")
    recovering = await new_endpoint(pool, app_id, "http://127.0.0.1:9/b")
    gone = await new_endpoint(pool, app_id, "http://127.0.0.1:9/c")
    long_failing = await new_endpoint(
        pool, app_id, "http://127.0.0.1:9/d", failing_since=now - DISABLE_AFTER - timedelta(hours=1)
    )
    assert await store_events(pool, app_id, range(1, 3)) == 8  # 2 events x 4 endpoints
    dispatcher = Dispatcher(
        pool, clock=lambda: now, rng=random.Random(3), targets=LOOPBACK, box=TEST_BOX
    )
    claimed = await dispatcher.claim(8)
    assert len(claimed) == 8
    by = {(c.endpoint_id, c.event_id): c for c in claimed}
    answers = {
        (healthy, "evt_1"): Answer(200, 3, response="ok"),
        (healthy, "evt_2"): Answer(None, 5000, error="timed out"),
        (recovering, "evt_1"): Answer(500, 4, response="oops"),
        (recovering, "evt_2"): Answer(204, 2),
        (gone, "evt_1"): Answer(410, 1, response="gone"),
        (gone, "evt_2"): Answer(200, 1),
        (long_failing, "evt_1"): Answer(503, 1, retry_after="120"),
        (long_failing, "evt_2"): Answer(500, 1),
    }
    # One delivery was taken over by another dispatcher after its lease ran out.
    taken_over = by[(healthy, "evt_2")]
    await pool.execute(
        "UPDATE webhook_deliveries SET locked_by = 'other' WHERE id = $1", taken_over.id
    )
    batch = [dispatcher._outcome(by[k], a) for k, a in answers.items()]
    results = dict(zip(answers, await dispatcher._record_many(batch), strict=True))

    assert results[(healthy, "evt_2")] is None
    assert {k: r.state for k, r in results.items() if r is not None} == {
        (healthy, "evt_1"): "delivered",
        (recovering, "evt_1"): "pending",
        (recovering, "evt_2"): "delivered",
        (gone, "evt_1"): "failed",  # 410: no retry
        (gone, "evt_2"): "delivered",
        (long_failing, "evt_1"): "pending",
        (long_failing, "evt_2"): "pending",
    }
    disabled = {k: r.disabled for k, r in results.items() if r is not None and r.disabled}
    # The first attempt that disables an endpoint says so, once.
    assert disabled == {(gone, "evt_1"): "gone", (long_failing, "evt_1"): "failing"}

    rows = {
        (r["endpoint_id"], r["event_id"]): r
        for r in await pool.fetch("SELECT * FROM webhook_deliveries")
    }
    retry = rows[(recovering, "evt_1")]
    assert retry["last_status"] == 500 and retry["last_error"] == "HTTP 500"
    assert retry["locked_by"] is None and retry["finished_at"] is None
    assert now + timedelta(seconds=3) <= retry["next_attempt_at"] <= now + timedelta(seconds=7)
    # Retry-After 120 s on a 503 is honoured up to twice the 5 s step.
    assert rows[(long_failing, "evt_1")]["next_attempt_at"] == now + timedelta(seconds=10)
    assert rows[(gone, "evt_1")]["finished_at"] == now
    untouched = rows[(healthy, "evt_2")]
    assert untouched["locked_by"] == "other" and untouched["state"] == "pending"

    attempts = await pool.fetch(
        "SELECT endpoint_id, event_id, attempt, status_code, duration_ms, error, response"
        " FROM webhook_attempts ORDER BY id"
    )
    expected = [k for k in answers if k != (healthy, "evt_2")]
    assert [(a["endpoint_id"], a["event_id"]) for a in attempts] == expected  # batch order
    logged = {(a["endpoint_id"], a["event_id"]): a for a in attempts}
    assert logged[(recovering, "evt_1")]["response"] == "oops"
    assert logged[(recovering, "evt_1")]["error"] == "HTTP 500"
    assert logged[(healthy, "evt_1")]["duration_ms"] == 3
    assert all(a["attempt"] == 1 for a in attempts)

    endpoints = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, enabled, disabled_reason, first_failure_at FROM webhook_endpoints"
        )
    }
    assert endpoints[healthy]["enabled"] and endpoints[healthy]["first_failure_at"] is None
    # A failure then a success: the run of failures ended with the batch.
    assert endpoints[recovering]["enabled"]
    assert endpoints[recovering]["first_failure_at"] is None
    # 410 disables at once; the success after it starts no run of failures.
    assert not endpoints[gone]["enabled"] and "410" in endpoints[gone]["disabled_reason"]
    assert endpoints[gone]["first_failure_at"] is None
    assert not endpoints[long_failing]["enabled"]
    assert "5 days" in endpoints[long_failing]["disabled_reason"]
    assert endpoints[long_failing]["first_failure_at"] == now - DISABLE_AFTER - timedelta(hours=1)


async def test_a_run_of_failures_starts_at_the_first_failure_after_the_last_success(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    app_id = await new_app(pool)
    endpoint = await new_endpoint(pool, app_id, "http://127.0.0.1:9/a")
    assert await store_events(pool, app_id, range(1, 5)) == 4
    clock = [now]
    dispatcher = Dispatcher(pool, clock=lambda: clock[0], targets=LOOPBACK, box=TEST_BOX)
    claimed = sorted(await dispatcher.claim(4), key=lambda c: c.event_id)
    batch = []
    for delivery, answer in zip(
        claimed, [Answer(500, 1), Answer(200, 1), Answer(500, 1), Answer(500, 1)], strict=True
    ):
        batch.append(dispatcher._outcome(delivery, answer))
        clock[0] += timedelta(seconds=1)
    await dispatcher._record_many(batch)
    started = await pool.fetchval(
        "SELECT first_failure_at FROM webhook_endpoints WHERE id = $1", endpoint
    )
    assert started == now + timedelta(seconds=2)


async def test_claims_not_started_are_given_back(pool: asyncpg.Pool) -> None:
    app_id = await new_app(pool)
    await new_endpoint(pool, app_id, "http://127.0.0.1:9/a")
    assert await store_events(pool, app_id, range(1, 4)) == 3
    dispatcher = Dispatcher(pool, targets=LOOPBACK, box=TEST_BOX)
    claimed = await dispatcher.claim(3)
    await dispatcher._release(claimed[:2])
    rows = {r["id"]: r for r in await pool.fetch("SELECT * FROM webhook_deliveries")}
    assert [rows[c.id]["attempts"] for c in claimed] == [0, 0, 1]
    assert [rows[c.id]["locked_by"] for c in claimed[:2]] == [None, None]
    again = await Dispatcher(pool, targets=LOOPBACK, box=TEST_BOX).claim(3)
    assert sorted(c.id for c in again) == sorted(c.id for c in claimed[:2])


async def test_a_claim_commits_without_waiting_for_the_disk_and_only_the_claim(
    pool: asyncpg.Pool,
) -> None:
    """Migration 0021: the claim's transaction alone has `synchronous_commit` off (a lost
    claim is only a delivery due again); the next statement on the connection is durable."""
    app_id = await new_app(pool)
    await new_endpoint(pool, app_id, "http://127.0.0.1:9/hook")
    assert await store_events(pool, app_id, range(1, 3)) == 2
    async with pool.acquire() as conn:
        async with conn.transaction():
            claimed = await conn.fetch(
                "SELECT id FROM claim_webhook_deliveries(16, now(), 'd', 60)"
            )
            assert len(claimed) == 2
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_successes_only_end_a_failing_endpoints_run_and_touch_no_healthy_one(
    pool: asyncpg.Pool,
) -> None:
    """The record's shortcut for batches of successes (migration 0021) still ends the run of
    failures of an endpoint that had one, and writes nothing to a healthy endpoint."""
    now = datetime.now(UTC) + timedelta(seconds=1)
    app_id = await new_app(pool)
    healthy = await new_endpoint(pool, app_id, "http://127.0.0.1:9/a")
    failing = await new_endpoint(
        pool, app_id, "http://127.0.0.1:9/b", failing_since=now - timedelta(hours=1)
    )
    assert await store_events(pool, app_id, range(1, 4)) == 6
    before = await pool.fetchval("SELECT xmin::text FROM webhook_endpoints WHERE id = $1", healthy)
    dispatcher = Dispatcher(pool, clock=lambda: now, targets=LOOPBACK, box=TEST_BOX)
    claimed = await dispatcher.claim(16)
    assert len(claimed) == 6
    recorded = await dispatcher._record_many(
        [dispatcher._outcome(c, Answer(200, 3, response="ok")) for c in claimed]
    )
    assert [r.state if r else None for r in recorded] == ["delivered"] * 6
    assert all(r is not None and r.disabled is None for r in recorded)
    rows = await pool.fetch(
        "SELECT id, first_failure_at, enabled, xmin::text FROM webhook_endpoints"
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id[failing]["first_failure_at"] is None and by_id[failing]["enabled"]
    assert by_id[healthy]["xmin"] == before  # not written
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 6


async def test_recording_leaves_the_planner_settings_as_it_found_them(pool: asyncpg.Pool) -> None:
    """The record's UPDATE is planned with only TID scans allowed (migration 0021); the
    settings are back as they were for the rest of the caller's transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        rows = await conn.fetch(
            "SELECT * FROM record_webhook_attempts('{}', '{}', '{}', '{}', '{}', '{}', '{}',"
            " '{}', '{}', '{}', '{}', 'd', interval '5 days')"
        )
        assert rows == []
        settings = [
            await conn.fetchval(f"SHOW {name}")
            for name in ("enable_seqscan", "enable_indexscan", "enable_bitmapscan")
        ]
        assert settings == ["on", "on", "off"]

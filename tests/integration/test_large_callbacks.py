"""Large Mailjet callback bodies: stored and applied a chunk at a time, without exhausting
PostgreSQL's lock table, while the API keeps answering everyone else."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import asyncpg
import orjson
import pytest

from mailer.simulator.server import SimulatorServer
from mailer.tracking.intake import store_callback
from tests.integration.harness import Service
from tests.integration.tracking_helpers import (
    AUTH,
    T0,
    email,
    mj_event,
    sent_messages,
)

pytestmark = pytest.mark.slow


async def _post(service: Service, body: bytes) -> tuple[int, Any]:
    """POST a large callback body (streamed, as aiohttp wants large bodies)."""
    headers = {"Content-Type": "application/json", "Authorization": AUTH}
    data = io.BytesIO(body)
    async with service.http.post(service.url + "/events", data=data, headers=headers) as r:
        return r.status, await r.json()


async def test_one_post_of_100000_events_about_distinct_messages_is_stored(
    service: Service,
) -> None:
    # Messages Mailer has not recorded (yet): every event waits, unlinked, under its own
    # MessageID bucket lock. In one transaction that was 100,000 locks: "out of shared
    # memory ... max_locks_per_transaction", a 503 on every retry, for a day.
    events = [
        {"event": "sent", "time": T0, "MessageID": 10**17 + i, "email": f"r{i}@example.org"}
        for i in range(100_000)
    ]
    status, answer = await _post(service, orjson.dumps(events))
    assert status == 200, answer
    assert answer == {"received": 100_000, "stored": 100_000, "linked": 0}
    conn = await asyncpg.connect(service.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events") == 100_000
        assert await conn.fetchval("SELECT count(*) FROM event_posts") == 1
    finally:
        await conn.close()
    # Posted again (Mailjet's retry), nothing is stored twice.
    status, again = await _post(service, orjson.dumps(events))
    assert status == 200 and again["stored"] == 0


async def test_a_body_in_chunks_is_applied_like_one_transaction(
    service: Service, simulator: SimulatorServer, pool: asyncpg.Pool
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email("a@example.org", "b@example.org"))
    a, b = await sent_messages(service, simulator, key, job_id)
    events = [
        mj_event("sent", a),
        mj_event("sent", b),
        mj_event("open", a, at=T0 + 5),
        mj_event("sent", a),  # repeated within the body, in another chunk
        mj_event("click", a, at=T0 + 9, url="https://shop.example/x"),
        mj_event("bounce", b, at=T0 + 3),
        mj_event("open", a, at=T0 + 5),  # repeated again
    ]
    result = await store_callback(pool, orjson.dumps(events), chunk=2)
    assert (result.received, result.stored, result.linked) == (7, 5, 5)
    doc = await service.status(key, job_id)
    assert [r["status"] for r in doc["recipients"]] == ["clicked", "bounced"]
    assert await pool.fetchval("SELECT count(*) FROM event_posts") == 1
    _, listed = await service.request("GET", "/suppressions", key)
    assert [s["email"] for s in listed["suppressions"]] == ["b@example.org"]


async def test_the_api_answers_others_while_a_huge_body_is_parsed(service: Service) -> None:
    # A million items (the same object: one event is stored), ~17 MB: parsing them all at
    # once held up every request of every app for seconds.
    body = b"[" + b",".join([b'{"event":"open"}'] * 1_000_000) + b"]"
    assert (await service.request("GET", "/openapi.json", None))[0] == 200
    posting = asyncio.create_task(_post(service, body))
    await asyncio.sleep(0.5)  # the body is in, its items are being parsed
    waits = []
    for _ in range(3):
        started = time.monotonic()
        assert (await service.request("GET", "/openapi.json", None))[0] == 200
        waits.append(time.monotonic() - started)
        await asyncio.sleep(0.2)
    assert not posting.done(), "the body was handled before the other requests were made"
    status, answer = await posting
    assert status == 200 and answer == {"received": 1_000_000, "stored": 1, "linked": 0}
    assert max(waits) < 1.0, waits

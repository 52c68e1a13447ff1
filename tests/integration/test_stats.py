"""`GET /stats` from the hourly rollups that the send and event paths keep: real service,
real PostgreSQL, the simulator as Mailjet, Mailjet-shaped events posted to /events."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.apps import store
from mailer.db.pool import connect, create_pool
from mailer.delivery import send
from mailer.delivery import store as delivery_store
from mailer.delivery.batching import AcceptedRecipient
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.simulator.server import SimulatorServer
from mailer.stats.rollups import Folder
from tests.integration.harness import Service
from tests.integration.tracking_helpers import email, mj_event, post_events, sent_messages

NOW = int(time.time()) - 120  # events of two minutes ago: inside today and this hour
# Mail's full User-Agent is a person; the bare `Mozilla/5.0` is Apple's privacy proxy.
PERSON = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


async def stats(service: Service, key: str, query: str = "") -> dict[str, Any]:
    status, body = await service.request("GET", f"/stats?{query}", key)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def test_stats_count_each_thing_once_per_recipient(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    first = await service.queue(key, email("a@example.org", "b@example.org", "c@example.org"))
    second = await service.queue(key, email("d@example.org"))
    a, b, c = await sent_messages(service, simulator, key, first)
    [d] = await sent_messages(service, simulator, key, second)
    events = [
        mj_event("sent", a, at=NOW),
        mj_event("sent", b, at=NOW),
        mj_event("sent", c, at=NOW),
        mj_event("open", a, at=NOW + 1, agent="Mozilla/5.0"),  # a machine, then a person
        mj_event("open", a, at=NOW + 5, agent=PERSON),
        mj_event("open", a, at=NOW + 9, agent=PERSON),
        mj_event("open", b, at=NOW + 2, agent=PERSON),
        mj_event("click", b, at=NOW + 3, agent=PERSON),
        mj_event("click", b, at=NOW + 4, agent=PERSON, url="https://x.test/2"),
        mj_event("bounce", c, at=NOW + 1, hard_bounce=False),
        mj_event("bounce", d, at=NOW + 1),
        mj_event("spam", a, at=NOW + 20),
        mj_event("unsub", b, at=NOW + 20),
    ]
    # In two posts, the second repeating the first (Mailjet posts again after a timeout).
    assert (await post_events(service, events[:7]))[0] == 200
    assert (await post_events(service, events))[0] == 200
    answer = await stats(service, key)
    day = answer["total"]
    assert (day["accepted"], day["sent"], day["delivered"]) == (4, 4, 3)
    assert (day["bounced_hard"], day["bounced_soft"]) == (1, 1)
    assert (day["complained"], day["unsubscribed"], day["blocked"]) == (1, 1, 0)
    opened = [day[f"opened{s}"] for s in ("", "_unique", "_human", "_human_unique")]
    clicked = [day[f"clicked{s}"] for s in ("", "_unique", "_human", "_human_unique")]
    assert (opened, clicked) == ([4, 2, 3, 2], [2, 1, 2, 1])
    rates = day["rates"]
    assert rates["delivered"] == 0.75 and rates["bounced"] == 0.5
    assert rates["opened"] == round(2 / 3, 4) and rates["clicked"] == round(1 / 3, 4)
    # Seven days by the day, today last.
    assert len(answer["periods"]) == 7
    assert answer["periods"][-1]["sent"] == 4 and answer["periods"][0]["sent"] == 0
    by_hour = await stats(service, key, "granularity=hour")
    assert len(by_hour["periods"]) == 24
    assert sum(p["delivered"] for p in by_hour["periods"]) == 3
    # Another app sees none of it.
    other = await service.create_app("other")
    assert (await stats(service, other))["total"]["accepted"] == 0


async def test_folding_closed_hours_keeps_every_count(service: Service) -> None:
    key = await service.create_app()
    conn = await connect(service.dsn)
    try:
        app_id = await conn.fetchval("SELECT id FROM apps")
        old = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        await conn.executemany(
            "INSERT INTO stats_hourly (app_id, hour, shard, accepted, sent)"
            " VALUES ($1, $2, $3, $4, 1)",
            [(app_id, old, shard, shard) for shard in (101, 102, 103)]
            + [(app_id, old - timedelta(hours=1), 104, 5)],
        )
        before = await stats(service, key, "granularity=hour")
        pool = await create_pool(service.dsn, min_size=1, max_size=2)
        try:
            assert await Folder(pool).fold_once() == 2
        finally:
            await pool.close()
        rows = await conn.fetch("SELECT shard, accepted, sent FROM stats_hourly ORDER BY hour")
        assert [tuple(r) for r in rows] == [(0, 5, 1), (0, 306, 3)]
    finally:
        await conn.close()
    assert await stats(service, key, "granularity=hour") == before


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("granularity=week", 422, "invalid_request"),
        ("from=yesterday", 422, "invalid_request"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "invalid_range"),
        (
            "granularity=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            400,
            "invalid_range",
        ),
        ("from=0001-01-01T00:00:00%2B01:00", 400, "invalid_range"),
        ("to=9999-12-31T23:30:00Z", 400, "invalid_range"),
    ],
)
async def test_bad_stats_queries_are_refused(
    service: Service, query: str, status: int, error: str
) -> None:
    key = await service.create_app()
    answered, body = await service.request("GET", f"/stats?{query}", key)
    assert (answered, body["error"]) == (status, error), body


async def test_stats_need_the_read_scope(service: Service) -> None:
    await service.create_app()
    conn = await connect(service.dsn)
    try:
        app = await store.find_app(conn, "shop")
        assert app is not None
        send_only = await store.create_key(conn, app.id, ["send"])
    finally:
        await conn.close()
    status, body = await service.request("GET", "/stats", send_only.plaintext)
    assert status == 403 and body["scope"] == "read"
    await asyncio.sleep(0)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_unique_opens_and_clicks_count_each_recipient_once_in_any_order(
    service: Service, simulator: SimulatorServer, data: st.DataObject
) -> None:
    key = await service.create_app(f"app{next(_apps)}")
    job = await service.queue(key, email("a@example.org", "b@example.org", "c@example.org"))
    messages = await sent_messages(service, simulator, key, job)
    # Each recipient opens and clicks 0-3 times, as a person or a machine.
    events: list[dict[str, Any]] = []
    for n, message in enumerate(messages):
        for kind in ("open", "click"):
            for k in range(data.draw(st.integers(0, 3))):
                agent = PERSON if data.draw(st.booleans()) else "Mozilla/5.0"
                event = mj_event(kind, message, at=NOW + 10 * n + k, agent=agent)
                if kind == "click":
                    event["url"] = f"https://x.test/{k}"
                events.append(event)
    # Posted shuffled, in chunks, some of them twice (Mailjet retries).
    posted = data.draw(st.permutations(events)) if events else []
    posted += data.draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    size = data.draw(st.integers(1, 4))
    for start in range(0, len(posted), size):
        assert (await post_events(service, posted[start : start + size]))[0] == 200
    total = (await stats(service, key))["total"]
    for kind, word in (("open", "opened"), ("click", "clicked")):
        mine = [e for e in events if e["event"] == kind]
        human = [e for e in mine if e["agent"] == PERSON]
        assert [total[f"{word}{s}"] for s in ("", "_unique", "_human", "_human_unique")] == [
            len(mine),
            len({e["email"] for e in mine}),
            len(human),
            len({e["email"] for e in human}),
        ]


_apps = itertools.count()


async def test_sent_is_counted_under_the_app_named_or_looked_up(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        app, _ = await store.create_app(conn, "shop")
        email_request = EmailRequest.model_validate(email("a@example.org", "b@example.org"))
        await insert_jobs(conn, [new_job(app.id, email_request) for _ in range(2)])
    first, second = await delivery_store.claim(pool, limit=2, lease_seconds=60, worker_id="t")
    named = [AcceptedRecipient(first.id, p, 10 + p, None, app.id) for p in (0, 1)]
    unnamed = [AcceptedRecipient(second.id, p, 20 + p, None) for p in (0, 1)]
    outcome = send.Outcome(
        accepted=named + unnamed, finished=[send.Finish(j.id, "done") for j in (first, second)]
    )
    await delivery_store.record(pool, outcome, worker_id="t")
    async with pool.acquire() as conn:
        counts = await conn.fetchrow(
            "SELECT sum(accepted) AS accepted, sum(sent) AS sent FROM stats_hourly"
            " WHERE app_id = $1",
            app.id,
        )
    assert counts is not None and (counts["accepted"], counts["sent"]) == (4, 4)

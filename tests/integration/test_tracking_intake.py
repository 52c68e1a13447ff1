"""POST /events end to end: real HTTP, real PostgreSQL, MessageIDs from real (simulated) sends."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from mailer.api.app import create_app
from mailer.db.pool import connect, create_pool
from mailer.delivery.retry import RetryPolicy
from mailer.simulator.faults import FaultConfig
from mailer.simulator.server import SimulatorServer
from tests.conftest import with_database
from tests.integration.harness import Service, serve_api
from tests.integration.tracking_helpers import (
    EVENTS_PASSWORD,
    EVENTS_USER,
    T0,
    basic_auth,
    email,
    feed_until,
    mj_event,
    post_events,
    sent_messages,
    tracking_service,
    tracking_settings,
)


async def _db(service: Service, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(service.dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_every_event_type_grouped_and_single(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    to = [f"r{i}@example.org" for i in range(8)]
    job_id = await service.queue(key, email(*to))
    m = await sent_messages(service, simulator, key, job_id)
    scripts: list[list[dict[str, Any]]] = [
        [mj_event("sent", m[0])],
        [mj_event("sent", m[1]), mj_event("open", m[1], at=T0 + 5)],
        [
            mj_event("sent", m[2]),
            mj_event("open", m[2], at=T0 + 5),
            mj_event("click", m[2], at=T0 + 9, url="https://shop.example/order/42"),
        ],
        [mj_event("bounce", m[3])],
        [mj_event("bounce", m[4], hard_bounce=False, error="greylisted")],
        [mj_event("blocked", m[5])],
        [mj_event("sent", m[6]), mj_event("spam", m[6], at=T0 + 60)],
        [
            mj_event("sent", m[7]),
            mj_event("open", m[7], at=T0 + 5),
            mj_event("unsub", m[7], at=T0 + 7),
        ],
    ]
    # Recipients 0-3 one event per POST (callback Version 1), 4-7 grouped (Version 2).
    for events in scripts[:4]:
        for event in events:
            status, body = await post_events(service, event)
            assert status == 200, body
            assert body == {"received": 1, "stored": 1, "linked": 1}
    grouped = [e for events in scripts[4:] for e in events]
    status, body = await post_events(service, grouped)
    assert (status, body["stored"], body["linked"]) == (200, len(grouped), len(grouped))
    assert await post_events(service, []) == (200, {"received": 0, "stored": 0, "linked": 0})

    doc = await service.status(key, job_id)
    statuses = [r["status"] for r in doc["recipients"]]
    assert statuses == [
        "sent",
        "opened",
        "clicked",
        "bounced",
        "deferred",
        "blocked",
        "spam",
        "unsubscribed",
    ]
    assert doc["status"] == "deferred"  # the least advanced recipient that went out
    clicked = doc["recipients"][2]["events"]
    assert [e["type"] for e in clicked] == ["email.sent", "email.opened", "email.clicked"]
    assert clicked[2]["url"] == "https://shop.example/order/42"
    assert clicked[2]["metadata"] == {"order": "42", "tags": ["a", "b"]}
    assert clicked[2]["message_id"] == str(m[2].message_id)
    assert clicked[0]["time"].startswith("2025-06-15T15:06:40")
    bounce = doc["recipients"][3]["events"][0]
    assert (bounce["hard_bounce"], bounce["error"], bounce["error_related_to"]) == (
        True,
        "user unknown",
        "recipient",
    )
    assert bounce["comment"] == "550 5.1.1 no such user"
    assert doc["recipients"][4]["events"][0]["error"] == "greylisted"
    assert doc["recipients"][5]["events"][0]["error"] == "preblocked"
    assert doc["recipients"][6]["events"][1]["source"] == "JMRPP"
    assert doc["recipients"][7]["events"][2]["agent"] == "List-Unsubscribe"

    status, page = await service.request("GET", "/suppressions", key)
    assert status == 200
    reasons = {s["email"]: s["reason"] for s in page["suppressions"]}
    assert reasons == {
        "r3@example.org": "hard_bounce",
        "r5@example.org": "preblocked",
        "r6@example.org": "spam_complaint",
        "r7@example.org": "unsubscribed",
    }
    by_email = {s["email"]: s for s in page["suppressions"]}
    bounce_id = doc["recipients"][3]["events"][0]["id"]
    assert by_email["r3@example.org"]["event_id"] == bounce_id

    feed = await feed_until(service, key, 14)
    assert len(feed) == 14
    assert {e["job_id"] for e in feed} == {job_id}
    assert all(e["metadata"] == {"order": "42", "tags": ["a", "b"]} for e in feed)


async def test_redelivery_is_stored_once_and_new_opens_are_kept(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email())
    [m] = await sent_messages(service, simulator, key, job_id)
    batch = [mj_event("sent", m), mj_event("open", m, at=T0 + 10)]
    assert (await post_events(service, batch))[1]["stored"] == 2
    # Mailjet retries the whole POST, maybe regrouped, maybe with keys in another order.
    assert (await post_events(service, batch))[1]["stored"] == 0
    reordered = orjson.dumps(dict(reversed(list(batch[1].items()))))
    status, body = await post_events(service, reordered, raw=True)
    assert (status, body["stored"]) == (200, 0)
    # Repeated inside one body: stored once.
    assert (await post_events(service, [batch[0], batch[0]]))[1]["stored"] == 0
    # A second open (later, another device) and a repeat click on another link are new.
    more = [
        mj_event("open", m, at=T0 + 3600, agent="iPhone"),
        mj_event("click", m, at=T0 + 3700, url="https://a.test/1"),
        mj_event("click", m, at=T0 + 3700, url="https://a.test/2"),
    ]
    assert (await post_events(service, more))[1]["stored"] == 3
    doc = await service.status(key, job_id)
    events = doc["recipients"][0]["events"]
    assert [e["mailjet_event"] for e in events] == ["sent", "open", "open", "click", "click"]
    assert doc["recipients"][0]["status"] == "clicked"
    assert len(await feed_until(service, key, 5)) == 5


async def test_a_body_stored_before_is_kept_again_and_a_partly_new_one_applied(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email("a@example.org", "b@example.org"))
    m = await sent_messages(service, simulator, key, job_id)
    first = orjson.dumps([mj_event("sent", m[0]), mj_event("sent", m[1]), 42])
    answer = {"received": 3, "stored": 3, "linked": 2}
    assert await post_events(service, first, raw=True) == (200, answer)
    # Every event stored already: the body is kept as received, nothing else changes.
    answer = {"received": 3, "stored": 0, "linked": 0}
    assert await post_events(service, first, raw=True) == (200, answer)
    posts = await _db(service, "SELECT body, event_count FROM event_posts ORDER BY id")
    assert [(bytes(p["body"]), p["event_count"]) for p in posts] == [(first, 3), (first, 3)]
    assert len(await _db(service, "SELECT id FROM events")) == 3
    # One new event among stored ones: that one is stored, linked and applied.
    mixed = [mj_event("sent", m[0]), mj_event("open", m[1], at=T0 + 10)]
    answer = {"received": 2, "stored": 1, "linked": 1}
    assert await post_events(service, mixed) == (200, answer)
    doc = await service.status(key, job_id)
    assert [r["status"] for r in doc["recipients"]] == ["sent", "opened"]
    assert len(await _db(service, "SELECT id FROM event_posts")) == 3


@pytest.mark.parametrize("seed", range(4))
async def test_any_arrival_order_gives_the_same_statuses(
    service: Service, simulator: SimulatorServer, seed: int
) -> None:
    import random

    key = await service.create_app()
    to = [f"p{i}@example.org" for i in range(4)]
    job_id = await service.queue(key, email(*to))
    m = await sent_messages(service, simulator, key, job_id)
    events = [
        mj_event("bounce", m[0], hard_bounce=False, error="greylisted"),
        mj_event("sent", m[0], at=T0 + 30),
        mj_event("open", m[0], at=T0 + 40),
        mj_event("sent", m[1]),
        mj_event("open", m[1], at=T0 + 1),
        mj_event("click", m[1], at=T0 + 2),
        mj_event("spam", m[1], at=T0 + 3),
        mj_event("sent", m[2]),
        mj_event("bounce", m[2], at=T0 + 1),
        mj_event("open", m[2], at=T0 + 2),
        mj_event("open", m[3]),
        mj_event("sent", m[3], at=T0 + 1),
    ]
    rng = random.Random(seed)
    shuffled = events[:]
    rng.shuffle(shuffled)
    # Some single, some grouped, some duplicated, in the shuffled order.
    chunks: list[Any] = []
    rest = shuffled[:]
    while rest:
        size = rng.randint(1, 3)
        part, rest = rest[:size], rest[size:]
        chunks.append(part[0] if size == 1 else part)
        if rng.random() < 0.3:
            chunks.append(part)
    for chunk in chunks:
        assert (await post_events(service, chunk))[0] == 200

    doc = await service.status(key, job_id)
    assert [r["status"] for r in doc["recipients"]] == ["opened", "spam", "bounced", "opened"]
    assert sum(len(r["events"]) for r in doc["recipients"]) == len(events)


async def test_event_before_the_send_result_is_linked_when_it_arrives(
    db_dsn: str, simulator: SimulatorServer
) -> None:
    # The first send is accepted by Mailjet but its answer is lost; our retry comes later,
    # looks the job up by CustomID and records the MessageID only then.
    slow_retry = RetryPolicy(base_delay_s=1.5, max_delay_s=1.5, max_attempts=5)
    async with tracking_service(db_dsn, simulator, policy=slow_retry) as service:
        key = await service.create_app()
        simulator.set_faults(FaultConfig(lost_answer_rate=1.0))
        job_id = await service.queue(key, email("a@example.org", "b@example.org"))
        for _ in range(200):
            if simulator.state.count_for(job_id):
                break
            await asyncio.sleep(0.01)
        simulator.set_faults(FaultConfig())
        a, b = sorted(simulator.state.messages_for(job_id), key=lambda x: x.email)
        # a: the event carries our CustomID: linked at once, although no MessageID is known.
        # b: no CustomID, only the MessageID we have not recorded yet: it must wait.
        status, body = await post_events(
            service, [mj_event("sent", a), mj_event("open", b, custom_id=False)]
        )
        assert (status, body["stored"], body["linked"]) == (200, 2, 1)
        doc = await service.status(key, job_id)
        assert doc["status"] in ("queued", "sending")
        assert [r["status"] for r in doc["recipients"]] == ["sent", "queued"]
        assert doc["recipients"][0]["message_id"] == str(a.message_id)  # learnt from the event
        pending = await _db(
            service, "SELECT job_id FROM events WHERE message_id = $1", b.message_id
        )
        assert [r["job_id"] for r in pending] == [None]

        done = await service.wait_for(key, job_id, {"sent", "opened"}, timeout=20)
        assert [r["status"] for r in done["recipients"]] == ["sent", "opened"]
        assert done["recipients"][1]["events"][0]["type"] == "email.opened"
        assert done["recipients"][1]["message_id"] == str(b.message_id)
        assert simulator.state.count_for(job_id) == 1  # looked up, not sent twice
        feed = await feed_until(service, key, 2)
        assert sorted(e["type"] for e in feed) == ["email.opened", "email.sent"]


async def test_unknown_message_ids_and_test_events_are_kept_unlinked(service: Service) -> None:
    key = await service.create_app()
    unknown = {
        "event": "open",
        "time": T0,
        "MessageID": 9223372036854775807,
        "email": "Someone@Elsewhere.test",
        "CustomID": "not-ours",
        "brand_new_field": {"nested": [1, 2, 3]},
    }
    test_event = {
        "event": "bounce",
        "time": T0,
        "MessageID": 0,
        "email": "",
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "",
        "CustomID": "",
        "Payload": "",
        "blocked": "",
        "hard_bounce": "",
        "error_related_to": "",
        "error": "",
    }
    odd = [{"event": "typofix", "MessageID": 1}, 42, "text", None]
    status, body = await post_events(service, [unknown, test_event, *odd])
    assert (status, body) == (200, {"received": 6, "stored": 6, "linked": 0})
    rows = await _db(
        service,
        "SELECT message_id, email, type, is_test, job_id, app_id, raw, status "
        "FROM events ORDER BY id",
    )
    assert len(rows) == 6
    by_id = {r["message_id"]: r for r in rows if r["type"] in ("open", "bounce")}
    kept = by_id[9223372036854775807]
    assert kept["raw"]["brand_new_field"] == {"nested": [1, 2, 3]}
    assert kept["email"] == "someone@elsewhere.test" and kept["app_id"] is None
    assert by_id[0]["is_test"] is True and by_id[0]["status"] == "deferred"
    assert all(r["job_id"] is None for r in rows)
    assert await _db(service, "SELECT * FROM suppressions") == []
    assert (await service.request("GET", "/feed", key))[1]["events"] == []


async def test_credentials_and_bad_bodies(service: Service) -> None:
    empty: list[Any] = []
    assert (await post_events(service, empty, auth=None))[0] == 401
    wrong = [
        basic_auth(EVENTS_USER, "nope"),
        basic_auth("nope", EVENTS_PASSWORD),
        basic_auth(EVENTS_USER, EVENTS_PASSWORD + "x"),
        basic_auth("", ""),
        "Basic !!!",
        "Bearer mk_x",
    ]
    for auth in wrong:
        status, body = await post_events(service, empty, auth=auth)
        assert (status, body["error"]) == (401, "unauthorized")
    async with service.http.post(service.url + "/events", data=b"[]") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    status, body = await post_events(service, b"{not json", raw=True)
    assert (status, body["error"]) == (400, "invalid_body")
    assert (await post_events(service, b"17", raw=True))[0] == 400
    assert (await post_events(service, b"", raw=True))[0] == 400
    assert (await post_events(service, b"\xef\xbb\xbf[]", raw=True))[0] == 200
    assert await _db(service, "SELECT id FROM events") == []
    assert len(await _db(service, "SELECT id FROM event_posts")) == 1


async def test_database_down_answers_503_and_a_retry_succeeds(db_dsn: str, server_dsn: str) -> None:
    app = create_app(tracking_settings(), db_dsn)
    async with serve_api(app) as url, aiohttp.ClientSession() as http:
        service = Service(url, http, db_dsn)
        key = await service.create_app()
        services = app.state.services
        real_pool = services.pool
        # A pool whose database is then dropped: every connection fails.
        name = f"mailer_down_{id(app)}"
        admin = await connect(server_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            doomed = await create_pool(with_database(server_dsn, name), min_size=1, max_size=2)
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        body = [{"event": "open", "time": T0, "MessageID": 12345, "email": "x@y.test"}]
        services.pool = doomed
        try:
            status, answer = await post_events(service, body)
            assert (status, answer["error"]) == (503, "unavailable")
        finally:
            services.pool = real_pool
            doomed.terminate()
        status, answer = await post_events(service, body)
        assert (status, answer["stored"]) == (200, 1)
        assert (await service.request("GET", "/feed", key))[0] == 200


async def test_concurrent_posts_of_overlapping_events_do_not_fail(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    to = [f"c{i}@example.org" for i in range(10)]
    job_id = await service.queue(key, email(*to))
    m = await sent_messages(service, simulator, key, job_id)
    events = [
        mj_event(kind, msg, at=T0 + n)
        for n, (kind, msg) in enumerate(itertools.product(["sent", "open", "click"], m))
    ]
    # Twelve posts, each naming the same messages, in opposite orders half of the time.
    bodies = [events[i::3] + events[(i + 1) % 3 :: 3] for i in range(3)] * 4
    bodies = [b if n % 2 else b[::-1] for n, b in enumerate(bodies)]
    results = await asyncio.gather(*(post_events(service, b) for b in bodies))
    assert all(status == 200 for status, _ in results)
    assert sum(body["stored"] for _, body in results) == len(events)
    doc = await service.status(key, job_id)
    assert {r["status"] for r in doc["recipients"]} == {"clicked"}


async def test_a_privacy_proxy_open_is_a_machine_and_a_later_real_one_a_person(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email("ann@example.org"))
    [m] = await sent_messages(service, simulator, key, job_id)
    proxy = mj_event("open", m, at=T0 + 1, agent="Mozilla/5.0")  # Apple MPP on delivery
    assert (await post_events(service, [mj_event("sent", m), proxy]))[0] == 200
    doc = await service.status(key, job_id)
    [recipient] = doc["recipients"]
    assert recipient["status"] == "opened"
    opened = recipient["events"][1]
    assert (opened["machine"], opened["machine_reason"]) == (True, "apple_mail_privacy")
    assert recipient["engagement"]["opened_by"] == "machine"
    assert recipient["engagement"]["human_opens"] == 0

    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148"
    )
    assert (await post_events(service, mj_event("open", m, at=T0 + 3600, agent=iphone)))[0] == 200
    recipient = (await service.status(key, job_id))["recipients"][0]
    assert recipient["events"][2]["machine"] is False
    assert recipient["engagement"] == {
        "opens": 2,
        "human_opens": 1,
        "clicks": 0,
        "human_clicks": 0,
        "opened_by": "human",
        "clicked_by": None,
    }
    feed = await feed_until(service, key, 3)
    assert [e.get("machine") for e in feed] == [None, True, False]

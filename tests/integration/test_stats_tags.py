"""`GET /stats?tag=` and the human counts, from the rollups that the send and event paths
keep per tag (migration 0017): real service, real PostgreSQL, the simulator as Mailjet,
Mailjet-shaped events posted to /events; and 0017 on a database that has rollups already."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from mailer.apps import store
from mailer.db import migrate
from mailer.db.pool import connect
from mailer.delivery import send
from mailer.delivery import store as delivery_store
from mailer.delivery.batching import AcceptedRecipient
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.simulator.server import SimulatorServer
from mailer.stats.rollups import Counts, read_periods, total
from mailer.tracking.intake import store_body
from mailer.tracking.precedence import STATUS_RANK, RecipientStatus
from tests.integration.harness import Service
from tests.integration.tracking_helpers import email, mj_event, post_events

NOW = int(time.time()) - 120  # opens and clicks of two minutes ago: inside the last day
# Delivered half an hour before: no opening or clicking within seconds of delivery, which
# a scanner's timing could be taken for.
SENT = NOW - 1800
# Mail's full User-Agent is a person; the bare `Mozilla/5.0` is Apple's privacy proxy.
PERSON = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
APPLE_MPP = "Mozilla/5.0"
COUNTED = ("accepted", "sent", "delivered", "bounced_hard", "opened", "opened_unique")
ENGAGEMENT = [
    f"{w}{s}" for w in ("opened", "clicked") for s in ("", "_unique", "_human", "_human_unique")
]


async def stats(service: Service, key: str, query: str = "") -> dict[str, Any]:
    status, body = await service.request("GET", f"/stats?{query}", key)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def accepted_messages(
    service: Service, simulator: SimulatorServer, key: str, job_id: str
) -> list[Any]:
    """The job's recipients' messages at the simulator, once the job is accepted (generous
    timeout: CI runs on loaded cores)."""
    done = await service.wait_for(key, job_id, {"accepted"}, timeout=90)
    order = {r["email"]: i for i, r in enumerate(done["recipients"])}
    return sorted(simulator.state.messages_for(job_id), key=lambda m: order[m.email])


async def test_tagged_emails_are_counted_under_each_tag_and_the_total_is_unchanged(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    news_promo = await service.queue(
        key, email("a@example.org", "b@example.org", tags=["news", "promo"])
    )
    untagged = await service.queue(key, email("c@example.org"))
    # A batch without idempotency keys is stored with COPY: the other writer of `accepted`.
    status, batch = await service.request(
        "POST", "/queue/batch", key, json={"emails": [email("d@example.org", tags=["news"])]}
    )
    assert status == 202, batch
    news = batch["jobs"][0]["job_id"]
    a, b = await accepted_messages(service, simulator, key, news_promo)
    [c] = await accepted_messages(service, simulator, key, untagged)
    [d] = await accepted_messages(service, simulator, key, news)
    events = [
        mj_event("sent", a, at=SENT),
        mj_event("sent", b, at=SENT),
        mj_event("sent", c, at=SENT),
        mj_event("bounce", d, at=SENT),
        mj_event("open", a, at=SENT + 1, agent=APPLE_MPP),  # the proxy, then the person
        mj_event("open", a, at=NOW, agent=PERSON),
        mj_event("open", a, at=NOW + 30, agent=PERSON),
        mj_event("open", c, at=NOW + 2, agent=PERSON),
        mj_event("click", b, at=NOW + 3, agent=PERSON),
        mj_event("click", b, at=NOW + 60, agent=PERSON, url="https://x.test/2"),
    ]
    assert (await post_events(service, events))[0] == 200
    assert (await post_events(service, events[4:]))[0] == 200  # redelivered: not again

    every = (await stats(service, key))["total"]
    assert [every[k] for k in COUNTED] == [4, 4, 3, 1, 4, 2]
    assert [every[k] for k in ENGAGEMENT] == [4, 2, 3, 2, 2, 1, 2, 1]
    by_news = await stats(service, key, "tag=news")
    assert by_news["tag"] == "news"
    tagged = by_news["total"]
    assert [tagged[k] for k in COUNTED] == [3, 3, 2, 1, 3, 1]
    # a@: the proxy's open counts in `opened`, not in `opened_human`; a person's first
    # open is its unique human open.
    assert [tagged[k] for k in ENGAGEMENT] == [3, 1, 2, 1, 2, 1, 2, 1]
    assert tagged["rates"]["opened"] == 0.5 and tagged["rates"]["opened_human"] == 0.5
    assert tagged["rates"]["bounced"] == round(1 / 3, 4)
    assert tagged["rates"]["clicked_human"] == 0.5
    promo = (await stats(service, key, "tag=promo"))["total"]
    assert [promo[k] for k in COUNTED] == [2, 2, 2, 0, 3, 1]
    assert (await stats(service, key, "tag=promo&granularity=hour"))["total"] == promo
    nothing = (await stats(service, key, "tag=other"))["total"]
    assert nothing["accepted"] == 0 and nothing["rates"]["delivered"] is None
    # The '' total does not count a tagged email twice: the per-tag rows are apart.
    conn = await connect(service.dsn)
    try:
        rows = await conn.fetch(
            "SELECT tag, sum(accepted) AS n FROM stats_hourly GROUP BY tag ORDER BY tag"
        )
    finally:
        await conn.close()
    assert [(r["tag"], r["n"]) for r in rows] == [("", 4), ("news", 3), ("promo", 2)]


async def test_sent_is_counted_under_the_tags_named_or_looked_up(pool: asyncpg.Pool) -> None:
    """The worker names its claimed jobs' tags to `record_sends`; a recipient recorded
    without its app (nor tags) has both looked up by its job."""
    async with pool.acquire() as conn:
        app, _ = await store.create_app(conn, "shop")
        tagged = EmailRequest.model_validate(
            email("a@example.org", "b@example.org", tags=["news", "promo"])
        )
        await insert_jobs(conn, [new_job(app.id, tagged) for _ in range(2)])
    first, second = await delivery_store.claim(pool, limit=2, lease_seconds=60, worker_id="t")
    assert first.tags == second.tags == ("news", "promo")
    named = [AcceptedRecipient(first.id, p, 10 + p, None, app.id, first.tags) for p in (0, 1)]
    unnamed = [AcceptedRecipient(second.id, p, 20 + p, None) for p in (0, 1)]
    outcome = send.Outcome(
        accepted=named + unnamed, finished=[send.Finish(j.id, "done") for j in (first, second)]
    )
    await delivery_store.record(pool, outcome, worker_id="t")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT tag, sum(accepted) AS accepted, sum(sent) AS sent FROM stats_hourly"
            " WHERE app_id = $1 GROUP BY tag ORDER BY tag",
            app.id,
        )
    assert [tuple(r) for r in rows] == [("", 4, 4), ("news", 4, 4), ("promo", 4, 4)]


async def test_a_bad_tag_is_refused(service: Service) -> None:
    key = await service.create_app()
    for bad in ("a b", "x" * 65, ""):
        status, body = await service.request("GET", "/stats", key, params={"tag": bad})
        assert status == 422 and body["error"] == "invalid_request", body


async def test_the_feed_filters_by_tag_from_the_events_own_tags(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    tagged = await service.queue(key, email("a@example.org", tags=["news"]))
    other = await service.queue(key, email("b@example.org", tags=["promo"]))
    [a] = await accepted_messages(service, simulator, key, tagged)
    [b] = await accepted_messages(service, simulator, key, other)
    body = [mj_event("sent", a, at=SENT), mj_event("sent", b, at=SENT)]
    assert (await post_events(service, body))[0] == 200
    deadline = time.monotonic() + 60
    while True:
        status, page = await service.request("GET", "/feed?tag=news", key)
        assert status == 200, page
        if page["events"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # the feed serves what committed before every open xact
    assert [(e["email"], e["tags"]) for e in page["events"]] == [("a@example.org", ["news"])]


async def test_migration_0017_keeps_the_rollups_and_counts_old_tagged_jobs_per_tag(
    server_dsn: str,
) -> None:
    """A database before 0017 with rollups and a tagged job already sent: 0017 applies, the
    counts read the same, and an event about that job counts under its tags from then on."""
    from tests.conftest import admin_execute, with_database

    name = f"mailer_pre17_{uuid.uuid4().hex[:8]}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    conn = await connect(dsn)
    try:
        await migrate.migrate(conn, before=17)
        app_id, job_id = uuid.uuid4(), uuid.uuid4()
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        await conn.execute("INSERT INTO apps (id, name) VALUES ($1, 'old')", app_id)
        await conn.execute(
            "INSERT INTO jobs (id, app_id, message, state, tags) "
            "VALUES ($1, $2, '{\"TextPart\": \"x\"}', 'done', '{news,promo}')",
            job_id,
            app_id,
        )
        await conn.executemany(
            "INSERT INTO messages (job_id, position, app_id, kind, email, status, message_id)"
            " VALUES ($1, $2, $3, 'to', $4, 'accepted', $5)",
            [(job_id, p, app_id, f"{n}@example.org", 1000 + p) for p, n in enumerate("ab")],
        )
        # The rollups so far: yesterday (folded) and this hour (two connections' rows).
        await conn.executemany(
            "INSERT INTO stats_hourly (app_id, hour, shard, accepted, sent, delivered, opened)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (app_id, hour - timedelta(days=1), 0, 10, 9, 8, 5),
                (app_id, hour, 4242, 2, 2, 0, 0),
                (app_id, hour, 4343, 0, 0, 1, 0),
            ],
        )
        # a@ was delivered (its event linked); b@'s events come after the upgrade.
        delivered = [mj_event_for(1000, "a@example.org", job_id, "sent", SENT)]
        await conn.execute(
            "INSERT INTO event_posts (event_count, body) VALUES (1, $1)", orjson.dumps(delivered)
        )
        await conn.execute(
            "INSERT INTO events (post_id, dedupe_key, type, understood, status, rank,"
            " occurred_at, time_estimated, message_id, email, is_test, details, raw, app_id,"
            " job_id, position, feed_xid, linked_at) VALUES (1, '\\x01', 'sent', true,"
            " $3, $4, now(), false, 1000, 'a@example.org', false, '{}', '{}', $1, $2,"
            " 0, pg_current_xact_id(), now())",
            app_id,
            job_id,
            str(RecipientStatus.SENT),
            STATUS_RANK[RecipientStatus.SENT],
        )
        start, end = hour - timedelta(days=2), hour + timedelta(hours=1)
        before = total(await read_periods(conn, app_id, start, end, "hour"))

        applied = await migrate.migrate(conn)
        assert [m.version for m in applied] == [
            m.version for m in migrate.available_migrations() if m.version >= 17
        ]
        assert total(await read_periods(conn, app_id, start, end, "hour")) == before
        assert before[:4] == (12, 11, 9, 0) and before.opened == 5
        tags = await conn.fetch("SELECT tags FROM messages UNION ALL SELECT tags FROM events")
        assert [r["tags"] for r in tags] == [["news", "promo"]] * 3  # 2 messages, 1 event
        # What was counted before 0017 is in the '' rows only: the tags start empty.
        news = await read_periods(conn, app_id, start, end, "hour", tag="news")
        assert total(news) == Counts()

        # Now b@ is delivered and opened by a person: counted in '' and under each tag.
        body = orjson.dumps(
            [
                mj_event_for(1001, "b@example.org", job_id, "sent", SENT),
                mj_event_for(1001, "b@example.org", job_id, "open", NOW + 1, agent=PERSON),
            ]
        )
        async with conn.transaction():
            result = await store_body(conn, body)
        assert result.linked == 2
        after = total(await read_periods(conn, app_id, start, end, "hour"))
        assert (after.delivered, after.opened, after.opened_human_unique) == (10, 6, 1)
        for tag in ("news", "promo"):
            counts = total(await read_periods(conn, app_id, start, end, "hour", tag=tag))
            assert counts == Counts(
                delivered=1, opened=1, opened_unique=1, opened_human=1, opened_human_unique=1
            )
        status = await conn.fetchval("SELECT status FROM messages WHERE position = 1")
        assert status == str(RecipientStatus.OPENED)
    finally:
        await conn.close()
        await admin_execute(server_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')


def mj_event_for(
    message_id: int, address: str, job_id: uuid.UUID, event: str, at: int, **fields: Any
) -> dict[str, Any]:
    """A Mailjet event about one of our messages, without a simulator."""
    body: dict[str, Any] = {
        "event": event,
        "time": at,
        "MessageID": message_id,
        "Message_GUID": str(uuid.UUID(int=message_id)),
        "email": address,
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "",
        "CustomID": str(job_id),
        "Payload": "",
    }
    if event == "sent":
        body["mj_message_id"] = str(message_id)
    if event == "open":
        body.update(ip="127.0.0.1", geo="US")
    body.update(fields)
    return body

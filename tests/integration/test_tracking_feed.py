"""GET /feed (ordering guarantee, filters, cursors) and `mailer events reprocess`."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import orjson
import pytest
from click.testing import CliRunner

from mailer.db.pool import connect
from mailer.simulator.server import SimulatorServer
from mailer.tracking import reprocess as reprocess_module
from mailer.tracking.intake import store_body
from tests.integration.harness import Service
from tests.integration.tracking_helpers import (
    T0,
    email,
    feed_until,
    mj_event,
    post_events,
    read_whole_feed,
    sent_messages,
)


async def _fetch(service: Service, query: str) -> list[Any]:
    conn = await connect(service.dsn)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def _app_event_ids(service: Service) -> set[str]:
    rows = await _fetch(service, "SELECT id FROM events WHERE app_id IS NOT NULL")
    return {str(r["id"]) for r in rows}


async def test_feed_serves_every_event_once_while_events_keep_arriving(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email(*[f"f{i}@example.org" for i in range(10)]))
    messages = await sent_messages(service, simulator, key, job_id)
    posters, posts, per_post = 4, 15, 20
    total = posters * posts * per_post
    done = asyncio.Event()

    async def poster(p: int) -> None:
        for n in range(posts):
            body = [
                mj_event("open", messages[i % 10], at=T0 + n, agent=f"agent-{p}-{n}-{i}")
                for i in range(per_post)
            ]
            status, answer = await post_events(service, body)
            assert (status, answer["stored"]) == (200, per_post)

    async def reader() -> list[str]:
        seen: list[str] = []
        cursor = ""
        while True:
            status, page = await service.request("GET", f"/feed?limit=37{cursor}", key)
            assert status == 200, page
            seen += [e["id"] for e in page["events"]]
            cursor = f"&after={page['next_cursor']}"
            if not page["has_more"]:
                if done.is_set() and len(seen) >= total:
                    return seen
                await asyncio.sleep(0.005)

    async def posting() -> None:
        await asyncio.gather(*(poster(p) for p in range(posters)))
        done.set()

    seen, _ = await asyncio.wait_for(asyncio.gather(reader(), posting()), timeout=60)
    assert len(seen) == len(set(seen)) == total
    assert set(seen) == await _app_event_ids(service)


async def test_an_event_committed_late_is_not_skipped(
    service: Service, simulator: SimulatorServer
) -> None:
    """The case an identity-ordered feed gets wrong: a transaction that took its ids first
    commits last. The feed waits for it instead of moving past it."""
    key = await service.create_app()
    job_id = await service.queue(key, email("a@example.org", "b@example.org"))
    a, b = await sent_messages(service, simulator, key, job_id)
    slow = await connect(service.dsn)
    try:
        tx = slow.transaction()
        await tx.start()
        await store_body(slow, orjson.dumps([mj_event("sent", a)]))  # smaller id, uncommitted
        status, _ = await post_events(service, [mj_event("sent", b), mj_event("open", b)])
        assert status == 200
        status, page = await service.request("GET", "/feed", key)
        assert (status, page["events"], page["has_more"]) == (200, [], False)
        cursor = page["next_cursor"]
        await tx.commit()
    finally:
        await slow.close()
    events = await feed_until(service, key, 3)
    assert sorted(e["email"] for e in events) == ["a@example.org"] + ["b@example.org"] * 2
    # The late event had the smallest id: an id-ordered cursor would have skipped it.
    late = next(e for e in events if e["email"] == "a@example.org")
    assert int(late["id"]) == min(int(e["id"]) for e in events)
    status, page = await service.request("GET", f"/feed?after={cursor}", key)
    assert page["events"] == events  # the earlier cursor did not move past it either


async def test_feed_filters_cursors_and_metadata(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    first = await service.queue(key, email("one@example.org", metadata={"n": 1}))
    second = await service.queue(key, email("two@example.org", metadata=None))
    [m1] = await sent_messages(service, simulator, key, first)
    [m2] = await sent_messages(service, simulator, key, second)
    await post_events(
        service,
        [
            mj_event("sent", m1, at=T0),
            mj_event("open", m1, at=T0 + 100),
            mj_event("click", m1, at=T0 + 200, url="https://x.test/a"),
            mj_event("sent", m2, at=T0 + 300),
        ],
    )
    events = await feed_until(service, key, 4)
    assert [e["type"] for e in events] == [
        "email.sent", "email.opened", "email.clicked", "email.sent"
    ]  # fmt: skip
    assert [e["mailjet_event"] for e in events] == ["sent", "open", "click", "sent"]
    assert [e["metadata"] for e in events] == [{"n": 1}] * 3 + [None]
    assert len({e["id"] for e in events}) == 4
    # The same events, the same ids, every time.
    assert await read_whole_feed(service, key, limit=1) == events

    opens_clicks = await read_whole_feed(service, key, query="&type=email.opened,email.clicked")
    assert [e["type"] for e in opens_clicks] == ["email.opened", "email.clicked"]
    # Mailjet's words, as earlier versions took them, are still accepted.
    assert await read_whole_feed(service, key, query="&type=open,click") == opens_clicks
    repeated = await read_whole_feed(service, key, query="&type=sent&type=email.clicked")
    assert [e["type"] for e in repeated] == ["email.sent", "email.clicked", "email.sent"]
    window = await read_whole_feed(
        service, key, query="&since=2025-06-15T15:08:20Z&until=2025-06-15T15:10:01"
    )
    assert [e["type"] for e in window] == ["email.opened", "email.clicked"]

    status, body = await service.request("GET", "/feed?type=opened", key)
    assert (status, body["details"][0]["field"]) == (422, "type[0]")
    for bad in ("nope", "djEuMS4y!", "djEuLTEuMg"):
        status, body = await service.request("GET", f"/feed?after={bad}", key)
        assert (status, body["error"]) == (400, "invalid_cursor")
    assert (await service.request("GET", "/feed?limit=0", key))[0] == 422
    assert (await service.request("GET", "/feed?limit=1001", key))[0] == 422
    status, page = await service.request("GET", "/feed?limit=2", key)
    assert page["has_more"] is True
    status, rest = await service.request("GET", f"/feed?after={page['next_cursor']}", key)
    assert [e["id"] for e in page["events"] + rest["events"]] == [e["id"] for e in events]
    assert rest["has_more"] is False
    status, empty = await service.request("GET", f"/feed?after={rest['next_cursor']}", key)
    assert (empty["events"], empty["next_cursor"]) == ([], rest["next_cursor"])


async def test_message_ids_above_2_53_stay_exact(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email())
    [m] = await sent_messages(service, simulator, key, job_id)
    assert m.message_id > 2**53 + 1
    await post_events(service, [mj_event("sent", m), mj_event("open", m, at=T0 + 1)])
    [sent, opened] = await feed_until(service, key, 2)
    assert sent["message_id"] == opened["message_id"] == str(m.message_id)
    raw_body = await service.status(key, job_id)
    assert raw_body["recipients"][0]["events"][1]["message_id"] == str(m.message_id)
    stored = await _fetch(service, "SELECT DISTINCT message_id FROM events")
    assert [r["message_id"] for r in stored] == [m.message_id]


def _reprocess_cli(dsn: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from mailer import cli

    monkeypatch.setattr("mailer.logs.configure", lambda *args, **kwargs: None)
    result = CliRunner().invoke(
        cli.main,
        ["events", "reprocess", "--json"],
        env={**os.environ, "DATABASE_URL": dsn},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    counts: dict[str, Any] = orjson.loads(result.output)
    return counts


async def test_reprocess_rederives_events_statuses_and_suppressions(
    service: Service, simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email("soft@example.org", "hard@example.org"))
    soft, hard = await sent_messages(service, simulator, key, job_id)
    await post_events(
        service,
        [
            mj_event("bounce", soft, hard_bounce=False, error="greylisted"),
            mj_event("sent", soft, at=T0 + 60),
        ],
    )
    await post_events(service, mj_event("bounce", hard))
    before = await feed_until(service, key, 3)
    correct = await service.status(key, job_id)
    assert [r["status"] for r in correct["recipients"]] == ["sent", "bounced"]

    # What an older, buggy parser would have left: the soft bounce taken for a hard one
    # (status and suppression), and the hard bounce not stored at all.
    conn = await connect(service.dsn)
    try:
        soft_bounce_id = int(before[0]["id"])
        await conn.execute(
            "UPDATE events SET status = 'bounced', rank = 10, suppress_reason = 'hard_bounce',"
            " details = details || '{\"hard_bounce\": true}' WHERE id = $1",
            soft_bounce_id,
        )
        await conn.execute("UPDATE messages SET status = 'bounced' WHERE email = $1", soft.email)
        await conn.execute(
            "INSERT INTO suppressions (app_id, email, reason, event_id)"
            " SELECT app_id, email, 'hard_bounce', $2 FROM messages WHERE email = $1",
            soft.email,
            soft_bounce_id,
        )
        await conn.execute("DELETE FROM events WHERE message_id = $1", hard.message_id)
        await conn.execute("DELETE FROM suppressions WHERE email = $1", hard.email)
        await conn.execute("UPDATE messages SET status = 'accepted' WHERE email = $1", hard.email)
    finally:
        await conn.close()
    broken = await service.status(key, job_id)
    assert [r["status"] for r in broken["recipients"]] == ["bounced", "accepted"]

    counts = await asyncio.to_thread(_reprocess_cli, service.dsn, monkeypatch)
    assert counts["posts"] == 2 and counts["events"] == 3
    assert (counts["new_events"], counts["changed_events"]) == (1, 1)
    assert counts["suppressions_removed"] == 1

    fixed = await service.status(key, job_id)
    assert [r["status"] for r in fixed["recipients"]] == ["sent", "bounced"]
    assert fixed["recipients"][0]["events"][0]["hard_bounce"] is False
    _, page = await service.request("GET", "/suppressions", key)
    assert [(s["email"], s["reason"]) for s in page["suppressions"]] == [
        ("hard@example.org", "hard_bounce")
    ]
    after = await feed_until(service, key, 3)
    assert [e["id"] for e in after[:2]] == [e["id"] for e in before[:2]]  # ids and order kept
    assert after[2]["mailjet_event"] == "bounce" and after[2]["id"] not in {e["id"] for e in before}

    again = await asyncio.to_thread(_reprocess_cli, service.dsn, monkeypatch)
    assert (again["posts"], again["events"]) == (2, 3)
    assert all(v == 0 for k, v in again.items() if k not in ("posts", "events")), again
    assert await read_whole_feed(service, key) == after
    assert (await service.status(key, job_id))["recipients"] == fixed["recipients"]


async def test_a_reprocess_batch_that_loses_a_deadlock_runs_again_and_counts_once(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = orjson.dumps([{"event": "open", "time": T0, "MessageID": 123, "email": "a@b.example"}])
    async with pool.acquire() as conn, conn.transaction():
        await store_body(conn, body)
    await pool.execute("DELETE FROM events")  # reprocessing stores it again

    # The batch's transaction does its work, then PostgreSQL aborts it, once.
    real = reprocess_module._reprocess_post
    aborted = False

    async def aborted_once(conn: Any, post: Any, report: Any, *args: Any) -> None:
        nonlocal aborted
        await real(conn, post, report, *args)
        if not aborted:
            aborted = True
            raise asyncpg.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(reprocess_module, "_reprocess_post", aborted_once)
    report = await reprocess_module.reprocess(pool)
    assert aborted
    assert (report.posts, report.events, report.new_events) == (1, 1, 1)
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_reprocess_lifts_suppressions_older_versions_made_from_domain_bounces(
    service: Service, simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email("kept@example.org"))
    [m] = await sent_messages(service, simulator, key, job_id)
    bounce = mj_event("bounce", m, error_related_to="domain", error="no mail host")
    await post_events(service, bounce)
    [stored] = await feed_until(service, key, 1)
    # What a version that suppressed on every hard bounce left behind.
    conn = await connect(service.dsn)
    try:
        await conn.execute(
            "UPDATE events SET suppress_reason = 'hard_bounce' WHERE id = $1", int(stored["id"])
        )
        await conn.execute(
            "INSERT INTO suppressions (app_id, email, reason, event_id)"
            " SELECT app_id, email, 'hard_bounce', $2 FROM messages WHERE email = $1",
            m.email,
            int(stored["id"]),
        )
    finally:
        await conn.close()
    counts = await asyncio.to_thread(_reprocess_cli, service.dsn, monkeypatch)
    assert counts["suppressions_removed"] == 1
    _, page = await service.request("GET", "/suppressions", key)
    assert page["suppressions"] == []
    assert (await service.status(key, job_id))["recipients"][0]["status"] == "bounced"
    # The address's history says what happened, and why.
    _, history = await service.request("GET", f"/suppressions/{m.email}/history", key)
    assert [(c["action"], c["actor"]) for c in history["history"]] == [
        ("suppressed", "event"),
        ("reactivated", "reprocess"),
    ]
    assert history["history"][1]["reason"].startswith("reprocessed")

"""Erasure: after a full journey (sent, events, webhooks, suppression), `mailer erase`
leaves no trace of the address in any text, JSON or binary column of any table, while its
suppression (a keyed hash) still blocks sending to it and others' data stays."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from mailer.lifecycle.erasure import without_address
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import TEST_SECRET_KEY, Service
from tests.integration.tracking_helpers import (
    email,
    feed_until,
    mj_event,
    post_events,
    sent_messages,
    tracking_service,
)
from tests.integration.webhook_receiver import Receiver

ANN = "ann@example.org"
SEARCHED = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    async with tracking_service(db_dsn, simulator) as svc:
        yield svc


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def columns_naming(pool: asyncpg.Pool, needle: str) -> list[str]:
    """Every `table.column` (text, JSON, bytea or array, of every table) holding `needle`."""
    columns = await pool.fetch(
        """SELECT c.table_name, c.column_name, c.data_type
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
           WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             AND c.data_type = ANY($1::text[])""",
        list(SEARCHED),
    )
    assert len(columns) > 20  # the search covers the schema, not a few columns
    found = []
    for table, column, kind in columns:
        text = f"encode(\"{column}\", 'escape')" if kind == "bytea" else f'"{column}"::text'
        hits = await pool.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE strpos(lower({text}), $1) > 0', needle
        )
        if hits:
            found.append(f"{table}.{column}")
    return found


async def journey(service: Service, simulator: SimulatorServer, key: str, to: str) -> str:
    """An email to `to` sent, opened, clicked, then hard-bounced (suppressed)."""
    job_id = await service.queue(key, email(to, headers={"Reply-To": to}))
    [message] = await sent_messages(service, simulator, key, job_id)
    events = [
        mj_event(e, message, at=1_750_000_000 + i)
        for i, e in enumerate(("sent", "open", "click", "bounce"))
    ]
    status, _ = await post_events(service, events)
    assert status == 200
    return job_id


async def erase(dsn: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": dsn, "MAILER_SECRET_KEY": TEST_SECRET_KEY}
    command = [sys.executable, "-m", "mailer.cli", "erase", *args, "--json"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


async def test_erase_after_a_full_journey_leaves_no_trace_and_keeps_suppressing(
    service: Service, simulator: SimulatorServer, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    key = await service.create_app()
    status, _ = await service.request("POST", "/webhooks", key, json={"url": receiver.url})
    assert status == 201
    status, _ = await service.request("POST", "/suppressions", key, json={"email": ANN.upper()})
    assert status == 201
    assert (await service.request("DELETE", f"/suppressions/{ANN}?reason=test", key))[0] == 204
    ann_job = await journey(service, simulator, key, ANN)
    bob_job = await journey(service, simulator, key, "bob@example.org")
    await feed_until(service, key, 8)
    await receiver.wait_for(8, timeout=10)
    assert any(ANN in r.body.decode() for r in receiver.received)
    assert len(await columns_naming(pool, ANN)) >= 6  # the journey did leave traces

    erased = await erase(service.dsn, ANN.title())
    assert erased["jobs"] == 1 and erased["events"] == 4 and erased["suppressions"] == 1
    assert erased["webhook_deliveries"] >= 4 and erased["callback_entries"] == 4

    assert await columns_naming(pool, ANN) == []
    assert (await service.request("GET", f"/status/{ann_job}", key))[0] == 404
    bob = await service.status(key, bob_job)
    assert bob["status"] == "bounced"
    assert [e["mailjet_event"] for e in await feed_until(service, key, 4)] == [
        "sent",
        "open",
        "click",
        "bounce",
    ]
    # The suppression outlives the address: a new email to it is not sent.
    again = await service.queue(key, email(ANN))
    assert (await service.wait_for(key, again))["status"] == "suppressed"
    assert simulator.state.messages_for(again) == []
    # The app may lift it like any other, by the address.
    assert (await service.request("DELETE", f"/suppressions/{ANN}?reason=test", key))[0] == 204
    assert (await service.request("DELETE", f"/suppressions/{ANN}?reason=test", key))[0] == 404
    lifted = await service.queue(key, email(ANN))
    assert (await service.wait_for(key, lifted))["status"] == "accepted"
    await service.request("POST", "/suppressions", key, json={"email": ANN})
    await erase(service.dsn, ANN)
    status, page = await service.request("GET", "/audit", key)
    by_hand = [e for e in page["entries"] if e["action"].startswith("suppression.")]
    assert {e["target"] for e in by_hand} == {"erased address"} and len(by_hand) == 4
    first, _ = [e for e in await audit_log(pool) if e["action"] == "erasure"]
    assert first["actor"].startswith("cli:") and first["app_id"] is None
    assert first["details"]["jobs"] == 1
    assert await columns_naming(pool, ANN) == []


async def audit_log(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch("SELECT * FROM audit_log ORDER BY id")]


async def test_erase_for_one_app_leaves_the_others(
    service: Service, simulator: SimulatorServer, pool: asyncpg.Pool
) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    shop_job = await service.queue(shop, email(ANN))
    blog_job = await service.queue(blog, email(ANN))
    await service.wait_for(shop, shop_job, {"accepted"})
    await service.wait_for(blog, blog_job, {"accepted"})
    erased = await erase(service.dsn, ANN, "--app", "shop")
    assert erased["jobs"] == 1
    assert (await service.request("GET", f"/status/{shop_job}", shop))[0] == 404
    assert (await service.status(blog, blog_job))["recipients"][0]["email"] == ANN


def test_a_callback_body_keeps_the_others_entries() -> None:
    body = orjson.dumps([{"email": "Ann@Example.org", "event": "open"}, {"email": "b@x.org"}])
    kept, dropped = without_address(body, ANN)
    assert dropped == 1 and kept is not None
    assert orjson.loads(kept[0]) == [{"email": "b@x.org"}] and kept[1] == 1
    assert without_address(orjson.dumps({"email": ANN}), ANN) == (None, 1)
    assert without_address(b"not json " + ANN.encode(), ANN) == (None, 1)

"""Tags over real HTTP against PostgreSQL: validated at the field, stored with the job, and
shown in /status, on feed events and in webhook payloads; the feed filters by them."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service
from tests.integration.tracking_helpers import (
    email,
    feed_until,
    mj_event,
    post_events,
    sent_messages,
)


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        (["ok", "not ok"], "tags[1]"),
        (["é"], "tags[0]"),
        (["x" * 65], "tags[0]"),
        ([""], "tags[0]"),
        ([f"t{i}" for i in range(11)], "tags"),
        ("welcome", "tags"),
    ],
)
async def test_bad_tags_answer_422_at_the_field(service: Service, tags: Any, field: str) -> None:
    key = await service.create_app()
    status, body = await service.request("POST", "/queue", key, json=email(tags=tags))
    assert status == 422, body
    assert [d["field"] for d in body["details"]] == [field]
    batch = {"emails": [email(), email(tags=tags)]}
    status, body = await service.request("POST", "/queue/batch", key, json=batch)
    assert status == 422, body
    assert [d["field"] for d in body["details"]] == [f"emails[1].{field}"]


async def test_tags_reach_status_feed_and_webhooks(
    service: Service, simulator: SimulatorServer, pool: asyncpg.Pool
) -> None:
    key = await service.create_app()
    status, _ = await service.request(
        "POST", "/webhooks", key, json={"url": "http://127.0.0.1:9/hook"}
    )
    assert status == 201
    tags = ["welcome", "v2:en", "welcome"]
    tagged = await service.queue(key, email(tags=tags))
    status, batch = await service.request(
        "POST", "/queue/batch", key, json={"emails": [email("bob@example.org"), email(tags=["b"])]}
    )
    assert status == 202, batch
    untagged, batch_tagged = (j["job_id"] for j in batch["jobs"])

    document = await service.status(key, tagged)
    assert document["tags"] == ["welcome", "v2:en"]  # a repeat kept once, order kept
    assert (await service.status(key, untagged))["tags"] == []
    assert (await service.status(key, batch_tagged))["tags"] == ["b"]

    for job_id in (tagged, untagged):
        [message] = await sent_messages(service, simulator, key, job_id)
        status, _ = await post_events(service, [mj_event("sent", message)])
        assert status == 200
    events = await feed_until(service, key, 2)
    assert {e["job_id"]: e["tags"] for e in events} == {
        tagged: ["welcome", "v2:en"],
        untagged: [],
    }
    only = await feed_until(service, key, 1, query="&tag=v2:en")
    assert [e["job_id"] for e in only] == [tagged]
    status, body = await service.request("GET", "/feed?tag=no%20spaces", key)
    assert status == 422, body

    bodies = [
        orjson.loads(r["body"]) for r in await pool.fetch("SELECT body FROM webhook_deliveries")
    ]
    assert {b["data"]["job_id"]: b["data"]["tags"] for b in bodies} == {
        tagged: ["welcome", "v2:en"],
        untagged: [],
    }

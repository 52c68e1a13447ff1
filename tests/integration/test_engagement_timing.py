"""Human and machine opens and clicks by timing and address, end to end: real HTTP to
POST /events, real PostgreSQL, what /status, the feed and webhook payloads then say."""

from __future__ import annotations

import time
from typing import Any

import orjson

from mailer.db.pool import connect, create_pool
from mailer.simulator.server import SimulatorServer
from mailer.tracking.reprocess import reprocess
from tests.integration.harness import Service, running_service
from tests.integration.tracking_helpers import (
    FAST_RETRY,
    T0,
    email,
    feed_until,
    mj_event,
    post_events,
    sent_messages,
    tracking_settings,
)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
LINKS = [
    "https://shop.example/orders/42",
    "https://shop.example/help",
    "https://shop.example/unsubscribe?u=91",
]


def click(message: Any, at: int, url: str, **fields: Any) -> dict[str, Any]:
    return mj_event(
        "click", message, at=at, **{"url": url, "agent": CHROME, "ip": "198.51.100.7", **fields}
    )


async def webhook_bodies(service: Service, event_type: str) -> list[dict[str, Any]]:
    """The payloads queued for the app's webhooks, of one type, oldest event first."""
    conn = await connect(service.dsn)
    try:
        rows = await conn.fetch(
            "SELECT body FROM webhook_deliveries WHERE event_type = $1", event_type
        )
    finally:
        await conn.close()
    bodies = [orjson.loads(r["body"]) for r in rows]
    return sorted(bodies, key=lambda b: b["timestamp"])


async def test_a_scanner_burst_is_a_machine_and_a_later_click_a_person(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    status, _ = await service.request(
        "POST", "/webhooks", key, json={"url": "http://127.0.0.1:9/h"}
    )
    assert status == 201
    job_id = await service.queue(key, email("ann@example.org"))
    [m] = await sent_messages(service, simulator, key, job_id)
    assert (await post_events(service, [mj_event("sent", m, at=T0)]))[0] == 200
    # A link scanner (a browser User-Agent, an ordinary address) follows every link of the
    # message within the second after delivery.
    burst = [click(m, T0 + 1, url) for url in LINKS]
    status, body = await post_events(service, burst)
    assert (status, body["stored"]) == (200, 3)

    [recipient] = (await service.status(key, job_id))["recipients"]
    clicks = [e for e in recipient["events"] if e["mailjet_event"] == "click"]
    assert [(e["machine"], e["machine_reason"]) for e in clicks] == [(True, "scanner_timing")] * 3
    assert recipient["engagement"]["clicked_by"] == "machine"
    assert recipient["engagement"]["human_clicks"] == 0

    # The person, a minute later, from a desktop browser: one link.
    assert (await post_events(service, click(m, T0 + 61, LINKS[0])))[0] == 200
    [recipient] = (await service.status(key, job_id))["recipients"]
    last = recipient["events"][-1]
    assert (last["mailjet_event"], last["machine"], last["machine_reason"]) == (
        "click",
        False,
        None,
    )
    assert recipient["engagement"] == {
        "opens": 0,
        "human_opens": 0,
        "clicks": 4,
        "human_clicks": 1,
        "opened_by": None,
        "clicked_by": "human",
    }

    feed = await feed_until(service, key, 5, timeout=60)
    assert [(e["mailjet_event"], e.get("machine_reason")) for e in feed] == [
        ("sent", None),
        *[("click", "scanner_timing")] * 3,
        ("click", None),
    ]
    hooks = await webhook_bodies(service, "email.clicked")
    reasons = [
        (h["data"]["details"]["machine"], h["data"]["details"]["machine_reason"]) for h in hooks
    ]
    assert reasons == [(True, "scanner_timing")] * 3 + [(False, None)]

    # Reprocessing re-derives the same classification: nothing changes.
    pool = await create_pool(service.dsn, min_size=1, max_size=2)
    try:
        report = await reprocess(pool)
    finally:
        await pool.close()
    assert (report.events, report.changed_events, report.new_events) == (5, 0, 0)


async def test_a_fast_person_and_a_burst_without_delivery_event(
    service: Service, simulator: SimulatorServer
) -> None:
    """Before Mailjet's `sent` arrives, the time Mailer recorded the acceptance stands in
    for delivery; a lone fast click stays human either way."""
    key = await service.create_app()
    job_id = await service.queue(key, email("bob@example.org", "cy@example.org"))
    bob, cy = await sent_messages(service, simulator, key, job_id)
    now = int(time.time())
    reset = "https://shop.example/reset?token=4f1c"
    events = [click(bob, now, reset), *[click(cy, now + 1, url) for url in LINKS[:2]]]
    assert (await post_events(service, events))[0] == 200
    doc = await service.status(key, job_id)
    by_email = {r["email"]: r for r in doc["recipients"]}
    assert by_email["bob@example.org"]["engagement"]["clicked_by"] == "human"
    cy_clicks = [e for e in by_email["cy@example.org"]["events"] if e["mailjet_event"] == "click"]
    assert {e["machine_reason"] for e in cy_clicks} == {"scanner_timing"}


async def test_a_privacy_proxy_open_by_address_is_a_machine_and_a_later_real_one_a_person(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email("dee@example.org"))
    [m] = await sent_messages(service, simulator, key, job_id)
    # Apple's relay fetching the pixel on delivery, from Apple's network, with a full
    # User-Agent (the bare "Mozilla/5.0" case is test_tracking_intake's).
    relay = mj_event("open", m, at=T0 + 2, agent=IPHONE_MAIL, ip="17.58.101.4")
    assert (await post_events(service, [mj_event("sent", m, at=T0), relay]))[0] == 200
    [recipient] = (await service.status(key, job_id))["recipients"]
    opened = recipient["events"][1]
    assert (opened["machine"], opened["machine_reason"]) == (True, "apple_mail_privacy")
    assert recipient["engagement"]["opened_by"] == "machine"

    # The reader, hours later, on a home connection.
    real = mj_event("open", m, at=T0 + 7200, agent=IPHONE_MAIL, ip="82.65.10.20")
    assert (await post_events(service, real))[0] == 200
    [recipient] = (await service.status(key, job_id))["recipients"]
    assert (recipient["events"][2]["machine"], recipient["events"][2]["machine_reason"]) == (
        False,
        None,
    )
    assert recipient["engagement"]["opened_by"] == "human"
    assert (recipient["engagement"]["opens"], recipient["engagement"]["human_opens"]) == (2, 1)


async def test_the_timing_rule_follows_the_setting(db_dsn: str, simulator: SimulatorServer) -> None:
    """MAILER_SCANNER_CLICK_SECONDS=0 turns the rule off; the address rules stay."""
    settings = tracking_settings(scanner_click_seconds=0)
    async with running_service(db_dsn, simulator, policy=FAST_RETRY, settings=settings) as service:
        key = await service.create_app()
        job_id = await service.queue(key, email("eve@example.org"))
        [m] = await sent_messages(service, simulator, key, job_id)
        burst = [click(m, T0 + 1, url) for url in LINKS]
        safe_links = click(m, T0 + 1, LINKS[0], ip="40.107.22.93")
        assert (await post_events(service, [mj_event("sent", m, at=T0), *burst]))[0] == 200
        assert (await post_events(service, safe_links))[0] == 200
        [recipient] = (await service.status(key, job_id))["recipients"]
        reasons = [
            e["machine_reason"] for e in recipient["events"] if e["mailjet_event"] == "click"
        ]
        assert sorted(reasons, key=str) == [None, None, None, "security_scanner"]

"""Suppression lists over real HTTP: made by tracking events, used by the send path, managed
through the API, one per app."""

from __future__ import annotations

from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service
from tests.integration.tracking_helpers import (
    T0,
    email,
    feed_until,
    mj_event,
    post_events,
    sent_messages,
)


async def test_suppression_stops_the_next_send_to_that_address_only(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    first = await service.queue(key, email("gone@example.org"))
    [m] = await sent_messages(service, simulator, key, first)
    assert (await post_events(service, mj_event("bounce", m)))[0] == 200
    second = await service.queue(key, email("ok@example.org", "Gone@Example.org"))
    done = await service.wait_for(key, second)
    assert [(r["email"], r["status"]) for r in done["recipients"]] == [
        ("ok@example.org", "accepted"),
        ("gone@example.org", "suppressed"),
    ]
    assert done["status"] == "accepted"
    assert [x.email for x in simulator.state.messages_for(second)] == ["ok@example.org"]
    # Removed from the list, the address is sent to again.
    status, _ = await service.request("DELETE", "/suppressions/GONE@example.org?reason=asked", key)
    assert status == 204
    third = await service.queue(key, email("gone@example.org"))
    assert (await service.wait_for(key, third))["status"] == "accepted"


async def test_only_a_recipient_class_hard_bounce_suppresses(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job = await service.queue(key, email("a@example.org", "b@example.org", "c@example.org"))
    a, b, c = await sent_messages(service, simulator, key, job)
    domain = mj_event("bounce", a, error_related_to="domain", error="no mail host")
    soft = mj_event("bounce", b, hard_bounce=False, error_related_to="domain", error="greylisted")
    recipient = mj_event("bounce", c)  # error_related_to: recipient, user unknown
    assert (await post_events(service, [domain, soft, recipient]))[0] == 200
    doc = await service.status(key, job)
    # Each is recorded and shown: a hard bounce is `bounced` whatever its class.
    assert [r["status"] for r in doc["recipients"]] == ["bounced", "deferred", "bounced"]
    status, listed = await service.request("GET", "/suppressions", key)
    assert status == 200
    assert [s["email"] for s in listed["suppressions"]] == ["c@example.org"]


async def test_app_isolation(service: Service, simulator: SimulatorServer) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    job_id = await service.queue(shop, email("reader@example.org"))
    [m] = await sent_messages(service, simulator, shop, job_id)
    await post_events(service, [mj_event("sent", m), mj_event("spam", m, at=T0 + 1)])
    assert len(await feed_until(service, shop, 2)) == 2
    status, page = await service.request("GET", "/feed", blog)
    assert (status, page["events"], page["has_more"]) == (200, [], False)
    assert (await service.request("GET", "/suppressions", blog))[1]["suppressions"] == []
    assert (await service.request("GET", "/suppressions", shop))[1]["suppressions"] != []
    status, _ = await service.request("DELETE", "/suppressions/reader@example.org?reason=x", blog)
    assert status == 404
    # The blog's own suppression of the same address is its own, and independent.
    added = await service.request(
        "POST", "/suppressions", blog, json={"email": "reader@example.org"}
    )
    assert added[0] == 201 and added[1]["reason"] == "manual"
    shop_list = (await service.request("GET", "/suppressions", shop))[1]["suppressions"]
    assert [s["reason"] for s in shop_list] == ["spam_complaint"]
    assert (await service.request("GET", f"/status/{job_id}", blog))[0] == 404
    for path in ("/feed", "/suppressions"):
        assert (await service.request("GET", path, None))[0] == 401


async def test_suppressions_api(service: Service) -> None:
    key = await service.create_app()
    for i in range(5):
        body = {"email": f"User{i}@Example.org", "reason": "asked us"}
        status, entry = await service.request("POST", "/suppressions", key, json=body)
        assert status == 201
        assert entry["email"] == f"user{i}@example.org" and entry["event_id"] is None
    again = await service.request("POST", "/suppressions", key, json={"email": "user1@example.org"})
    assert again[0] == 200 and again[1]["reason"] == "asked us"
    bad = await service.request("POST", "/suppressions", key, json={"email": "nope"})
    assert bad[0] == 422 and bad[1]["details"][0]["field"] == "email"
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        status, page = await service.request("GET", f"/suppressions?limit=2{cursor}", key)
        assert status == 200
        seen += [s["email"] for s in page["suppressions"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&after={page['next_cursor']}"
    assert seen == [f"user{i}@example.org" for i in range(5)]
    assert (await service.request("GET", "/suppressions?after=%%%", key))[0] in (400, 422)
    status, _ = await service.request("DELETE", "/suppressions/user3@example.org?reason=x", key)
    assert status == 204
    status, _ = await service.request("DELETE", "/suppressions/user3@example.org?reason=x", key)
    assert status == 404

"""The simulator's event side over real HTTP on 127.0.0.1: a real aiohttp receiver gets
the events Mailjet would post, scripted by the recipient addresses."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mailer.mailjet import MailjetClient, MessageAccepted
from mailer.simulator import EventsConfig, SimulatorServer

TWO_53 = 2**53
TYPES = ("sent", "open", "click", "bounce", "spam", "blocked", "unsub")
COMMON = set(
    "event time MessageID Message_GUID email mj_campaign_id mj_contact_id customcampaign "
    "CustomID Payload".split()
)
EXTRA = {
    "sent": {"mj_message_id", "smtp_reply"},
    "open": {"ip", "geo", "agent"},
    "click": {"ip", "geo", "agent", "url"},
    "bounce": {"blocked", "hard_bounce", "error_related_to", "error", "comment"},
    "blocked": {"error_related_to", "error"},
    "spam": {"source"},
    "unsub": {"mj_list_id", "ip", "geo", "agent"},
}
FAST = EventsConfig(group_ms=20, retry_interval=0.05, timeout=2.0, seed=7)


@dataclass
class Received:
    path: str
    authorization: str | None
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)  # stdlib json: exact big integers

    @property
    def events(self) -> list[dict[str, Any]]:
        body = self.body
        return body if isinstance(body, list) else [body]


@dataclass
class Receiver:
    """A tiny aiohttp server standing in for Mailer's ``POST /events``."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to give
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.requests.append(Received(request.path, request.headers.get("Authorization"), raw))
        queued = self.answers.get(request.path)
        return web.Response(status=queued.pop(0) if queued else 200)

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        return [e for r in self.requests if path in (None, r.path) for e in r.events]

    def callback_url(self, path: str = "/events", creds: str = "hook:s3cr%40t") -> str:
        return self.url.replace("http://", f"http://{creds}@") + path


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(events=FAST) as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    await web.SockSite(runner, sock).start()
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[MailjetClient]:
    sim.set_events(FAST)
    sim.state.reset()
    async with MailjetClient(sim.url, sim.config.api_key, sim.config.secret_key) as c:
        yield c


async def register(client: MailjetClient, url: str, version: int, types: Any = TYPES) -> None:
    for event_type in types:
        await client.create_event_callback(event_type, url, version=version)


def message(to: str, custom_id: str = "", **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "From": {"Email": "shop@example.org"},
        "To": [{"Email": to}],
        "Subject": "Hi",
        "TextPart": "Hello",
        **extra,
    }
    if custom_id:
        msg["CustomID"] = custom_id
    return msg


async def send(client: MailjetClient, *addresses: str, **extra: Any) -> dict[str, int]:
    """Send one message per address; return address -> MessageID."""
    response = await client.send([message(a, f"job-{i}", **extra) for i, a in enumerate(addresses)])
    ids = {}
    for result in response.results:
        assert isinstance(result, MessageAccepted)
        ids[result.recipients[0].email] = result.recipients[0].message_id
    return ids


SCRIPTS = {
    "plain@example.org": ["sent"],
    "ann+open@example.org": ["sent", "open"],
    "ann+click@example.org": ["sent", "open", "click"],
    "ann+unsub@example.org": ["sent", "open", "unsub"],
    "ann+spam@example.org": ["sent", "spam"],
    "ann+soft@example.org": ["bounce", "sent"],
    "ann+bounce@example.org": ["bounce"],
    "bounce+hard@example.org": ["bounce"],
    "ann+blocked@example.org": ["blocked"],
}


async def test_scripted_events_version_1_shapes_auth_and_exact_ids(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    await register(client, receiver.callback_url(), version=1)
    ids = await send(client, *SCRIPTS, EventPayload='{"k": 1}', CustomCampaign="spring")
    await sim.events.wait_idle()

    assert all(isinstance(r.body, dict) for r in receiver.requests)  # Version 1: bare objects
    assert {r.path for r in receiver.requests} == {"/events"}  # credentials stripped
    expected_auth = "Basic " + base64.b64encode(b"hook:s3cr@t").decode()
    assert {r.authorization for r in receiver.requests} == {expected_auth}
    by_email: dict[str, list[dict[str, Any]]] = {}
    for event in receiver.events():
        by_email.setdefault(event["email"], []).append(event)
    assert {email: [e["event"] for e in evs] for email, evs in by_email.items()} == SCRIPTS

    now = time.time()
    for email, events in by_email.items():
        for event in events:
            assert set(event) == COMMON | EXTRA[event["event"]], event
            assert event["MessageID"] == ids[email] and event["MessageID"] > TWO_53
            assert type(event["MessageID"]) is int
            assert event["CustomID"] == f"job-{list(SCRIPTS).index(email)}"
            assert (event["Payload"], event["customcampaign"]) == ('{"k": 1}', "spring")
            assert abs(event["time"] - now) < 10 and len(event["Message_GUID"]) == 36
            assert event["mj_campaign_id"] > 2**31 and event["mj_contact_id"] > 2**31
    raw = b"".join(r.raw for r in receiver.requests)
    assert all(str(mid).encode() in raw for mid in ids.values())  # no float rounding

    sent = by_email["plain@example.org"][0]
    assert sent["mj_message_id"] == str(ids["plain@example.org"])
    assert sent["smtp_reply"].startswith("sent (250")
    hard = by_email["ann+bounce@example.org"][0]
    assert (hard["hard_bounce"], hard["error"], hard["error_related_to"]) == (
        True,
        "user unknown",
        "recipient",
    )
    soft = by_email["ann+soft@example.org"][0]
    assert (soft["hard_bounce"], soft["error"]) == (False, "greylisted")
    blocked = by_email["ann+blocked@example.org"][0]
    assert (blocked["error"], blocked["error_related_to"]) == ("preblocked", "mailjet")
    assert by_email["ann+spam@example.org"][1]["source"] == "JMRPP"
    assert by_email["ann+unsub@example.org"][2]["mj_list_id"] == 0
    assert by_email["ann+click@example.org"][2]["url"]


async def test_message_status_and_history_follow_the_events(
    sim: SimulatorServer, client: MailjetClient, http: aiohttp.ClientSession
) -> None:
    ids = await send(client, "a+click@example.org", "b+bounce@example.org", "c+soft@example.org")
    await sim.events.wait_idle()  # no callback registered: statuses move all the same
    statuses = {m.email: m.status for m in sim.state.accepted}
    assert statuses == {
        "a+click@example.org": "clicked",
        "b+bounce@example.org": "hardbounced",
        "c+soft@example.org": "sent",
    }
    found = await client.find_messages_by_custom_id("job-1")
    assert [m.status for m in found] == ["hardbounced"]
    token = base64.b64encode(f"{sim.config.api_key}:{sim.config.secret_key}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    url = f"{sim.url}/v3/REST/messagehistory/{ids['c+soft@example.org']}"
    async with http.get(url, headers=auth) as r:
        history = await r.json()
    assert [(h["EventType"], h["State"]) for h in history["Data"]] == [
        ("bounced", "greylisted"),
        ("sent", ""),
    ]
    async with http.get(f"{sim.url}/v3/REST/messagehistory/1", headers=auth) as r:
        assert r.status == 404
    assert sim.state.event_counts["unrouted"] == 6


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_version_2_groups_events_in_arrays_up_to_max_batch(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    await register(client, receiver.callback_url(), version=2)
    await send(client, "a+click@example.org", "b+unsub@example.org")
    await sim.events.wait_idle()
    assert len(receiver.requests) == 1  # one group: both messages, mixed types
    assert isinstance(receiver.requests[0].body, list)
    expected = ["sent", "open", "click", "sent", "open", "unsub"]
    assert [e["event"] for e in receiver.events()] == expected

    receiver.requests.clear()
    sim.set_events(EventsConfig(group_ms=20, max_batch=4, seed=1))
    await send(client, "a+click@example.org", "b+unsub@example.org")
    await sim.events.wait_idle()
    assert [len(r.body) for r in receiver.requests] == [4, 2]


async def test_retries_a_failing_url_until_200_while_others_flow(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    await register(client, receiver.callback_url("/flaky"), version=1, types=["sent"])
    await register(client, receiver.callback_url("/ok"), version=1, types=["open"])
    receiver.answers["/flaky"] = [500, 503, 201]  # anything but 200 is a failure
    ids = await send(client, "x+open@example.org")
    await sim.events.wait_idle()

    paths = [r.path for r in receiver.requests]
    assert paths.count("/flaky") == 4 and paths.index("/ok") < 3  # open was not held back
    assert [r.raw for r in receiver.requests if r.path == "/flaky"] == [
        receiver.requests[0].raw
    ] * 4  # the same POST, resent whole
    delivery = next(d for d in sim.state.deliveries if d.url.endswith("/flaky"))
    assert [a.status for a in delivery.attempts] == [500, 503, 201, 200]
    assert delivery.delivered and not delivery.gave_up
    gaps = [b.at - a.at for a, b in zip(delivery.attempts, delivery.attempts[1:], strict=False)]
    assert all(g >= 0.04 for g in gaps)
    assert receiver.events("/flaky")[0]["MessageID"] == ids["x+open@example.org"]


async def test_gives_up_after_retry_for(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    sim.set_events(EventsConfig(retry_interval=0.02, retry_for=0.1))
    await register(client, receiver.callback_url(), version=1, types=["sent"])
    receiver.answers["/events"] = [500] * 1000
    await send(client, "down@example.org")
    await sim.events.wait_idle()
    (delivery,) = sim.state.deliveries
    assert delivery.gave_up and not delivery.delivered and len(delivery.attempts) >= 3
    assert sim.state.event_counts["gave_up"] == 1


async def test_a_hanging_receiver_never_blocks_the_send_api(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    receiver.delay = 0.3
    await register(client, receiver.callback_url(), version=1)
    started = time.monotonic()
    for i in range(5):
        await send(client, f"n{i}+click@example.org")
    assert time.monotonic() - started < 0.25
    await sim.events.wait_idle()
    assert len(receiver.requests) == 15


async def test_duplicates_post_some_events_twice(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    sim.set_events(EventsConfig(duplicate_rate=1.0, group_ms=20))
    await register(client, receiver.callback_url(), version=2)
    await send(client, "d+open@example.org")
    await sim.events.wait_idle()
    assert len(receiver.requests) == 2 and receiver.requests[0].raw == receiver.requests[1].raw
    first, second = sim.state.deliveries
    assert second.duplicate_of == first.id and first.duplicate_of is None
    assert sim.state.event_counts["duplicated"] == 2


@pytest.mark.parametrize("version", [1, 2])
async def test_reorder_shuffles_the_events(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver, version: int
) -> None:
    sim.set_events(EventsConfig(reorder=True, group_ms=30, seed=3))
    await register(client, receiver.callback_url(), version=version)
    addresses = [f"r{i}+click+unsub+spam@example.org" for i in range(4)]
    await send(client, *addresses)
    await sim.events.wait_idle()
    arrived = [(e["email"], e["event"]) for e in receiver.events()]
    in_order = [(a, t) for a in addresses for t in ("sent", "open", "click", "unsub", "spam")]
    assert sorted(arrived) == sorted(in_order) and arrived != in_order


async def test_refuses_non_loopback_urls_and_can_be_switched_off(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    await register(client, "https://user:pw@example.invalid/events", version=2, types=["sent"])
    await send(client, "far@example.org")
    await sim.events.wait_idle()
    (delivery,) = sim.state.deliveries
    assert delivery.refused and delivery.attempts == [] and delivery.authorization
    assert delivery.url == "https://example.invalid/events"

    sim.state.reset()
    sim.set_events(EventsConfig(enabled=False))
    await register(client, receiver.callback_url(), version=1)
    await send(client, "quiet+click@example.org")
    await sim.events.wait_idle()
    assert receiver.requests == [] and not sim.state.deliveries
    assert sim.state.accepted[0].status == "sent" and sim.state.accepted[0].history == []


async def test_control_api(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    async with http.put(sim.url + "/_sim/events", json={"delay_ms": "soon"}) as r:
        assert r.status == 400
    async with http.put(sim.url + "/_sim/events", json={"nope": 1}) as r:
        assert r.status == 400
    settings = {"delay_ms": 30, "group_ms": 10, "retry_interval": 0.05, "reorder": False}
    async with http.put(sim.url + "/_sim/events", json=settings) as r:
        assert r.status == 200 and (await r.json())["delay_ms"] == 30
    assert sim.events.config.delay_ms == 30

    await register(client, receiver.callback_url(), version=2)
    started = time.monotonic()
    await send(client, "c+open@example.org")
    async with http.get(sim.url + "/_sim/events") as r:
        info = await r.json()
    assert info["busy"] and info["config"]["group_ms"] == 10
    await sim.events.wait_idle()
    assert time.monotonic() - started >= 0.03  # the delay held the events back
    async with http.get(sim.url + "/_sim/events/deliveries", params={"limit": "5"}) as r:
        rows = (await r.json())["Data"]
    assert len(rows) == 1 and rows[0]["delivered"] and rows[0]["attempts"][0]["status"] == 200
    assert [e["event"] for e in rows[0]["body"]] == ["sent", "open"]
    async with http.get(sim.url + "/_sim/stats") as r:
        assert (await r.json())["events"]["delivered"] == 2


async def test_stop_cancels_pending_retries_cleanly(receiver: Receiver) -> None:
    receiver.answers["/events"] = [500] * 100
    config = EventsConfig(retry_interval=30.0, group_ms=10)
    async with SimulatorServer(events=config) as sim:
        async with MailjetClient(sim.url, sim.config.api_key, sim.config.secret_key) as client:
            await register(client, receiver.callback_url(), version=2, types=["sent"])
            await send(client, "later@example.org")
            while not receiver.requests:
                await asyncio.sleep(0.005)
        assert sim.events.busy  # a retry is due in 30 s
        started = time.monotonic()
    assert time.monotonic() - started < 3 and not sim.events.busy


async def test_reset_drops_pending_events_and_retries(
    sim: SimulatorServer, client: MailjetClient, receiver: Receiver
) -> None:
    sim.set_events(EventsConfig(retry_interval=30.0, group_ms=10))
    await register(client, receiver.callback_url(), version=2, types=["sent"])
    receiver.answers["/events"] = [500]
    await send(client, "retry-later@example.org")
    while not receiver.requests:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    assert sim.events.busy  # the retry waits 30 s
    sim.state.reset()
    await sim.events.wait_idle(timeout=1.0)
    assert len(receiver.requests) == 1 and not sim.state.deliveries

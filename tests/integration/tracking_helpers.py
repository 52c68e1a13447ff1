"""Helpers for the tracking tests: Mailjet-shaped events, posting them, reading the feed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from mailer.delivery.retry import RetryPolicy
from mailer.simulator.server import SimulatorServer
from mailer.simulator.state import AcceptedMessage
from tests.integration.harness import Service, running_service, service_settings

EVENTS_USER = "mailjet"
EVENTS_PASSWORD = "s3cret-events"


def basic_auth(user: str, password: str) -> str:
    """An `Authorization` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = basic_auth(EVENTS_USER, EVENTS_PASSWORD)
T0 = 1_750_000_000
FAST_RETRY = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, max_attempts=10)


def tracking_settings(**overrides: Any) -> Any:
    """Test settings with fixed event-callback credentials."""
    return service_settings(events_user=EVENTS_USER, events_password=EVENTS_PASSWORD, **overrides)


def email(*to: str, **extra: Any) -> dict[str, Any]:
    """A valid POST /queue body to `to` (default one address)."""
    body: dict[str, Any] = {
        "from": {"email": "noreply@shop.example", "name": "Shop"},
        "to": [{"email": a} for a in (to or ("ann@example.org",))],
        "subject": "Your order",
        "text": "Thanks!",
        "metadata": {"order": "42", "tags": ["a", "b"]},
    }
    body.update(extra)
    return body


_TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "sent": {"smtp_reply": "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)"},
    "open": {"ip": "127.0.0.1", "geo": "US", "agent": "Mozilla/5.0"},
    "click": {"ip": "127.0.0.1", "geo": "FR", "agent": "Mozilla/5.0", "url": "https://x.test/"},
    "bounce": {
        "blocked": False,
        "hard_bounce": True,
        "error_related_to": "recipient",
        "error": "user unknown",
        "comment": "550 5.1.1 no such user",
    },
    "blocked": {"error_related_to": "mailjet", "error": "preblocked"},
    "spam": {"source": "JMRPP"},
    "unsub": {"mj_list_id": 0, "ip": "127.0.0.1", "geo": "", "agent": "List-Unsubscribe"},
}


def mj_event(
    event: str, message: AcceptedMessage, *, at: int = T0, custom_id: bool = True, **fields: Any
) -> dict[str, Any]:
    """A Mailjet Event API object for a message the simulator accepted (reference §3)."""
    body: dict[str, Any] = {
        "event": event,
        "time": at,
        "MessageID": message.message_id,
        "Message_GUID": message.uuid,
        "email": message.email,
        "mj_campaign_id": 7653742672,
        "mj_contact_id": 4,
        "customcampaign": "",
        "CustomID": message.custom_id if custom_id else "",
        "Payload": "",
    }
    if event == "sent":
        body["mj_message_id"] = str(message.message_id)
    body.update(_TYPE_FIELDS.get(event, {}))
    body.update(fields)
    return body


async def post_events(
    service: Service, body: Any, *, auth: str | None = AUTH, raw: bool = False
) -> tuple[int, Any]:
    """POST a callback body (a dict, a list, or raw bytes) to /events; `auth` is the
    `Authorization` header (none when None)."""
    data = body if raw else orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    async with service.http.post(service.url + "/events", data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def sent_messages(
    service: Service, simulator: SimulatorServer, key: str, job_id: str
) -> list[AcceptedMessage]:
    """Wait until the job is accepted; its recipients' messages at the simulator."""
    done = await service.wait_for(key, job_id, {"accepted"})
    assert done["status"] == "accepted", done
    messages = simulator.state.messages_for(job_id)
    order = {r["email"]: i for i, r in enumerate(done["recipients"])}
    return sorted(messages, key=lambda m: order[m.email])


async def read_whole_feed(
    service: Service, key: str, *, limit: int = 100, query: str = ""
) -> list[dict[str, Any]]:
    """Every event of the feed now, following the cursors until `has_more` is false."""
    events: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = await service.request("GET", f"/feed?limit={limit}{cursor}{query}", key)
        assert status == 200, page
        events += page["events"]
        cursor = f"&after={page['next_cursor']}"
        if not page["has_more"]:
            return events


async def feed_until(
    service: Service, key: str, count: int, *, query: str = "", timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The whole feed, once it holds `count` events (the visibility horizon may lag)."""
    deadline = time.monotonic() + timeout
    while True:
        events = await read_whole_feed(service, key, query=query)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def tracking_service(
    db_dsn: str, simulator: SimulatorServer | None, *, policy: RetryPolicy = FAST_RETRY
) -> AsyncIterator[Service]:
    """API + worker (unless `simulator` is None) with known event credentials."""
    async with running_service(
        db_dsn,
        simulator,
        worker=simulator is not None,
        policy=policy,
        settings=tracking_settings(),
    ) as svc:
        yield svc

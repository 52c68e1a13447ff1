"""What the scenarios send: emails as apps post them, jobs as the API stores them, events
as Mailjet groups them, and raw Send API calls for the simulator's own ceiling."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import orjson

from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import NewJob, new_job

EVENT_TYPES = ("sent", "open", "click")
# MAILER_BENCH_TAGS=N gives every email N tags (default none): what tags cost the hot paths,
# the stats counting each tagged email under each of its tags too (docs/benchmarks.md).
TAGS = [f"tag{k}" for k in range(int(os.environ.get("MAILER_BENCH_TAGS", "0")))]


def email_body(index: int, run: str = "") -> dict[str, Any]:
    """A typical one-recipient transactional email, as an app posts it."""
    body: dict[str, Any] = {
        "from": {"email": "noreply@shop.example", "name": "Shop"},
        "to": [{"email": f"user{index}{run}@example.org", "name": f"User {index}"}],
        "subject": f"Your order #{index} has shipped",
        "text": f"Hello User {index},\n\nyour order #{index} is on its way.\n\nShop",
        "html": f"<p>Hello User {index},</p><p>your order <b>#{index}</b> is on its way.</p>",
        "metadata": {"order": index},
    }
    if TAGS:
        body["tags"] = TAGS
    return body


def new_jobs(app_id: uuid.UUID, count: int, run: str = "") -> list[NewJob]:
    """`count` validated jobs, exactly as `POST /queue` would build them."""
    return [new_job(app_id, EmailRequest.model_validate(email_body(i, run))) for i in range(count)]


def batch_body(start: int, count: int) -> bytes:
    """A `POST /queue/batch` body of `count` emails."""
    return orjson.dumps({"emails": [email_body(start + i) for i in range(count)]})


def event_bodies(
    known: list[tuple[int, str, str]],
    per_body: int,
    bodies: int,
    *,
    distinct: bool = False,
    later: int = 0,
) -> list[bytes]:
    """Grouped Mailjet event callbacks (JSON arrays) about known (message_id, email,
    custom_id) messages: sent, open and click events in turn. All at one time, so bodies
    posted again are redeliveries; with `distinct`, each pass over the known messages a
    second later than the one before, so that no two events in the bodies are the same
    (nor the same as those of another call `later` seconds on)."""
    now = int(time.time()) + later
    out = []
    position = 0
    for _ in range(bodies):
        events = []
        for _ in range(per_body):
            message_id, email, custom_id = known[position % len(known)]
            kind = EVENT_TYPES[position % len(EVENT_TYPES)]
            event: dict[str, Any] = {
                "event": kind,
                "time": now + position // len(known) if distinct else now,
                "MessageID": message_id,
                "Message_GUID": str(uuid.UUID(int=message_id)),
                "email": email,
                "mj_campaign_id": 0,
                "mj_contact_id": 0,
                "customcampaign": "",
                "CustomID": custom_id,
                "Payload": "",
            }
            if kind == "sent":
                event["mj_message_id"] = str(message_id)
                event["smtp_reply"] = "250 2.0.0 OK"
            elif kind == "open":
                event.update(ip="127.0.0.1", geo="US", agent="bench")
            else:
                event.update(url="https://shop.example/track", ip="127.0.0.1", geo="US")
            events.append(event)
            position += 1
        out.append(orjson.dumps(events))
    return out


def send_call_body(call: int, messages: int) -> bytes:
    """A Send API v3.1 body of `messages` one-recipient messages (the worker's pack size)."""
    return orjson.dumps(
        {
            "Messages": [
                {
                    "From": {"Email": "noreply@shop.example", "Name": "Shop"},
                    "To": [{"Email": f"probe{call}-{i}@example.org"}],
                    "Subject": "probe",
                    "TextPart": "probe",
                    "HTMLPart": "<p>probe</p>",
                    "CustomID": f"probe-{call}-{i}",
                }
                for i in range(messages)
            ]
        }
    )

"""A Django project whose EMAIL_BACKEND is `mailer_client.django.EmailBackend` sends through a
running Mailer: the job is stored with everything the message had, and sent."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from email.mime.image import MIMEImage

import pytest

from mailer.db.pool import connect
from mailer.simulator import SimulatorServer
from tests.integration.harness import Service
from tests.integration.live import live_mailer, wait_recipients

django = pytest.importorskip("django", reason="Django is not installed (the client's extra)")

from django.conf import settings  # noqa: E402
from django.core.mail import EmailMultiAlternatives, send_mail  # noqa: E402
from django.test import override_settings  # noqa: E402

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND="mailer_client.django.EmailBackend",
        DEFAULT_FROM_EMAIL="Shop <shop@example.org>",
    )
    django.setup()

Live = tuple[Service, SimulatorServer]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def live(db_dsn: str) -> AsyncIterator[Live]:
    async with live_mailer(db_dsn) as both:
        yield both


async def stored_message(service: Service, job_id: str) -> dict[str, object]:
    conn = await connect(service.dsn)
    try:
        raw = await conn.fetchval("SELECT message FROM jobs WHERE id = $1::uuid", job_id)
    finally:
        await conn.close()
    message: dict[str, object] = json.loads(raw) if isinstance(raw, str) else raw
    return message


async def test_email_multi_alternatives_is_sent_with_all_its_parts(live: Live) -> None:
    service, _ = live
    key = await service.create_app("django-shop")
    message = EmailMultiAlternatives(
        subject="Your order",
        body="Thanks!",
        to=["Ann <ann@example.org>"],
        cc=["cc@example.org"],
        bcc=["bcc@example.org"],
        reply_to=["help@shop.example"],
        headers={"X-Order": "42"},
    )
    message.attach_alternative('<p>Thanks! <img src="cid:logo"></p>', "text/html")
    message.attach("invoice.txt", "total: 42", "text/plain")
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-ID", "<logo>")
    message.attach(logo)
    message.metadata = {"order": "42"}

    with override_settings(MAILER_URL=service.url, MAILER_API_KEY=key):
        assert await asyncio.to_thread(message.send) == 1
    job_id = message.mailer_job_id
    assert message.mailer_status.status == "queued"
    assert message.mailer_status.job_id == job_id

    done = await wait_recipients(service, key, job_id)
    assert {r["email"] for r in done["recipients"]} == {
        "ann@example.org",
        "cc@example.org",
        "bcc@example.org",
    }
    stored = await stored_message(service, job_id)
    assert stored["ReplyTo"] == {"Email": "help@shop.example"}
    assert stored["Headers"] == {"X-Order": "42"}
    assert stored["TextPart"] == "Thanks!" and "cid:logo" in str(stored["HTMLPart"])
    assert stored["Attachments"] == [
        {
            "ContentType": "text/plain",
            "Filename": "invoice.txt",
            "Base64Content": base64.b64encode(b"total: 42").decode(),
        }
    ]
    assert stored["InlinedAttachments"] == [
        {
            "ContentType": "image/png",
            "Filename": "logo",
            "Base64Content": base64.b64encode(PNG).decode(),
            "ContentID": "logo",
        }
    ]


async def test_send_mail_goes_through_mailer(live: Live) -> None:
    service, _ = live
    key = await service.create_app("django-shop")
    with override_settings(MAILER_URL=service.url, MAILER_API_KEY=key):
        sent = await asyncio.to_thread(
            send_mail,
            "Hello",
            "Plain text",
            None,
            ["ann@example.org"],
            html_message="<p>Plain text</p>",
        )
    assert sent == 1
    conn = await connect(service.dsn)
    try:
        job_id = str(await conn.fetchval("SELECT id FROM jobs"))
    finally:
        await conn.close()
    done = await wait_recipients(service, key, job_id)
    assert done["recipients"][0]["email"] == "ann@example.org"

"""The Django backend's translation of Django messages into `POST /queue` bodies, and its
sending, against the scripted local server."""

from __future__ import annotations

import base64
from email.mime.image import MIMEImage

import pytest

from conftest import Scripted

django = pytest.importorskip("django", reason="Django is not installed (the `django` extra)")

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection  # noqa: E402
from django.core.mail import send_mail as django_send_mail  # noqa: E402
from django.test import override_settings  # noqa: E402

from mailer_client import InvalidRequestError  # noqa: E402
from mailer_client.django import UnsupportedMessage, message_payload  # noqa: E402

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND="mailer_client.django.EmailBackend",
        DEFAULT_FROM_EMAIL="Shop <shop@example.org>",
    )
    django.setup()

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_a_full_message_becomes_one_queue_body() -> None:
    message = EmailMultiAlternatives(
        subject="Your order",
        body="Thanks!",
        from_email="Shop <shop@example.org>",
        to=["Ann <ann@example.org>"],
        cc=["cc@example.org"],
        bcc=["bcc@example.org"],
        reply_to=["help@shop.example"],
        headers={"X-Order": "42"},
    )
    message.attach_alternative('<p>Thanks! <img src="cid:logo"></p>', "text/html")
    message.attach("invoice.txt", "total: 42", "text/plain")
    message.attach("data.bin", b"\x00\x01", None)
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-ID", "<logo>")
    message.attach(logo)
    message.metadata = {"order": "42"}
    message.tags = ["receipt"]
    payload = message_payload(message)
    assert payload == {
        "from": {"email": "shop@example.org", "name": "Shop"},
        "to": [{"email": "ann@example.org", "name": "Ann"}],
        "cc": [{"email": "cc@example.org"}],
        "bcc": [{"email": "bcc@example.org"}],
        "reply_to": {"email": "help@shop.example"},
        "subject": "Your order",
        "text": "Thanks!",
        "html": '<p>Thanks! <img src="cid:logo"></p>',
        "headers": {"X-Order": "42"},
        "attachments": [
            {
                "filename": "invoice.txt",
                "content_type": "text/plain",
                "content": base64.b64encode(b"total: 42").decode(),
            },
            {
                "filename": "data.bin",
                "content_type": "application/octet-stream",
                "content": base64.b64encode(b"\x00\x01").decode(),
            },
            {
                "filename": "logo",
                "content_type": "image/png",
                "content": base64.b64encode(PNG).decode(),
                "content_id": "logo",
            },
        ],
        "metadata": {"order": "42"},
        "tags": ["receipt"],
    }


def test_html_only_and_no_tags_means_no_tags_field() -> None:
    message = EmailMessage("S", "<p>Hi</p>", to=["a@example.org"])
    message.content_subtype = "html"
    payload = message_payload(message)
    assert payload["html"] == "<p>Hi</p>" and "text" not in payload
    assert payload["from"] == {"email": "shop@example.org", "name": "Shop"}
    assert "tags" not in payload and "metadata" not in payload


def test_what_mailer_cannot_send_is_refused_before_sending() -> None:
    with pytest.raises(UnsupportedMessage):
        message_payload(EmailMessage("S", "b", to=["a@x.org"], reply_to=["a@y.org", "b@y.org"]))
    odd = EmailMultiAlternatives("S", "b", to=["a@x.org"])
    odd.attach_alternative("{}", "application/json")
    with pytest.raises(UnsupportedMessage):
        message_payload(odd)


def test_send_mail_sets_the_job_id_and_refusals_raise_or_not(scripted: Scripted) -> None:
    scripted.answer(202, {"job_id": "j1", "status": "queued"})
    details = [{"field": "to[0].email", "message": "not a valid email address"}]
    scripted.answer(422, {"error": "invalid_request", "message": "bad", "details": details})
    scripted.answer(422, {"error": "invalid_request", "message": "bad", "details": details})
    with override_settings(MAILER_URL=scripted.url, MAILER_API_KEY="mk_django"):
        assert django_send_mail("S", "Body", None, ["ann@example.org"]) == 1
        message = EmailMessage("S", "Body", to=["bad@example.org"])
        with pytest.raises(InvalidRequestError):
            message.send()
        quiet = EmailMessage("S", "Body", to=["bad@example.org"])
        assert get_connection(fail_silently=True).send_messages([quiet]) == 0
        assert quiet.mailer_status.status == "failed"
        assert quiet.mailer_status.error.details == details
    first = scripted.received[0]
    assert first.headers["authorization"] == "Bearer mk_django"
    assert first.json()["to"] == [{"email": "ann@example.org"}]


def test_the_settings_are_required() -> None:
    with (
        override_settings(MAILER_URL=None, MAILER_API_KEY=None),
        pytest.raises(ImproperlyConfigured),
    ):
        get_connection()

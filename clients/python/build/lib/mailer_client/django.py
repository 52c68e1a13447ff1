"""A Django email backend that sends through Mailer.

    EMAIL_BACKEND = "mailer_client.django.EmailBackend"
    MAILER_URL = "http://mailer.internal:8000"
    MAILER_API_KEY = "..."

`send_mail`, `EmailMessage` and `EmailMultiAlternatives` work as with any backend. Set
`message.metadata` (a dict) and `message.tags` (a list) before sending, as with
django-anymail; after sending, `message.mailer_job_id` is Mailer's job id and
`message.mailer_status` says what became of the send.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from mailer_client._wire import address
from mailer_client.client import Client
from mailer_client.errors import MailerError

__all__ = ["EmailBackend", "MailerStatus", "UnsupportedMessage", "message_payload"]

DEFAULT_ATTACHMENT_TYPE = "application/octet-stream"


class UnsupportedMessage(ValueError):
    """The message uses something Mailer cannot send (e.g. a second Reply-To)."""


@dataclass
class MailerStatus:
    """What became of one message's send (as django-anymail's `anymail_status`).

    Attributes:
        status: ``queued`` once Mailer stored it, ``failed`` if Mailer refused it.
        job_id: Mailer's job id (None when failed); `/status/<job_id>` tracks it.
        recipients: each recipient's address and its status at send time.
        error: the refusal, when failed.
    """

    status: str
    job_id: str | None = None
    recipients: dict[str, str] = field(default_factory=dict)
    error: MailerError | None = None

    @property
    def message_id(self) -> str | None:
        """The job id, under django-anymail's name."""
        return self.job_id


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # Django ships no type hints
    """Sends each message with one `POST /queue` (one job per message).

    Args:
        fail_silently: swallow Mailer's refusals (the message's `mailer_status` says).
        url: Mailer's base URL (default: the MAILER_URL setting).
        api_key: the app's API key (default: the MAILER_API_KEY setting).
        timeout: seconds per attempt (default: MAILER_TIMEOUT or 30).
    """

    def __init__(
        self,
        fail_silently: bool = False,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        found_url = url or getattr(settings, "MAILER_URL", None)
        found_key = api_key or getattr(settings, "MAILER_API_KEY", None)
        if not found_url or not found_key:
            raise ImproperlyConfigured("set MAILER_URL and MAILER_API_KEY to send through Mailer")
        self.url: str = str(found_url)
        self.api_key: str = str(found_key)
        self.timeout = float(timeout or getattr(settings, "MAILER_TIMEOUT", None) or 30.0)
        self._client: Client | None = None

    def open(self) -> bool:
        """Open the connection pool; True if this call opened it."""
        if self._client is not None:
            return False
        self._client = Client(self.url, self.api_key, timeout=self.timeout)
        return True

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send each message; return how many Mailer accepted."""
        if not email_messages:
            return 0
        opened = self.open()
        try:
            return sum(self._send(message) for message in email_messages)
        finally:
            if opened:
                self.close()

    def _send(self, message: EmailMessage) -> bool:
        if not message.recipients():
            return False
        payload = message_payload(message)
        recipients = [
            item["email"] for kind in ("to", "cc", "bcc") for item in payload.get(kind, [])
        ]
        assert self._client is not None
        try:
            job_id = self._client.send(payload)
        except MailerError as exc:
            message.mailer_job_id = None
            message.mailer_status = MailerStatus(
                "failed", recipients=dict.fromkeys(recipients, "failed"), error=exc
            )
            if not self.fail_silently:
                raise
            return False
        message.mailer_job_id = job_id
        message.mailer_status = MailerStatus(
            "queued", job_id, recipients=dict.fromkeys(recipients, "queued")
        )
        return True


def message_payload(message: EmailMessage) -> dict[str, Any]:
    """The `POST /queue` body for a Django message.

    Raises:
        UnsupportedMessage: more than one Reply-To, or an alternative other than HTML or
            plain text.
    """
    headers = dict(message.extra_headers)
    sender = headers.pop("From", None) or message.from_email or settings.DEFAULT_FROM_EMAIL
    reply_to = [headers.pop("Reply-To")] if "Reply-To" in headers else list(message.reply_to)
    payload: dict[str, Any] = {"from": address(str(sender)), "subject": message.subject}
    for kind in ("to", "cc", "bcc"):
        values = getattr(message, kind)
        if values:
            payload[kind] = [address(str(value)) for value in values]
    if len(reply_to) > 1:
        raise UnsupportedMessage("Mailer sends one Reply-To address")
    if reply_to:
        payload["reply_to"] = address(str(reply_to[0]))
    payload.update(_bodies(message))
    if headers:
        payload["headers"] = {str(name): str(value) for name, value in headers.items()}
    attachments = [_attachment(item) for item in message.attachments]
    if attachments:
        payload["attachments"] = attachments
    payload.update(_anymail_attributes(message))
    return payload


def _bodies(message: EmailMessage) -> dict[str, str]:
    bodies: dict[str, str] = {}
    if message.body:
        bodies["html" if message.content_subtype == "html" else "text"] = message.body
    for content, mimetype in getattr(message, "alternatives", []):
        kind = {"text/html": "html", "text/plain": "text"}.get(mimetype)
        if kind is None or kind in bodies:
            raise UnsupportedMessage(f"Mailer sends one text and one HTML body, not {mimetype}")
        bodies[kind] = content.decode() if isinstance(content, bytes) else str(content)
    if not bodies:
        bodies["text"] = ""
    return bodies


def _attachment(item: Any) -> dict[str, str]:
    """One attachment: a MIME part (inline when it has a Content-ID), or Django's
    (filename, content, mimetype)."""
    if isinstance(item, Message):
        raw = item.get_payload(decode=True)
        content = raw if isinstance(raw, bytes) else str(item.get_payload()).encode()
        result = {
            "filename": item.get_filename() or "attachment",
            "content_type": item.get_content_type(),
            "content": base64.b64encode(content).decode("ascii"),
        }
        content_id = item.get("Content-ID")
        if content_id:
            result["content_id"] = str(content_id).strip().removeprefix("<").removesuffix(">")
            if result["filename"] == "attachment":
                result["filename"] = result["content_id"]
        return result
    filename, content, mimetype = item
    data = content.encode() if isinstance(content, str) else bytes(content)
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    return {
        "filename": filename or "attachment",
        "content_type": mimetype or guessed or DEFAULT_ATTACHMENT_TYPE,
        "content": base64.b64encode(data).decode("ascii"),
    }


def _anymail_attributes(message: EmailMessage) -> dict[str, Any]:
    """The extra attributes django-anymail users set on messages, as Mailer's fields."""
    extra: dict[str, Any] = {}
    metadata = getattr(message, "metadata", None)
    if metadata is not None:
        extra["metadata"] = dict(metadata)
    tags = getattr(message, "tags", None)
    if tags:
        extra["tags"] = list(tags)
    for name in ("track_opens", "track_clicks"):
        value = getattr(message, name, None)
        if value is not None:
            extra[name] = "enabled" if value else "disabled"
    send_at = getattr(message, "send_at", None)
    if isinstance(send_at, datetime):
        extra["send_at"] = send_at.isoformat()
    esp_extra = getattr(message, "esp_extra", None)
    if esp_extra:
        extra.update(esp_extra)
    return extra

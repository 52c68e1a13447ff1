"""A submitted MIME message as the body `POST /queue` takes: addresses from the headers,
envelope recipients missing from To/Cc as Bcc, text and HTML bodies, attachments and inline
parts (Content-ID), Reply-To and custom headers."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from mailer.delivery.email import FORBIDDEN_HEADERS

# Headers that describe the message's structure or routing, which Mailjet sets itself:
# not passed on as custom headers. Headers Mailjet refuses are dropped too (mail clients
# add Date, Message-ID, User-Agent, X-Mailer on their own).
_STRUCTURAL = frozenset(
    h.lower()
    for h in (
        "From Sender To Cc Bcc Reply-To Subject Date Message-ID MIME-Version Content-Type "
        "Content-Transfer-Encoding Content-Disposition Content-ID Content-Description "
        "Return-Path Received Delivered-To"
    ).split()
)


# Tags of the email, as `tags` of `POST /queue`: one header per tag, or several
# comma-separated (as Mailgun's X-Mailgun-Tag); not passed on to Mailjet.
TAG_HEADER = "x-mailer-tag"


class UnsupportedMessage(ValueError):
    """The message cannot be sent as one Mailer email; the text says why."""


def parse_message(raw: bytes) -> EmailMessage:
    """Parse the DATA of a submission."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def queue_body(message: EmailMessage, mail_from: str, rcpt_tos: Sequence[str]) -> dict[str, Any]:
    """The `POST /queue` body for a submitted message and its envelope.

    Raises:
        UnsupportedMessage: several From or Reply-To addresses, or a body that cannot be
            decoded.
    """
    senders = _addresses(message, "From")
    if len(senders) > 1:
        raise UnsupportedMessage("give one From address")
    body: dict[str, Any] = {"from": senders[0] if senders else {"email": mail_from}}
    to, cc = _addresses(message, "To"), _addresses(message, "Cc")
    listed = {a["email"].lower() for a in to + cc}
    bcc = []
    for rcpt in rcpt_tos:
        if rcpt.lower() not in listed:
            listed.add(rcpt.lower())
            bcc.append({"email": rcpt})
    body["to"] = to
    if cc:
        body["cc"] = cc
    if bcc:
        body["bcc"] = bcc
    reply_to = _addresses(message, "Reply-To")
    if len(reply_to) > 1:
        raise UnsupportedMessage("Mailer sends one Reply-To address")
    if reply_to:
        body["reply_to"] = reply_to[0]
    subject = message.get("Subject")
    if subject is not None:
        body["subject"] = str(subject)
    body.update(_parts(message))
    headers = _custom_headers(message)
    if headers:
        body["headers"] = headers
    tags = _tags(message)
    if tags:
        body["tags"] = tags
    return body


def _tags(message: Message) -> list[str]:
    values = message.get_all(TAG_HEADER) or []
    return [t.strip() for value in values for t in str(value).split(",") if t.strip()]


def _addresses(message: Message, name: str) -> list[dict[str, str]]:
    values = message.get_all(name) or []
    found = []
    for header in values:
        mailboxes = getattr(header, "addresses", None)
        if mailboxes is not None:
            for mailbox in mailboxes:
                if isinstance(mailbox, HeaderAddress) and mailbox.addr_spec:
                    found.append(_address(mailbox.addr_spec, mailbox.display_name))
            continue
        for display, email in getaddresses([str(header)]):
            if email:
                found.append(_address(email, display))
    return found


def _address(email: str, name: str) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _parts(message: EmailMessage) -> dict[str, Any]:
    """The text and HTML bodies (the first inline ones) and every other leaf as an
    attachment; a leaf with a Content-ID that is not marked as attachment is inline."""
    found: dict[str, Any] = {}
    attachments: list[dict[str, str]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        disposition = part.get_content_disposition()
        content_id = part.get("Content-ID")
        key = {"text/plain": "text", "text/html": "html"}.get(kind)
        if key is not None and key not in found and disposition != "attachment" and not content_id:
            found[key] = _text(part)
            continue
        attachments.append(_attachment(part, kind, disposition, content_id))
    if attachments:
        found["attachments"] = attachments
    return found


def _text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, UnicodeDecodeError):
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    if not isinstance(content, str):
        raise UnsupportedMessage("a text part could not be decoded")
    return content


def _attachment(
    part: Message, kind: str, disposition: str | None, content_id: Any
) -> dict[str, str]:
    raw = part.get_payload(decode=True)
    data = raw if isinstance(raw, bytes) else b""
    result = {
        "filename": part.get_filename() or "",
        "content_type": kind,
        "content": base64.b64encode(data).decode("ascii"),
    }
    if content_id and disposition != "attachment":
        cid = str(content_id).strip().removeprefix("<").removesuffix(">")
        result["content_id"] = cid
        result["filename"] = result["filename"] or cid
    result["filename"] = result["filename"] or "attachment"
    return result


def _custom_headers(message: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in message.items():
        lowered = name.lower()
        if (
            lowered in _STRUCTURAL
            or lowered in FORBIDDEN_HEADERS
            or lowered == TAG_HEADER
            or lowered.startswith("content-")
        ):
            continue
        headers[name] = " ".join(str(value).split())
    return headers

"""Standard Webhooks (v1, HMAC-SHA256) signing for outbound webhooks.

The signed content is ``f"{msg_id}.{timestamp}."`` followed by the exact body bytes sent.
Secrets are shown to apps as ``whsec_<base64 of 32 random bytes>``. During a rotation every
valid secret signs, and the ``webhook-signature`` header lists one ``v1,<sig>`` per secret
separated by spaces; a receiver accepts the message if any entry matches its secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence

__all__ = [
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "generate_secret",
    "sign",
    "signature_header",
    "verify",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32
_VERSION = "v1"


class WebhookVerificationError(ValueError):
    """The webhook's headers are missing or malformed, stale, or no signature matches."""


def generate_secret() -> str:
    """Return a new endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return ``v1,<base64 HMAC-SHA256>`` over ``f"{msg_id}.{timestamp}."`` + ``body``.

    Args:
        secret: ``whsec_``-prefixed (or bare) base64 secret.
        msg_id: the ``webhook-id`` value; must not contain ``.`` (it would make the signed
            string ambiguous).
        timestamp: the ``webhook-timestamp`` value, Unix seconds of this attempt.
        body: exactly the bytes that will be sent.

    Raises:
        ValueError: the secret is not valid non-empty base64, ``msg_id`` is empty or
            contains ``.``, or ``timestamp`` is negative.
    """
    if not msg_id or "." in msg_id:
        raise ValueError("msg_id must be non-empty and must not contain '.'")
    if timestamp < 0:
        raise ValueError("timestamp must be non-negative Unix seconds")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_decode_secret(secret), signed, hashlib.sha256).digest()
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value: one signature per secret, space-separated.

    Pass every currently valid secret (new and, during rotation, old ones); duplicates are
    signed once.

    Raises:
        ValueError: ``secrets`` is empty, or as :func:`sign`.
    """
    if not secrets:
        raise ValueError("at least one secret is required")
    unique = dict.fromkeys(secrets)
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in unique)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> None:
    """Check a received webhook as a consumer would (header names are case-insensitive).

    Args:
        secret: the endpoint secret.
        headers: the request headers; ``webhook-id``, ``webhook-timestamp`` and
            ``webhook-signature`` are required.
        body: the raw request body.
        tolerance_s: maximum distance, either way, between the timestamp and ``now``.
        now: Unix time to check against (default: the current time).

    Raises:
        WebhookVerificationError: a header is missing or malformed, the timestamp is outside
            the tolerance, or no ``v1`` signature matches.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not Unix seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp outside the tolerance window")
    try:
        expected = sign(secret, msg_id, timestamp, body).encode()
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    matched = False
    for candidate in signatures.split():
        # Compare every entry (no early exit) with a constant-time comparison.
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise WebhookVerificationError("no matching signature")


def _decode_secret(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not valid base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key

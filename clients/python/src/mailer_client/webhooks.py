"""Verifying Mailer's webhooks (Standard Webhooks v1, HMAC-SHA256) with the standard library.

The signed content is ``f"{webhook-id}.{webhook-timestamp}."`` followed by the raw body.
``webhook-signature`` holds one or more space-separated ``v1,<base64>`` entries (two during
a secret rotation); a message is authentic if any entry matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["WebhookVerificationError", "verify_webhook"]

_PREFIX = "whsec_"


class WebhookVerificationError(ValueError):
    """The webhook is not authentic: a header is missing or malformed, the timestamp is too
    far from now (a replay), or no signature matches the secret."""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a received webhook and return its decoded JSON payload.

    Pass the raw body exactly as received, before any parsing.

    Args:
        secret: the endpoint's secret (``whsec_...``).
        headers: the request headers (names case-insensitive).
        body: the raw request body.
        tolerance_s: how far, either way, the timestamp may be from now.
        now: Unix time to check against (default: the clock).

    Raises:
        WebhookVerificationError: not authentic, or the body is not a JSON object.
    """
    raw = body.encode() if isinstance(body, str) else body
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookVerificationError("webhook-timestamp is not Unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    signed = f"{msg_id}.{stamp}.".encode() + raw
    expected = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Every entry is compared, in constant time, so timing reveals nothing.
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise WebhookVerificationError("no matching signature")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("the secret is not base64 (whsec_...)") from exc
    if not key:
        raise WebhookVerificationError("the secret is empty")
    return key

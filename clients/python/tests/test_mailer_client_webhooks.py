"""Webhook verification against signatures made by Mailer's own signer and by the
`standardwebhooks` package (both dev dependencies; the client itself needs neither)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest

from mailer_client import WebhookVerificationError, verify_webhook

signing = pytest.importorskip("mailer.webhooks.signing", reason="Mailer is not installed")
standardwebhooks = pytest.importorskip("standardwebhooks.webhooks")

BODY = b'{"type":"email.opened","timestamp":"2026-03-01T12:00:05Z","data":{"job_id":"j"}}'


def test_accepts_what_mailer_signs_including_during_rotation() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    now = int(time.time())
    headers = signing.webhook_headers([new, old], "evt_1", now, BODY)
    assert verify_webhook(new, headers, BODY)["type"] == "email.opened"
    assert verify_webhook(old, {k.upper(): v for k, v in headers.items()}, BODY)["data"] == {
        "job_id": "j"
    }


def test_accepts_what_standardwebhooks_signs() -> None:
    secret = signing.generate_secret()
    stamp = datetime.now(UTC).replace(microsecond=0)
    signature = standardwebhooks.Webhook(secret).sign("msg_2", stamp, BODY.decode())
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signature,
    }
    assert verify_webhook(secret, headers, BODY.decode())["type"] == "email.opened"


def test_what_it_accepts_standardwebhooks_accepts_too() -> None:
    secret = signing.generate_secret()
    headers = signing.webhook_headers([secret], "evt_3", int(time.time()), BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers)["type"] == "email.opened"
    verify_webhook(secret, headers, BODY)


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "secret", "stale", "future", "missing", "garbage"],
)
def test_refuses_what_is_not_authentic(tamper: str) -> None:
    secret = signing.generate_secret()
    now = int(time.time())
    headers = signing.webhook_headers([secret], "evt_4", now, BODY)
    body = BODY
    if tamper == "body":
        body = BODY.replace(b"opened", b"clicked")
    elif tamper == "id":
        headers["webhook-id"] = "evt_5"
    elif tamper == "secret":
        secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    elif tamper == "stale":
        headers = signing.webhook_headers([secret], "evt_4", now - 301, BODY)
    elif tamper == "future":
        headers = signing.webhook_headers([secret], "evt_4", now + 301, BODY)
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "garbage":
        headers["webhook-signature"] = "v1,!!!not-base64 v2,abc"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, headers, body)


def test_refuses_an_authentic_body_that_is_not_a_json_object() -> None:
    secret = signing.generate_secret()
    headers = signing.webhook_headers([secret], "evt_6", int(time.time()), b"[1]")
    with pytest.raises(WebhookVerificationError, match="not a JSON object"):
        verify_webhook(secret, headers, b"[1]")

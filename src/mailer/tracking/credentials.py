"""The basic-auth credentials that guard ``POST /events``.

Mailjet does not sign its callbacks; it sends HTTP basic auth when the registered URL embeds
``user:password@``. So the credentials come from ``MAILER_EVENTS_USER`` and
``MAILER_EVENTS_PASSWORD``. With the simulator (no Mailjet keys) random ones are made for
the run, so development needs no setup; with real Mailjet keys the API refuses to start
without them, since an open ``/events`` would let anyone rewrite delivery statuses and
suppress addresses.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets

from pydantic import SecretStr

from mailer.config import ConfigError, Settings

__all__ = ["basic_auth_matches", "ensure_event_credentials"]

log = logging.getLogger(__name__)


def ensure_event_credentials(settings: Settings) -> Settings:
    """``settings`` with event credentials: as configured, or generated for a simulator run.

    Raises:
        ConfigError: only one of the two is set, the user contains ``:``, or Mailjet keys
            are configured but the credentials are not.
    """
    user, password = settings.events_user, settings.events_password
    if user is not None and password is not None:
        if not user or ":" in user:
            raise ConfigError("MAILER_EVENTS_USER must be non-empty and must not contain ':'")
        if not password.get_secret_value():
            raise ConfigError("MAILER_EVENTS_PASSWORD must not be empty")
        return settings
    if user is not None or password is not None:
        raise ConfigError("set both MAILER_EVENTS_USER and MAILER_EVENTS_PASSWORD, or neither")
    if not settings.uses_simulator:
        raise ConfigError(
            "MAILER_EVENTS_USER and MAILER_EVENTS_PASSWORD must be set when Mailjet keys are "
            "configured: Mailjet posts tracking events to /events with these credentials "
            "embedded in the callback URL, and /events must not be open to anyone"
        )
    generated_user = "mailjet-" + secrets.token_hex(4)
    log.warning(
        "no MAILER_EVENTS_USER/MAILER_EVENTS_PASSWORD: generated random event-callback "
        "credentials for this run (set both to keep them stable)",
        extra={"action": "events_credentials_generated", "events_user": generated_user},
    )
    return settings.model_copy(
        update={
            "events_user": generated_user,
            "events_password": SecretStr(secrets.token_urlsafe(24)),
        }
    )


def basic_auth_matches(authorization: str | None, user: str, password: str) -> bool:
    """Whether an ``Authorization`` header carries exactly these basic-auth credentials.

    Both parts are compared in constant time, and both always, so the answer's timing does
    not tell which part was wrong.
    """
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, sep, given_password = decoded.partition(b":")
    if not sep:
        return False
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    return user_ok & password_ok

"""What an API key may do: its scopes, and the sender domains of its app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

SEND = "send"
READ = "read"
WEBHOOKS = "webhooks"
# Each scope and what it opens: `send` POST /queue and changes to the suppression list,
# `read` job status, the event feed and the suppression list, `webhooks` the endpoints.
SCOPES = (SEND, READ, WEBHOOKS)


@dataclass(frozen=True, slots=True)
class Grant:
    """A verified API key: its app, its id, its scopes, and the domains the app may send
    from (None: any)."""

    app_id: uuid.UUID
    key_id: uuid.UUID
    scopes: frozenset[str]
    sender_domains: frozenset[str] | None


class InvalidScope(ValueError):
    """A scope that is not one of `SCOPES`."""


def checked_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """`scopes` deduplicated in `SCOPES` order (all of them when none is given)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidScope(f"unknown scope {', '.join(unknown)}; use {', '.join(SCOPES)}")
    return [s for s in SCOPES if s in scopes] if scopes else list(SCOPES)


class InvalidDomain(ValueError):
    """A sender domain that is not a plain domain name."""


def checked_domain(value: str) -> str:
    """A sender domain, lower-cased; `InvalidDomain` unless it looks like `example.com`."""
    domain = value.strip().lower().rstrip(".")
    labels = domain.split(".")
    if (
        len(labels) < 2
        or len(domain) > 253
        or not all(
            0 < len(label) <= 63
            and label.replace("-", "").isalnum()
            and label.isascii()
            and not label.startswith("-")
            and not label.endswith("-")
            for label in labels
        )
    ):
        raise InvalidDomain(f"{value!r} is not a domain name (e.g. example.com)")
    return domain


def refused_sender(domains: frozenset[str] | None, address: str) -> str | None:
    """The domain of `address` when the app may not send from it, else None."""
    if domains is None:
        return None
    domain = address.rpartition("@")[2].lower()
    return None if domain in domains else domain

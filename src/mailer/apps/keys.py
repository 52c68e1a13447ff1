"""API keys: random, shown once, stored as a SHA-256 hash, checked in constant time.

A key reads `mk_<prefix>_<secret>`. The prefix finds the stored row; the hash of the
whole key must match. Keys carry 256 random bits, so a fast hash is the right one (a slow
password hash protects guessable secrets, and would cost every API call).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

_PREFIX_BYTES = 6
_SECRET_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: `plaintext` is shown to the user once, then forgotten."""

    prefix: str
    plaintext: str
    key_hash: bytes


def generate_key() -> NewKey:
    """Make a new random API key."""
    prefix = secrets.token_hex(_PREFIX_BYTES)
    plaintext = f"mk_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    return NewKey(prefix=prefix, plaintext=plaintext, key_hash=hash_key(plaintext))


def hash_key(plaintext: str) -> bytes:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode()).digest()


def prefix_of(plaintext: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one of ours."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != "mk" or len(parts[1]) != 2 * _PREFIX_BYTES:
        return None
    return parts[1]


def matches(plaintext: str, key_hash: bytes) -> bool:
    """Whether a presented key is the one stored as `key_hash` (constant time)."""
    return hmac.compare_digest(hash_key(plaintext), key_hash)


_LIFETIME = re.compile(r"^([1-9][0-9]{0,5})([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_lifetime(text: str) -> timedelta:
    """How long a key lives, written `90d`, `12h` or `30m`; ValueError otherwise."""
    match = _LIFETIME.match(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a lifetime: write it as 90d, 12h or 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})

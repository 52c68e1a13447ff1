"""Operators' passwords: generated once, stored as a salted scrypt hash, checked in constant time.

scrypt (stdlib `hashlib.scrypt`) is memory-hard, so a stolen table costs an attacker
16 MiB and a sixth of a second of CPU per guess. The stored form names its parameters
(`scrypt$N$r$p$salt$hash`), so they can be raised later without breaking older hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

__all__ = ["dummy_hash", "generate_password", "hash_password", "verify_password"]

# OWASP's minimum for scrypt, in the form that needs least memory: N=2^14, r=8, p=5
# (16 MiB, ~160 ms per hash on this project's 2-core machines).
_N, _R, _P = 2**14, 8, 5
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAXMEM = 64 * 1024 * 1024


def generate_password() -> str:
    """A new random password (128 bits, URL-safe), shown to the operator once."""
    return secrets.token_urlsafe(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_HASH_BYTES
    )


def hash_password(password: str) -> str:
    """The stored form of `password`: scrypt with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash (False for a malformed one)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@cache
def dummy_hash() -> str:
    """A hash no password matches, checked when the name is unknown, so that a wrong name
    takes as long to refuse as a wrong password."""
    return hash_password(generate_password())

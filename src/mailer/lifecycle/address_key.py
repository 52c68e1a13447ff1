"""The key that erased addresses are hashed with: HMAC-SHA256, so that a suppression can
outlive the address it suppresses and still block it, while a database dump alone cannot
tell which addresses they were (not even by hashing guesses: the key is not in it).

The key is random, made on first use and stored sealed with MAILER_SECRET_KEY in
``sealed_secrets`` (so rotating MAILER_SECRET_KEY re-seals it and every hash stays valid).
The claim computes the same HMAC in SQL from the key's two pads with PostgreSQL's built-in
``sha256``: ``sha256(outer_pad || sha256(inner_pad || address))`` is RFC 2104's HMAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.lifecycle.rows import SealedSecret
from mailer.vault import SecretBox

Q = Queries("mailer.lifecycle")

NAME = "address_hmac"
_BLOCK = 64  # SHA-256's block size


@dataclass(frozen=True)
class AddressKey:
    """The HMAC key of erased addresses."""

    key: bytes

    def digest(self, address: str) -> bytes:
        """HMAC-SHA256 of an address as Mailer stores it (lower-cased)."""
        return hmac.new(self.key, address.strip().lower().encode(), hashlib.sha256).digest()

    def pads(self) -> tuple[bytes, bytes]:
        """The key XORed with RFC 2104's inner and outer pads, for the HMAC in SQL."""
        block = self.key.ljust(_BLOCK, b"\0")
        return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


async def address_key(conn: Conn, box: SecretBox) -> AddressKey:
    """The key, made (and stored sealed) if there is none yet."""
    sealed = await conn.fetchval(Q.sealed_secret, NAME)
    if sealed is None:
        made = box.seal(base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
        await conn.execute(Q.add_sealed_secret, NAME, made)
        sealed = await conn.fetchval(Q.sealed_secret, NAME)  # the first writer's key wins
    return AddressKey(base64.b64decode(box.open(sealed)))


async def reseal(conn: Conn, box: SecretBox) -> int:
    """Re-seal Mailer's own secrets with the first key; return how many."""
    async with conn.transaction():
        names = await conn.fetch(Q.all_sealed_secrets, record_class=SealedSecret)
        for row in names:
            await conn.execute(Q.set_sealed_secret, row.name, box.reseal(row.sealed))
    return len(names)


async def erased_count(conn: Conn) -> int:
    """How many erased suppressions exist (they need MAILER_SECRET_KEY to hold)."""
    count: int = await conn.fetchval(Q.count_erased_suppressions)
    return count

"""Endpoint secrets at rest: sealed with :mod:`mailer.vault`, opened once per process.

``webhook_endpoints.secret`` and ``previous_secret`` hold Fernet tokens. Rows written before
secrets were sealed hold the clear ``whsec_…`` value: :func:`seal_clear_secrets` seals those
(each process runs it at start, and ``mailer secrets rotate`` does too). A migration cannot,
as it has no key. Until then the dispatcher signs with a clear value as it is, so a worker
started first keeps delivering.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailer.db.pool import Conn
from mailer.vault import SecretBox, SecretUnreadable
from mailer.webhooks.outbox import Q
from mailer.webhooks.rows import EndpointSecrets
from mailer.webhooks.signing import SECRET_PREFIX

__all__ = ["SecretOpener", "count_endpoints", "reseal_all", "seal_clear_secrets"]

_CACHE_LIMIT = 10_000


def is_clear(stored: str) -> bool:
    """Whether a stored secret is still the clear value (from before sealing)."""
    return stored.startswith(SECRET_PREFIX)


class SecretOpener:
    """Opens stored secrets for signing, each token once: opening costs a decryption, and
    the dispatcher signs every attempt. A rotation stores a new token, so the cache (keyed
    by token) never serves a stale secret."""

    def __init__(self, box: SecretBox | None) -> None:
        self._box = box
        self._opened: dict[str, str] = {}

    def open(self, stored: str) -> str:
        """The clear secret of a stored one; SecretUnreadable if it cannot be opened."""
        if is_clear(stored):
            return stored
        found = self._opened.get(stored)
        if found is not None:
            return found
        if self._box is None:
            raise SecretUnreadable("MAILER_SECRET_KEY is not set: endpoint secrets are sealed")
        clear = self._box.open(stored)
        if len(self._opened) >= _CACHE_LIMIT:
            self._opened.clear()
        self._opened[stored] = clear
        return clear

    def open_all(self, stored: Sequence[str]) -> list[str]:
        """:meth:`open` of each."""
        return [self.open(value) for value in stored]


async def count_endpoints(conn: Conn) -> int:
    """How many webhook endpoints exist (their secrets need MAILER_SECRET_KEY)."""
    count: int = await conn.fetchval(Q.count_endpoints)
    return count


async def seal_clear_secrets(conn: Conn, box: SecretBox) -> int:
    """Seal every secret still stored in clear; return how many endpoints changed."""
    async with conn.transaction():
        rows = await conn.fetch(Q.clear_endpoint_secrets, record_class=EndpointSecrets)
        for row in rows:
            await conn.execute(
                Q.set_endpoint_secrets,
                row.id,
                _sealed(box, row.secret),
                None if row.previous_secret is None else _sealed(box, row.previous_secret),
            )
    return len(rows)


async def reseal_all(conn: Conn, box: SecretBox) -> int:
    """Re-seal every endpoint secret with the first key (opening with any), sealing clear
    ones too; return how many endpoints were re-sealed. Raises SecretUnreadable, changing
    nothing, when one does not open."""
    async with conn.transaction():
        rows = await conn.fetch(Q.all_endpoint_secrets, record_class=EndpointSecrets)
        for row in rows:
            await conn.execute(
                Q.set_endpoint_secrets,
                row.id,
                _resealed(box, row.secret),
                None if row.previous_secret is None else _resealed(box, row.previous_secret),
            )
    return len(rows)


def _sealed(box: SecretBox, stored: str) -> str:
    return box.seal(stored) if is_clear(stored) else stored


def _resealed(box: SecretBox, stored: str) -> str:
    return box.seal(stored) if is_clear(stored) else box.reseal(stored)

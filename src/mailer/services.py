"""The long-lived objects one process shares: pool, enqueuer, key verifier."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from mailer.apps.store import KeyVerifier
from mailer.config import Settings
from mailer.db.pool import create_pool, use_statement_cache
from mailer.delivery.enqueue import Enqueuer
from mailer.vault import SecretBox, box_for
from mailer.webhooks.targets import TargetPolicy


@dataclass
class Services:
    """What request handlers need, created once per process."""

    settings: Settings
    pool: asyncpg.Pool
    enqueuer: Enqueuer
    keys: KeyVerifier
    targets: TargetPolicy
    box: SecretBox | None
    """Seals webhook secrets (None: no MAILER_SECRET_KEY with a DATABASE_URL)."""

    @classmethod
    async def open(cls, settings: Settings, dsn: str, *, pool_size: int = 10) -> Services:
        """Connect and start the background writers."""
        # Here too, not only in `runtime.database`: `mailer api --workers N` spawns processes.
        use_statement_cache(settings.statement_cache_size)
        pool = await create_pool(dsn, min_size=2, max_size=pool_size)
        # A quota set or cleared takes effect as fast as a key's new scopes do.
        enqueuer = Enqueuer(pool, quota_refresh_seconds=settings.key_cache_seconds)
        await enqueuer.start()
        return cls(
            settings,
            pool,
            enqueuer,
            KeyVerifier(pool, settings.key_cache_seconds),
            TargetPolicy(settings.webhook_networks),
            box_for(settings),
        )

    async def close(self) -> None:
        """Finish pending writes and close the pool."""
        await self.enqueuer.stop()
        await self.keys.close()
        await self.pool.close()

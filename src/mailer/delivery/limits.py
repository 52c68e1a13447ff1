"""Pause, sending rates and daily quotas per app: what an operator sets, and what the claim
and the enqueue read to enforce them.

Everything lives in the database, so every worker and API process shares one budget: a
paused app's jobs are not claimed, a rate-limited app's are claimed as its token bucket
allows (both in `claim_jobs`, one statement for all workers), and an app past its daily
quota is refused at enqueue (`count_accepted`, in the transaction that stores the jobs).
An app with none of these has no `app_limits` row and costs the claim nothing but a probe
of an empty table.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from mailer import audit
from mailer.audit import Actor
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.delivery.rows import AppIdRow, LimitsRow, ReleasedRow

Q = Queries("mailer.delivery")

__all__ = [
    "Hold",
    "QuotaApps",
    "QuotaExceeded",
    "clear_limits",
    "hold_of",
    "limits_of",
    "pause",
    "release_held",
    "resume",
    "seconds_until_next_utc_day",
    "set_limits",
]


@dataclass(frozen=True, slots=True)
class Hold:
    """Why an app's due jobs wait: `paused` (until resumed: `until` is None) or
    `rate_limited` (until its next email may go)."""

    reason: Literal["paused", "rate_limited"]
    until: datetime | None


class QuotaExceeded(Exception):
    """The app has used its daily quota; `retry_after` seconds until the UTC day ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("this app's daily quota is used up; it renews at 00:00 UTC")
        self.retry_after = retry_after


def seconds_until_next_utc_day(now: datetime) -> int:
    """Whole seconds (at least 1) from `now` to the next midnight UTC."""
    utc = now.astimezone(UTC)
    midnight = datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, math.ceil((midnight - utc).total_seconds()))


async def pause(conn: Conn, app_id: uuid.UUID, actor: Actor | None = None) -> datetime:
    """Stop claiming the app's jobs (they stay queued); answers since when it is paused.
    Audited, as every change below."""
    async with conn.transaction():
        paused_at: datetime = await conn.fetchval(Q.pause_app, app_id)
        await _audit(conn, actor, "app.paused", app_id)
    return paused_at


async def resume(conn: Conn, app_id: uuid.UUID, actor: Actor | None = None) -> int:
    """Claim the app's jobs again (at its rate, if it has one) and wake the workers;
    answers how many held jobs went straight back to the open queue."""
    async with conn.transaction():
        await conn.execute(Q.resume_app, app_id)
        await conn.execute(Q.drop_unlimited, app_id)
        await _audit(conn, actor, "app.resumed", app_id)
    return await _release(conn, app_id)


async def set_limits(
    conn: Conn,
    app_id: uuid.UUID,
    *,
    rate: float | None = None,
    daily: int | None = None,
    actor: Actor | None = None,
) -> None:
    """Give the app a sending rate (emails per second) and/or a daily quota (emails per UTC
    day, counted from today's jobs already stored); a value not given stays as it was."""
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ValueError("the rate must be a positive number of emails per second")
    if daily is not None and daily < 0:
        raise ValueError("the daily quota must be 0 or more emails")
    async with conn.transaction():
        if rate is not None:
            await conn.execute(Q.set_rate, app_id, rate)
        if daily is not None:
            await conn.execute(Q.set_daily_quota, app_id, daily)
            await conn.execute(Q.count_today, app_id)
        details = {"rate_per_second": rate, "daily_quota": daily}
        await _audit(conn, actor, "app.limits_set", app_id, details)
    await conn.execute(Q.notify_jobs)


async def clear_limits(conn: Conn, app_id: uuid.UUID, actor: Actor | None = None) -> None:
    """Remove the app's rate and quota (a pause stays); its held jobs go back at once."""
    async with conn.transaction():
        await conn.execute(Q.clear_limits, app_id)
        await conn.execute(Q.drop_unlimited, app_id)
        await _audit(conn, actor, "app.limits_cleared", app_id)
    await _release(conn, app_id)


async def _audit(
    conn: Conn,
    actor: Actor | None,
    action: str,
    app_id: uuid.UUID,
    details: dict[str, float | int | None] | None = None,
) -> None:
    await audit.record(
        conn, actor or Actor.cli(), action, app_id=app_id, target=str(app_id), details=details
    )


async def _release(conn: Conn, app_id: uuid.UUID | None) -> int:
    row = await conn.fetchrow(Q.release_held, app_id, record_class=ReleasedRow)
    assert row is not None  # an aggregate answers one row
    if row.released == 0:
        await conn.execute(Q.notify_jobs)  # a rate-limited app's bucket has work again
    return row.released


async def release_held(pool: asyncpg.Pool) -> int:
    """Put back in the open queue the held jobs of every app no longer paused or rate
    limited (the net under a claim that held a job while its app was being resumed)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(Q.release_held, None, record_class=ReleasedRow)
    assert row is not None
    return row.released


async def limits_of(conn: Conn, app_id: uuid.UUID) -> LimitsRow | None:
    """The app's pause, rate, quota and bucket, or None when it has none."""
    row: LimitsRow | None = await conn.fetchrow(Q.app_limits, app_id, record_class=LimitsRow)
    return row


async def hold_of(conn: Conn, app_id: uuid.UUID) -> Hold | None:
    """Why the app's due jobs are not being claimed right now, if they are held back: the
    `waiting` reason `/status` gives a queued, due job (None: they go as workers free up)."""
    row = await limits_of(conn, app_id)
    if row is None:
        return None
    return hold_at(
        row.now,
        paused=row.paused_at is not None,
        rate=row.rate_per_second,
        tokens=row.tokens,
        tokens_at=row.tokens_at,
    )


def hold_at(
    now: datetime, *, paused: bool, rate: float | None, tokens: float, tokens_at: datetime
) -> Hold | None:
    """The hold an app's pause or token bucket (`tokens` at `tokens_at`, refilling at
    `rate` up to one second's worth) puts on its due jobs at `now`."""
    if paused:
        return Hold("paused", None)
    if rate is None:
        return None
    available = min(max(rate, 1.0), tokens + (now - tokens_at).total_seconds() * rate)
    if available >= 1.0:
        return None
    return Hold("rate_limited", now + timedelta(seconds=(1.0 - available) / rate))


class QuotaApps:
    """Which apps have a daily quota, read at most every `refresh_seconds`: the enqueue
    counts only their emails, so an app without a quota pays a set lookup, no query. A
    quota set or cleared takes effect within `refresh_seconds`."""

    def __init__(self, pool: asyncpg.Pool, refresh_seconds: float = 10.0) -> None:
        self._pool = pool
        self._refresh_seconds = refresh_seconds
        self._apps: frozenset[uuid.UUID] = frozenset()
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def has_quota(self, app_id: uuid.UUID) -> bool:
        """Whether the app's emails count against a daily quota."""
        if time.monotonic() >= self._fresh_until:
            await self._refresh()
        return app_id in self._apps

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() < self._fresh_until:
                return  # another caller refreshed while this one waited
            rows = await self._pool.fetch(Q.quota_apps, record_class=AppIdRow)
            self._apps = frozenset(row.app_id for row in rows)
            self._fresh_until = time.monotonic() + self._refresh_seconds

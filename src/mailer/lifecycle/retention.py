"""Retention: expired data is removed by the workers, in the background, in small batches.

Periods (settings, an app may override the first two; see :class:`Periods`): email bodies
and attachments, jobs with their recipients and events, raw callback bodies, webhook
attempts and finished deliveries. Raw callbacks and webhook attempts are partitioned by
day: an expired day is dropped whole (:mod:`mailer.lifecycle.partitions`). Everything else
(and their rows no day partition holds) goes in batches: each
batch is one short statement over the oldest rows by the time-ordered primary key
(``LIMIT`` rows, a few milliseconds, no long lock), so sending goes on beside it and
autovacuum reuses the space freed (no bloat from one huge DELETE). One worker at a time
runs it (an advisory lock); a run that removed anything is audited.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from mailer import audit
from mailer.aio import cancel_and_wait
from mailer.audit import Actor
from mailer.config import Settings
from mailer.db.pool import Conn
from mailer.lifecycle import partitions
from mailer.lifecycle.address_key import Q
from mailer.lifecycle.rows import AppRetention, BodiesPassed, ExpiredJobs

log = logging.getLogger(__name__)

_START = uuid.UUID(int=0)
OVERRIDABLE = ("bodies_days", "jobs_days")


@dataclass(frozen=True)
class Periods:
    """How long data is kept, in days."""

    bodies_days: int = 30
    jobs_days: int = 400
    callbacks_days: int = 30
    webhook_attempts_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> Periods:
        """The periods the settings give (MAILER_RETENTION_*_DAYS)."""
        return cls(
            bodies_days=settings.retention_bodies_days,
            jobs_days=settings.retention_jobs_days,
            callbacks_days=settings.retention_callbacks_days,
            webhook_attempts_days=settings.retention_webhook_attempts_days,
        )

    def for_app(self, overrides: Mapping[str, Any] | None) -> Periods:
        """These periods with an app's overrides of bodies and jobs."""
        if not overrides:
            return self
        chosen = {k: int(v) for k, v in overrides.items() if k in OVERRIDABLE}
        return replace(self, **chosen)


def checked_overrides(bodies_days: int | None, jobs_days: int | None) -> dict[str, int]:
    """An app's overrides, each from 1 day to 100 years; ValueError naming a bad one."""
    given = {"bodies_days": bodies_days, "jobs_days": jobs_days}
    for name, days in given.items():
        if days is not None and not 1 <= days <= 36_500:
            raise ValueError(f"{name.replace('_days', '')}: give 1 to 36500 days")
    return {name: days for name, days in given.items() if days is not None}


@dataclass
class Removed:
    """What one run removed."""

    bodies: int = 0
    jobs: int = 0
    events: int = 0
    callbacks: int = 0
    callback_days: int = 0
    """Day partitions of raw callbacks dropped whole."""
    webhook_attempts: int = 0
    webhook_attempt_days: int = 0
    """Day partitions of webhook attempts dropped whole."""
    webhook_deliveries: int = 0

    @property
    def anything(self) -> bool:
        """Whether the run removed any row."""
        return any(asdict(self).values())


async def run_once(
    conn: Conn, periods: Periods, *, now: datetime, batch: int = 1000
) -> Removed | None:
    """One retention run on ``conn`` (None when another worker is running one); audited
    if it removed anything. Each batch commits on its own."""
    if not await conn.fetchval(Q.retention_lock):
        return None
    try:
        removed = await _run(conn, periods, now, batch)
        if removed.anything:
            await audit.record(
                conn, Actor.system("retention"), "retention.run", details=asdict(removed)
            )
    finally:
        await conn.fetchval(Q.retention_unlock)
    return removed


async def _run(conn: Conn, periods: Periods, now: datetime, batch: int) -> Removed:
    removed = Removed()
    for app in await conn.fetch(Q.app_retention, record_class=AppRetention):
        own = periods.for_app(app.retention)
        # Jobs first: a job that expires whole need not lose its bodies first.
        jobs, events = await _expire_jobs(conn, app.id, now - _days(own.jobs_days), batch)
        removed.jobs += jobs
        removed.events += events
        removed.bodies += await _remove_bodies(conn, app.id, now - _days(own.bodies_days), batch)
    removed.events += await _drain(
        conn, Q.expire_events_unlinked, batch, now - _days(periods.jobs_days)
    )
    # Whole expired days go; what no day partition holds (from before partitioning, or in
    # the default partition) goes row by row; then the coming days are made.
    callbacks_cutoff = now - _days(periods.callbacks_days)
    removed.callback_days += len(
        await partitions.drop_expired(conn, partitions.POSTS, callbacks_cutoff)
    )
    removed.callbacks += await _drain(conn, Q.expire_posts, batch, callbacks_cutoff)
    removed.callback_days += await partitions.drop_emptied_leftover(conn, partitions.POSTS)
    attempts_cutoff = now - _days(periods.webhook_attempts_days)
    removed.webhook_attempt_days += len(
        await partitions.drop_expired(conn, partitions.ATTEMPTS, attempts_cutoff)
    )
    removed.webhook_attempts += await _drain(conn, Q.expire_attempts, batch, attempts_cutoff)
    removed.webhook_attempt_days += await partitions.drop_emptied_leftover(
        conn, partitions.ATTEMPTS
    )
    await partitions.add_ahead(conn, now.date())
    # A finished delivery's remaining attempts (made after the cutoff) go with it, found by
    # their index on delivery_id.
    removed.webhook_deliveries += await _drain(conn, Q.expire_deliveries, batch, attempts_cutoff)
    return removed


async def _drain(conn: Conn, query: str, batch: int, cutoff: datetime) -> int:
    """Run a batch statement until it removes less than a whole batch."""
    total = 0
    while True:
        count = len(await conn.fetch(query, batch, cutoff))
        total += count
        if count < batch:
            return total
        await asyncio.sleep(0)  # let the others' statements in between batches


async def _expire_jobs(
    conn: Conn, app_id: uuid.UUID, cutoff: datetime, batch: int
) -> tuple[int, int]:
    jobs = events = 0
    while True:
        row = await conn.fetchrow(Q.expire_jobs, app_id, batch, cutoff, record_class=ExpiredJobs)
        assert row is not None
        jobs += row.jobs
        events += row.events
        if row.jobs < batch:
            return jobs, events
        await asyncio.sleep(0)


async def _remove_bodies(conn: Conn, app_id: uuid.UUID, cutoff: datetime, batch: int) -> int:
    upto = await conn.fetchval(Q.bodies_progress, app_id) or _START
    stripped = 0
    while True:
        row = await conn.fetchrow(
            Q.remove_bodies, app_id, upto, batch, cutoff, record_class=BodiesPassed
        )
        assert row is not None
        stripped += row.count
        if row.upto is None:
            return stripped
        upto = row.upto
        await conn.execute(Q.save_bodies_progress, app_id, upto)
        await asyncio.sleep(0)


def _days(days: int) -> timedelta:
    return timedelta(days=days)


class Retention:
    """Runs retention every ``interval`` seconds in the background (0: never)."""

    def __init__(self, pool: asyncpg.Pool, periods: Periods, *, interval: float) -> None:
        self._pool = pool
        self._periods = periods
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Make the coming days' partitions, and start the loop (the first run comes after
        one interval)."""
        try:
            async with self._pool.acquire() as conn:
                await partitions.add_ahead(conn, datetime.now(UTC).date())
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning(
                "could not make the coming days' partitions; the next run tries again",
                extra={"action": "partitions_failed", "error": str(exc)},
            )
        if self._interval > 0:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; a batch in progress is cancelled (it is one statement)."""
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with self._pool.acquire() as conn:
                    removed = await run_once(conn, self._periods, now=datetime.now(UTC))
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "retention run failed; trying again later",
                    extra={"action": "retention_failed", "error": str(exc)},
                )
                continue
            if removed is not None and removed.anything:
                log.info(
                    "retention removed expired data",
                    extra={"action": "retention_run"} | asdict(removed),
                )


async def set_app_retention(
    conn: Conn, app_id: uuid.UUID, overrides: dict[str, int] | None, actor: Actor
) -> None:
    """Set (None: clear) an app's retention overrides, audited."""
    async with conn.transaction():
        await conn.execute(Q.set_app_retention, app_id, overrides or None)
        await audit.record(
            conn,
            actor,
            "app.retention_changed",
            app_id=app_id,
            target=str(app_id),
            details={"retention": overrides or None},
        )


__all__ = ["Periods", "Removed", "Retention", "run_once", "set_app_retention"]

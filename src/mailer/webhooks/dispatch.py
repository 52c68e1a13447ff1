"""The webhook dispatcher: claim due deliveries, POST them signed, record what happened.

Deliveries are claimed like jobs (``FOR UPDATE SKIP LOCKED``), and the claim commits before
any request: it pushes the delivery's ``next_attempt_at`` forward by the lease, so if this
process dies mid-request the delivery simply becomes due again when the lease ends
(at-least-once; receivers deduplicate on ``webhook-id``). The result is written in a second
short transaction: the attempt log, the delivery's next state, and the endpoint's health.

Per attempt: connect timeout 5 s, 15 s in all, redirects not followed, the first 2 KB of the
answer kept. Any 2xx is a success. Otherwise the next attempt follows
:mod:`mailer.webhooks.schedule` (``Retry-After`` honoured on 429/503); 410 Gone disables the
endpoint at once, and so does a run of failures lasting :data:`DISABLE_AFTER`.

Time comes from an injectable clock, so tests drive the retry schedule and "five days of
failures" without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from mailer.delivery.wakeup import Wakeup, finish_claim_loop
from mailer.ids import uuid7
from mailer.webhooks.outbox import Q
from mailer.webhooks.schedule import DISABLE_AFTER, next_attempt_delay, parse_retry_after
from mailer.webhooks.signing import webhook_headers

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

RESPONSE_KEEP_BYTES = 2048


def system_clock() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class DispatcherOptions:
    """How a dispatcher paces itself."""

    concurrency: int = 16
    lease_seconds: float = 60.0
    poll_interval: float = 2.0
    connect_timeout: float = 5.0
    total_timeout: float = 15.0


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this dispatcher."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: str
    body: str
    attempt: int
    manual: bool
    url: str
    secrets: list[str]


@dataclass(frozen=True)
class Answer:
    """What one attempt got back: a status, or an error when no answer came."""

    status: int | None
    duration_ms: int
    response: str | None = None
    error: str | None = None
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        """Any 2xx is a success."""
        return self.status is not None and 200 <= self.status < 300


class Dispatcher:
    """One process's webhook delivery loop (several may run against one database)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        wakeup: Wakeup | None = None,
        options: DispatcherOptions = DispatcherOptions(),
        *,
        clock: Clock = system_clock,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._wakeup = wakeup
        self._options = options
        self._clock = clock
        self._rng = rng or random.Random()
        self.dispatcher_id = f"{socket.gethostname()}:{os.getpid()}:wh:{uuid7().hex[-8:]}"
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> Dispatcher:
        self._open_session()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=self._options.total_timeout, sock_connect=self._options.connect_timeout
            )
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        return self._session

    async def start(self) -> None:
        """Start delivering in the background."""
        self._open_session()
        self._main = asyncio.create_task(self._loop())
        log.info("webhook dispatcher started", extra={"action": "webhooks_started"})

    async def stop(self) -> None:
        """Stop claiming, let attempts in flight finish and record, close the HTTP session."""
        self._stopping.set()
        if self._wakeup is not None:
            self._wakeup.event.set()
        if self._main is not None:
            await finish_claim_loop(self._main, within=self._options.lease_seconds)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now and deliver it; return how many were attempted."""
        claimed = await self.claim(limit or self._options.concurrency)
        await asyncio.gather(*(self.deliver(c) for c in claimed))
        return len(claimed)

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries (committed before any request)."""
        rows = await self._pool.fetch(
            Q.claim, limit, self._clock(), self.dispatcher_id, self._options.lease_seconds
        )
        return [
            Claimed(
                id=r["id"],
                endpoint_id=r["endpoint_id"],
                event_id=r["event_id"],
                body=r["body"],
                attempt=r["attempts"],
                manual=r["manual"],
                url=r["url"],
                secrets=list(r["secrets"]),
            )
            for r in rows
        ]

    async def deliver(self, delivery: Claimed) -> None:
        """Make one attempt and record it (a failure to record leaves it to the lease)."""
        answer = await self.post(delivery)
        try:
            await self._record(delivery, answer)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("recording a webhook attempt failed", extra={"action": "wh_record"})

    async def post(self, delivery: Claimed) -> Answer:
        """Send the delivery's body, signed with every valid secret; never raises."""
        body = delivery.body.encode()
        stamp = int(self._clock().timestamp())
        headers = webhook_headers(delivery.secrets, delivery.event_id, stamp, body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = "mailer-webhooks/1"
        started = time.monotonic()
        session = self._open_session()
        try:
            async with session.post(
                delivery.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(RESPONSE_KEEP_BYTES)
                return Answer(
                    status=resp.status,
                    duration_ms=_ms_since(started),
                    response=raw.decode("utf-8", errors="replace"),
                    retry_after=resp.headers.get("Retry-After"),
                )
        except TimeoutError:
            return Answer(None, _ms_since(started), error="timed out")
        except aiohttp.ClientError as exc:
            return Answer(None, _ms_since(started), error=f"{type(exc).__name__}: {exc}"[:500])

    async def _record(self, delivery: Claimed, answer: Answer) -> None:
        now = self._clock()
        state, next_at = "delivered", None
        if not answer.ok:
            retry_after = None
            if answer.status in (429, 503):
                retry_after = parse_retry_after(answer.retry_after, now=now)
            delay = None
            if not delivery.manual and answer.status != 410:
                delay = next_attempt_delay(delivery.attempt, retry_after=retry_after, rng=self._rng)
            if delay is None:
                state = "failed"
            else:
                state, next_at = "pending", now + timedelta(seconds=delay)
        error = answer.error
        if error is None and not answer.ok:
            error = f"HTTP {answer.status}"
        async with self._pool.acquire() as conn, conn.transaction():
            mine = await conn.fetchval(
                Q.record_result,
                delivery.id,
                state,
                next_at,
                now,
                answer.status,
                error,
                self.dispatcher_id,
            )
            if mine is None:
                return  # the lease ran out and another dispatcher took it over
            await conn.execute(
                Q.log_attempt,
                delivery.id,
                delivery.endpoint_id,
                delivery.event_id,
                delivery.attempt,
                answer.status,
                answer.duration_ms,
                error,
                answer.response,
                now,
            )
            if answer.ok:
                await conn.execute(Q.endpoint_succeeded, delivery.endpoint_id)
                return
            row = await conn.fetchrow(Q.endpoint_failed, delivery.endpoint_id, now)
            reason = None
            if answer.status == 410:
                reason = "the endpoint answered 410 Gone"
            elif row is not None and now - row["first_failure_at"] >= DISABLE_AFTER:
                since = row["first_failure_at"].isoformat()
                reason = f"every delivery failed for {DISABLE_AFTER.days} days (since {since})"
            if reason is not None:
                await conn.execute(Q.disable_endpoint, delivery.endpoint_id, reason, now)
                log.warning(
                    "webhook endpoint disabled",
                    extra={"action": "wh_disabled", "endpoint": str(delivery.endpoint_id)},
                )

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                full = await self._claim_and_start()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "webhook claim failed; retrying",
                    extra={"action": "wh_claim_failed", "error": type(exc).__name__},
                )
                await asyncio.sleep(1.0)
                continue
            if not full and not self._stopping.is_set():
                await self._idle()

    async def _claim_and_start(self) -> bool:
        free = self._options.concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return True
        if self._wakeup is not None:
            self._wakeup.event.clear()
        claimed = await self.claim(free)
        for delivery in claimed:
            task = asyncio.create_task(self.deliver(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed) == free

    async def _idle(self) -> None:
        timeout = self._options.poll_interval
        due = await self._pool.fetchval(Q.next_due)
        if due is not None:
            timeout = min(timeout, max(0.0, (due - self._clock()).total_seconds()))
        if self._wakeup is None:
            await asyncio.sleep(timeout)
        else:
            await self._wakeup.wait(timeout)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

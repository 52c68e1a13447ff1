"""The webhook dispatcher: claim due deliveries, POST them signed, record what happened.

Deliveries are claimed like jobs (``FOR UPDATE SKIP LOCKED``), and the claim commits before
any request: it pushes the delivery's ``next_attempt_at`` forward by the lease, so if this
process dies mid-request the delivery simply becomes due again when the lease ends
(at-least-once; receivers deduplicate on ``webhook-id``). The result is written in a second
short transaction: the attempt log, the delivery's next state, and the endpoint's health.

Per attempt: connect timeout 5 s, 15 s in all, redirects not followed, the first 2 KB of the
answer kept, and only to the addresses :mod:`mailer.webhooks.targets` allows (checked on the
address connected to: an IP literal here, a name in the session's resolver). Any 2xx is a
success. Otherwise the next attempt follows :mod:`mailer.webhooks.schedule` (``Retry-After``
honoured on 429/503); 410 Gone disables the endpoint at once, and so does a run of failures
lasting :data:`DISABLE_AFTER`.

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
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from mailer.ids import uuid7
from mailer.metrics import count
from mailer.ops.activity import ACTIVITY
from mailer.queue.loop import (
    DATABASE_ERRORS,
    Claim,
    ClaimLoop,
    Clock,
    LoopOptions,
    Work,
    system_clock,
)
from mailer.queue.retry_after import parse_retry_after
from mailer.queue.wakeup import Signal
from mailer.vault import SecretBox, SecretUnreadable
from mailer.webhooks.outbox import Q
from mailer.webhooks.rows import ClaimedDelivery, FailureRun
from mailer.webhooks.schedule import DISABLE_AFTER, next_attempt_delay
from mailer.webhooks.sealed import SecretOpener
from mailer.webhooks.signing import webhook_headers
from mailer.webhooks.targets import CheckedResolver, TargetPolicy

log = logging.getLogger(__name__)

RESPONSE_KEEP_BYTES = 2048


CONNECT_TIMEOUT_S = 5.0
"""Per attempt: the connection within 5 s ..."""
TOTAL_TIMEOUT_S = 15.0
"""... and the whole answer within 15 s."""

DEFAULT_PACING = LoopOptions(concurrency=16, lease_seconds=60.0, poll_interval=2.0)
"""Attempts in flight at once, how long a claim lasts, the longest idle sleep."""


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
    """One process's webhook delivery loop (several may run against one database).

    ``box`` opens the endpoints' sealed secrets (None: only clear ones from before sealing
    can sign); ``targets`` says where deliveries may go (default: public addresses only).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        signal: Signal | None = None,
        options: LoopOptions = DEFAULT_PACING,
        *,
        clock: Clock = system_clock,
        rng: random.Random | None = None,
        targets: TargetPolicy | None = None,
        box: SecretBox | None,
    ) -> None:
        self._pool = pool
        self._targets = targets or TargetPolicy()
        self._secrets = SecretOpener(box)
        self._options = options
        self._clock = clock
        self._rng = rng or random.Random()
        self.dispatcher_id = f"{socket.gethostname()}:{os.getpid()}:wh:{uuid7().hex[-8:]}"
        self._session: aiohttp.ClientSession | None = None
        # An expired lease needs no recovery: the claim takes a delivery whose
        # `next_attempt_at` (pushed forward by the lease) has passed.
        self.loop = ClaimLoop(
            "webhooks",
            claim=self._claim,
            next_due=lambda: self._pool.fetchval(Q.next_due),
            signal=signal,
            options=options,
            clock=clock,
        )

    async def __aenter__(self) -> Dispatcher:
        self._open_session()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S)
            connector = aiohttp.TCPConnector(resolver=CheckedResolver(self._targets))
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=True
            )
        return self._session

    async def start(self) -> None:
        """Start delivering in the background."""
        self._open_session()
        ACTIVITY.declare(["webhooks_delivered", "webhooks_failed"])
        self.loop.start()
        log.info("webhook dispatcher started", extra={"action": "webhooks_started"})

    async def stop(self) -> None:
        """Stop claiming, let attempts in flight finish and record, close the HTTP session."""
        await self.loop.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now and deliver it; return how many were attempted."""
        claimed = await self.claim(limit or self._options.concurrency)
        await asyncio.gather(*(self.deliver(c) for c in claimed))
        return len(claimed)

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries (committed before any request)."""
        return await self._pool.fetch(
            Q.claim,
            limit,
            self._clock(),
            self.dispatcher_id,
            self._options.lease_seconds,
            record_class=ClaimedDelivery,
        )

    async def deliver(self, delivery: ClaimedDelivery) -> None:
        """Make one attempt and record it (a failure to record leaves it to the lease)."""
        answer = await self.post(delivery)
        ACTIVITY.add("webhooks_delivered" if answer.ok else "webhooks_failed")
        try:
            recorded = await self._record(delivery, answer)
        except DATABASE_ERRORS:
            log.exception("recording a webhook attempt failed", extra={"action": "wh_record"})
            return
        if recorded is not None:
            self._count(delivery, *recorded)

    def _count(self, delivery: ClaimedDelivery, state: str, disabled: str | None) -> None:
        """The metrics of a recorded attempt: its outcome, the lag of a delivered one, and
        the endpoint it disabled."""
        if state == "delivered":
            lag = (self._clock() - delivery.created_at).total_seconds()
            count.webhook_delivery("delivered", lag)
        else:
            count.webhook_delivery("retrying" if state == "pending" else "failed")
        if disabled is not None:
            count.endpoint_disabled(disabled)

    async def post(self, delivery: ClaimedDelivery) -> Answer:
        """Send the delivery's body, signed with every valid secret; never raises."""
        body = delivery.body.encode()
        stamp = int(self._clock().timestamp())
        try:
            secrets = self._secrets.open_all(delivery.secrets)
        except SecretUnreadable as exc:
            return Answer(None, 0, error=str(exc))
        headers = webhook_headers(secrets, delivery.event_id, stamp, body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = "mailer-webhooks/1"
        started = time.monotonic()
        session = self._open_session()
        refused = self._targets.literal_refusal(urlsplit(delivery.url).hostname or "")
        if refused is not None:
            return Answer(None, 0, error=refused)
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

    async def _record(
        self, delivery: ClaimedDelivery, answer: Answer
    ) -> tuple[str, str | None] | None:
        """Write the attempt; return the delivery's new state and, if the endpoint was
        disabled, why (gone, failing); None if another dispatcher took the delivery over."""
        now = self._clock()
        state, next_at = "delivered", None
        if not answer.ok:
            retry_after = None
            if answer.status in (429, 503):
                retry_after = parse_retry_after(answer.retry_after, now=now)
            delay = None
            if not delivery.manual and answer.status != 410:
                delay = next_attempt_delay(
                    delivery.attempts, retry_after=retry_after, rng=self._rng
                )
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
                return None  # the lease ran out and another dispatcher took it over
            await conn.execute(
                Q.log_attempt,
                delivery.id,
                delivery.endpoint_id,
                delivery.event_id,
                delivery.attempts,
                answer.status,
                answer.duration_ms,
                error,
                answer.response,
                now,
            )
            if answer.ok:
                await conn.execute(Q.endpoint_succeeded, delivery.endpoint_id)
                return state, None
            run = await conn.fetchrow(
                Q.endpoint_failed, delivery.endpoint_id, now, record_class=FailureRun
            )
            reason = disabled = None
            if answer.status == 410:
                reason, disabled = "the endpoint answered 410 Gone", "gone"
            elif run is not None and now - run.first_failure_at >= DISABLE_AFTER:
                since = run.first_failure_at.isoformat()
                reason = f"every delivery failed for {DISABLE_AFTER.days} days (since {since})"
                disabled = "failing"
            if reason is not None:
                changed = await conn.execute(Q.disable_endpoint, delivery.endpoint_id, reason, now)
                disabled = disabled if changed == "UPDATE 1" else None
                log.warning(
                    "webhook endpoint disabled",
                    extra={"action": "wh_disabled", "endpoint": str(delivery.endpoint_id)},
                )
            return state, disabled

    async def _claim(self, places: int) -> Claim:
        claimed = await self.claim(places)
        return Claim([Work(run=partial(self.deliver, c)) for c in claimed], len(claimed) == places)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

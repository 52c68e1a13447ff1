"""The webhook dispatcher: claim due deliveries, POST them signed, record what happened.

Deliveries are claimed like jobs (``FOR UPDATE SKIP LOCKED``), and the claim commits before
any request: it pushes the delivery's ``next_attempt_at`` forward by the lease, so if this
process dies mid-request the delivery simply becomes due again when the lease ends
(at-least-once; receivers deduplicate on ``webhook-id``). The result is written in a second
statement (:data:`mailer.webhooks.outbox.Q` ``record_attempts``): the attempt log, the
delivery's next state, and the endpoint's health, for every attempt that ended while the
previous write was in flight (group commit, as the send worker records its calls).

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from mailer.db.coalesce import Coalescer
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
    claiming_ahead,
    system_clock,
)
from mailer.queue.retry_after import parse_retry_after
from mailer.queue.wakeup import Signal
from mailer.vault import SecretBox, SecretUnreadable
from mailer.webhooks.outbox import Q
from mailer.webhooks.rows import ClaimedDelivery
from mailer.webhooks.schedule import DISABLE_AFTER, next_attempt_delay
from mailer.webhooks.sealed import SecretOpener
from mailer.webhooks.signing import webhook_headers
from mailer.webhooks.targets import CheckedResolver, TargetPolicy

log = logging.getLogger(__name__)

RESPONSE_KEEP_BYTES = 2048

_REFUSALS_KEPT = 4096
"""Endpoint URLs whose literal check is kept (then the cache starts again)."""


CONNECT_TIMEOUT_S = 5.0
"""Per attempt: the connection within 5 s ..."""
TOTAL_TIMEOUT_S = 15.0
"""... and the whole answer within 15 s."""

DEFAULT_PACING = claiming_ahead(16, lease_seconds=60.0, poll_interval=2.0)
"""16 attempts in flight, 16 more claimed behind them (one claim serves many attempts); a
claim lasts 60 s, which covers an attempt's 15 s waiting behind another's 15 s."""


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


@dataclass(frozen=True)
class Attempted:
    """One attempt to record: the delivery, its answer, and what follows from it."""

    delivery: ClaimedDelivery
    answer: Answer
    state: str
    """pending (another attempt at ``next_at``), delivered or failed."""
    next_at: datetime | None
    at: datetime
    error: str | None


@dataclass(frozen=True)
class Recorded:
    """A recorded attempt: the delivery's new state, and why it disabled its endpoint."""

    state: str
    disabled: str | None


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
        self._refusals: dict[str, str | None] = {}
        # One writer: two at once contended in PostgreSQL (0.74 against 0.32 ms of its CPU
        # per delivery in the bench), and a larger group costs an attempt nothing now.
        self._recorder: Coalescer[Attempted, Recorded | None] = Coalescer(
            self._record_many, writers=1
        )
        self._recorder_running = False
        # An attempt gives its place in flight to the next one as soon as its answer is in;
        # its record is written behind it. At most this many answers wait for their record
        # (then the places in flight wait too), so claims never outrun the writes.
        self._unrecorded = asyncio.Semaphore(4 * options.concurrency)
        self._recording: set[asyncio.Task[None]] = set()
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
        await self._recorder.start()
        self._recorder_running = True
        ACTIVITY.declare(["webhooks_delivered", "webhooks_failed"])
        self.loop.start()
        log.info("webhook dispatcher started", extra={"action": "webhooks_started"})

    async def stop(self) -> None:
        """Stop claiming, let attempts in flight finish and record, close the HTTP session."""
        await self.loop.stop()
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)
        if self._recorder_running:
            self._recorder_running = False
            await self._recorder.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now, deliver it and record the results in one write; return how
        many were attempted."""
        claimed = await self.claim(limit or self._options.concurrency)
        answers = await asyncio.gather(*(self.post(c) for c in claimed))
        if not claimed:
            return 0
        batch = [self._outcome(c, a) for c, a in zip(claimed, answers, strict=True)]
        for attempted in batch:
            ACTIVITY.add("webhooks_delivered" if attempted.answer.ok else "webhooks_failed")
        for attempted, recorded in zip(batch, await self._record_many(batch), strict=True):
            if recorded is not None:
                self._count(attempted.delivery, recorded.state, recorded.disabled)
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

    async def _attempt(self, delivery: ClaimedDelivery) -> None:
        """The claim loop's unit: make one attempt, then leave its record to be written
        behind it (with the others that end meanwhile), so the place in flight is free
        again at once."""
        answer = await self.post(delivery)
        ACTIVITY.add("webhooks_delivered" if answer.ok else "webhooks_failed")
        attempted = self._outcome(delivery, answer)
        await self._unrecorded.acquire()
        task = asyncio.create_task(self._record_behind(attempted))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _record_behind(self, attempted: Attempted) -> None:
        try:
            recorded = await self._recorder.submit(attempted)
        except DATABASE_ERRORS:
            # Not lost: the lease ends and the delivery is attempted again.
            log.exception("recording a webhook attempt failed", extra={"action": "wh_record"})
            return
        finally:
            self._unrecorded.release()
        if recorded is not None:
            self._count(attempted.delivery, recorded.state, recorded.disabled)

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
        refused = self._literal_refusal(delivery.url)
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

    def _literal_refusal(self, url: str) -> str | None:
        """Why the URL's host, an IP literal, is refused (None: allowed, or a name), kept
        per URL: the policy is fixed, and parsing the URL and the address cost each attempt
        more than its signature did."""
        try:
            return self._refusals[url]
        except KeyError:
            pass
        if len(self._refusals) >= _REFUSALS_KEPT:
            self._refusals.clear()
        refused = self._targets.literal_refusal(urlsplit(url).hostname or "")
        self._refusals[url] = refused
        return refused

    def _outcome(self, delivery: ClaimedDelivery, answer: Answer) -> Attempted:
        """What the attempt means for the delivery: its next state (and when, if pending)."""
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
        return Attempted(delivery, answer, state, next_at, now, error)

    async def _record_many(self, batch: Sequence[Attempted]) -> list[Recorded | None]:
        """Write a batch of attempts in one statement; for each, the delivery's new state
        and, if it disabled the endpoint, why (gone, failing); None if another dispatcher
        took the delivery over after the lease ran out."""
        rows = await self._pool.fetch(
            Q.record_attempts,
            [a.delivery.id for a in batch],
            [a.state for a in batch],
            [a.next_at for a in batch],
            [a.at for a in batch],
            [a.answer.status for a in batch],
            [a.error for a in batch],
            [a.answer.response for a in batch],
            [a.answer.duration_ms for a in batch],
            [a.delivery.attempts for a in batch],
            [a.delivery.endpoint_id for a in batch],
            [a.delivery.event_id for a in batch],
            self.dispatcher_id,
            DISABLE_AFTER.total_seconds(),
        )
        written = {row["delivery_id"]: row["disabled"] for row in rows}
        results: list[Recorded | None] = []
        for a in batch:
            if a.delivery.id not in written:
                results.append(None)  # the lease ran out and another dispatcher took it over
                continue
            disabled = written[a.delivery.id]
            if disabled is not None:
                log.warning(
                    "webhook endpoint disabled",
                    extra={"action": "wh_disabled", "endpoint": str(a.delivery.endpoint_id)},
                )
            results.append(Recorded(a.state, disabled))
        return results

    async def _release(self, claimed: Sequence[ClaimedDelivery]) -> None:
        """Give back claims not started (a draining dispatcher): due again at once."""
        await self._pool.execute(
            Q.release, [c.id for c in claimed], self.dispatcher_id, self._clock()
        )

    async def _claim(self, places: int) -> Claim:
        claimed = await self.claim(places)
        work = [
            Work(run=partial(self._attempt, c), give_back=partial(self._release, [c]))
            for c in claimed
        ]
        return Claim(work, len(claimed) == places)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

"""The send worker: claim due jobs, send them in packs through Mailjet, record the results.

Never a transaction across an HTTP call: the claim commits, the call runs, the result is
written in a second short transaction (shared with the calls that finished at the same
time). Several calls are in flight at once, bounded by a semaphore, and as many wait
claimed behind them, so one claim serves many calls. SIGTERM (via `stop()`) drains: calls
in flight finish and are recorded, claims not yet started are given back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.db.coalesce import Coalescer
from mailer.delivery import store
from mailer.delivery.batching import MAX_RECIPIENTS_PER_CALL, ClaimedJob, pack
from mailer.delivery.send import Sender
from mailer.delivery.wakeup import Wakeup, finish_claim_loop
from mailer.ids import uuid7

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker paces itself; defaults suit one process on a small machine."""

    concurrency: int = 16
    claim_batch: int = 500
    lease_seconds: float = 120.0
    poll_interval: float = 2.0


class Worker:
    """One worker process's send loop (several may run against one database)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: Sender,
        wakeup: Wakeup,
        options: WorkerOptions = WorkerOptions(),
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._wakeup = wakeup
        self._options = options
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid7().hex[-8:]}"
        self._slots = asyncio.Semaphore(options.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._recorder = Recorder(pool, self.worker_id)

    async def start(self) -> None:
        """Start claiming and sending in the background."""
        await self._recorder.start()
        self._main = asyncio.create_task(self._loop())
        self._reaper = asyncio.create_task(self._reap_loop())
        log.info("worker started", extra={"action": "worker_started", "worker": self.worker_id})

    async def stop(self) -> None:
        """Drain: stop claiming, let calls in flight finish and record, release the rest."""
        self._stopping.set()
        self._wakeup.event.set()
        await cancel_and_wait(self._reaper)
        if self._main is not None:
            await finish_claim_loop(self._main, within=self._options.lease_seconds)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._recorder.stop()
        log.info("worker stopped", extra={"action": "worker_stopped", "worker": self.worker_id})

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = await self._claim_and_dispatch()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "claim failed; retrying",
                    extra={"action": "claim_failed", "error": type(exc).__name__},
                )
                await asyncio.sleep(1.0)
                continue
            if not busy and not self._stopping.is_set():
                await self._idle()

    async def _claim_and_dispatch(self) -> bool:
        """Claim what free slots can take; True when the claim came back full."""
        free = self._free_slots()
        if free < max(1, self._options.concurrency // 2):
            # Wait for calls to finish, so that the next claim is worth several calls.
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return True
        self._wakeup.event.clear()
        limit = min(self._options.claim_batch, free * MAX_RECIPIENTS_PER_CALL)
        jobs = await store.claim(
            self._pool,
            limit=limit,
            lease_seconds=self._options.lease_seconds,
            worker_id=self.worker_id,
        )
        for call in pack(jobs):
            task = asyncio.create_task(self._run_call(call))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(jobs) == limit

    def _free_slots(self) -> int:
        # Up to `concurrency` calls wait, claimed, behind those being sent: a slot that frees
        # up finds its next call ready, and one claim serves many calls instead of one.
        return max(0, 2 * self._options.concurrency - len(self._in_flight))

    async def _idle(self) -> None:
        if self._wakeup.event.is_set():
            # Notified while claiming: claim again at once, without asking when work is due.
            return
        # Already listening while asking when work is next due: a notification that comes
        # during the query wakes the worker at once (under load the query took ~1.6 ms,
        # after half the claims). The query then finishes on its own; its answer is moot.
        asking = asyncio.create_task(store.next_due(self._pool))
        asking.add_done_callback(_consume_outcome)
        notified = asyncio.create_task(self._wakeup.event.wait())
        try:
            done, _ = await asyncio.wait(
                {asking, notified},
                timeout=self._options.poll_interval,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if asking not in done or notified in done:
                return
            due = asking.result()
            timeout = self._options.poll_interval
            if due is not None:
                timeout = min(timeout, max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await self._wakeup.wait(timeout)
        finally:
            notified.cancel()

    async def _run_call(self, jobs: Sequence[ClaimedJob]) -> None:
        async with self._slots:
            if self._stopping.is_set():
                await store.release(self._pool, [j.id for j in jobs], worker_id=self.worker_id)
                return
            try:
                outcome = await self._sender.process(jobs)
                await self._recorder.record(outcome)
            except Exception:
                # The lease will expire and the jobs be looked up, then retried: not lost.
                log.exception("recording a send failed", extra={"action": "record_failed"})

    async def _reap_loop(self) -> None:
        interval = min(15.0, max(1.0, self._options.lease_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                recovered = await store.recover_expired(self._pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                continue
            if recovered:
                log.warning(
                    "requeued jobs whose worker died",
                    extra={"action": "leases_recovered", "count": recovered},
                )
                self._wakeup.event.set()


def _consume_outcome(task: asyncio.Task[object]) -> None:
    # A query left to finish on its own may fail; its error is not news (the claim loop
    # meets any real trouble itself), but an unretrieved one would be logged as a bug.
    if not task.cancelled():
        task.exception()


class Recorder:
    """Records the outcomes of calls that finish together in one transaction (group commit),
    so a busy worker commits once per handful of calls, not once per call."""

    def __init__(self, pool: asyncpg.Pool, worker_id: str, *, writers: int = 2) -> None:
        self._pool = pool
        self._worker_id = worker_id
        # Both writers start at once (`spare_after=0`): a call keeps its send slot until its
        # outcome is recorded, so recording favours promptness over larger groups.
        self._coalescer: Coalescer[store.Outcome, None] = Coalescer(
            self._record_many, writers=writers, spare_after=0.0
        )

    async def start(self) -> None:
        """Start the writers."""
        await self._coalescer.start()

    async def stop(self) -> None:
        """Write what is pending, then stop the writers."""
        await self._coalescer.stop()

    async def record(self, outcome: store.Outcome) -> None:
        """Write one call's outcome; returns once it is committed."""
        await self._coalescer.submit(outcome)

    async def _record_many(self, outcomes: Sequence[store.Outcome]) -> list[None]:
        merged = store.Outcome()
        for outcome in outcomes:
            merged.merge(outcome)
        await store.record(self._pool, merged, worker_id=self._worker_id)
        return [None] * len(outcomes)

"""The claim loop every queue runs: claim what free places can take, run it, wait, drain.

A queue hands the loop three things of its own: how to claim up to ``n`` units (a claim is
one committed statement that leases its rows, ``FOR UPDATE SKIP LOCKED``), when work is
next due, and, where expired leases are not simply claimable again, how to recover them.
The loop keeps at most ``concurrency`` units running and ``ahead`` more waiting, claimed,
behind them (so one claim can serve many runs), claims again once ``min_free`` places are
free, and sleeps when the queue is empty until a notification (:class:`~.wakeup.Signal`),
the next due time, or the poll interval, whichever comes first.

Stopping drains: no more claims; units running finish; units still waiting are given back
(when the queue says how) rather than started. Nothing is cancelled between a committed
claim and the start of its work, so no claim is stranded until its lease ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.queue.wakeup import Signal

__all__ = ["Claim", "ClaimLoop", "Clock", "LoopOptions", "Work", "claiming_ahead", "system_clock"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What a claim or a due-time query raises while the database is away: retried, not fatal."""


def system_clock() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Work:
    """One claimed unit: ``run`` does it; ``give_back``, if given, returns it unstarted."""

    run: Callable[[], Awaitable[None]]
    give_back: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Claim:
    """What one claim got: the units to run, and whether the claim came back full."""

    work: Sequence[Work]
    full: bool


@dataclass(frozen=True)
class LoopOptions:
    """How a loop paces itself."""

    concurrency: int = 16
    """Units running at once."""
    ahead: int = 0
    """Units that may wait, claimed, behind those running."""
    min_free: int = 1
    """Claim only when at least this many places (running + ahead) are free."""
    lease_seconds: float = 60.0
    """How long a claim lasts; a stuck step is cancelled after this long when stopping."""
    poll_interval: float = 2.0
    """The longest an idle loop sleeps without a notification."""


def claiming_ahead(
    concurrency: int, *, lease_seconds: float, poll_interval: float = 2.0
) -> LoopOptions:
    """Pacing for a queue whose claims are worth batching: as many units wait, claimed,
    behind those running, and the loop claims again once half of all places are free, so
    a unit that finishes finds its successor ready and one claim serves many units."""
    return LoopOptions(
        concurrency=concurrency,
        ahead=concurrency,
        min_free=max(1, concurrency // 2),
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
    )


class ClaimLoop:
    """One process's loop over one queue (several may run against one database)."""

    def __init__(
        self,
        name: str,
        *,
        claim: Callable[[int], Awaitable[Claim]],
        next_due: Callable[[], Coroutine[Any, Any, datetime | None]],
        signal: Signal | None,
        options: LoopOptions,
        recover: Callable[[], Awaitable[int]] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.name = name
        self._claim = claim
        self._next_due = next_due
        self._recover = recover
        self._signal = signal
        self._options = options
        self._clock = clock
        self._running = asyncio.Semaphore(options.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Units claimed and not yet finished (running or waiting to run)."""
        return len(self._in_flight)

    def start(self) -> None:
        """Start claiming in the background (and recovering expired leases, if asked)."""
        self._main = asyncio.create_task(self._loop())
        if self._recover is not None:
            self._reaper = asyncio.create_task(self._reap_loop(self._recover))

    async def stop(self) -> None:
        """Drain: stop claiming, let running units finish, give back those not started."""
        self._stopping.set()
        if self._signal is not None:
            self._signal.event.set()
        await cancel_and_wait(self._reaper)
        if self._main is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._main), self._options.lease_seconds)
            except TimeoutError:
                await cancel_and_wait(self._main)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _loop(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                busy = await self._claim_and_start()
            except DATABASE_ERRORS as exc:
                # Once per outage, not once a second: the retries go on quietly.
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "claim failed; retrying every second",
                    extra={"action": "claim_failed", "queue": self.name, "error": _name(exc)},
                )
                failing = True
                await asyncio.sleep(1.0)
                continue
            if failing:
                failing = False
                log.info("claims resumed", extra={"action": "claims_resumed", "queue": self.name})
            if not busy and not self._stopping.is_set():
                await self._idle()

    async def _claim_and_start(self) -> bool:
        """Claim what free places can take and start it; True when there is more to do."""
        free = self._options.concurrency + self._options.ahead - len(self._in_flight)
        if free < max(1, self._options.min_free):
            # Wait for units to finish, so that the next claim is worth its round trip.
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return True
        if self._signal is not None:
            self._signal.event.clear()
        claim = await self._claim(free)
        for work in claim.work:
            task = asyncio.create_task(self._run(work))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return claim.full

    async def _run(self, work: Work) -> None:
        async with self._running:
            try:
                if self._stopping.is_set() and work.give_back is not None:
                    await work.give_back()
                else:
                    await work.run()
            except Exception:
                # The unit's lease will end and the queue's recovery take it up: not lost.
                log.exception("a claimed unit failed", extra={"action": "unit_failed"})

    async def _idle(self) -> None:
        """Sleep until notified, until work comes due, or for the poll interval."""
        if self._signal is not None and self._signal.event.is_set():
            # Notified while claiming: claim again at once, without asking when work is due.
            return
        # Already listening while asking when work is next due: a notification that comes
        # during the query wakes the loop at once (under load the query took ~1.6 ms, after
        # half the claims). The query then finishes on its own; its answer is moot.
        asking = asyncio.create_task(self._next_due())
        asking.add_done_callback(_consume_outcome)
        waiters: set[asyncio.Task[object]] = {asking}
        notified = None
        if self._signal is not None:
            notified = asyncio.create_task(self._signal.event.wait())
            waiters.add(notified)
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=self._options.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if asking not in done or (notified is not None and notified in done):
                return
            timeout = self._options.poll_interval
            due = None if asking.exception() is not None else asking.result()
            if due is not None:
                timeout = min(timeout, max(0.0, (due - self._clock()).total_seconds()))
            if self._signal is None:
                await asyncio.sleep(timeout)
            else:
                await self._signal.wait(timeout)
        finally:
            if notified is not None:
                notified.cancel()

    async def _reap_loop(self, recover: Callable[[], Awaitable[int]]) -> None:
        interval = min(15.0, max(1.0, self._options.lease_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                recovered = await recover()
            except DATABASE_ERRORS:
                continue
            if recovered:
                log.warning(
                    "requeued units whose lease ended",
                    extra={"action": "leases_recovered", "queue": self.name, "count": recovered},
                )
                if self._signal is not None:
                    self._signal.event.set()


def _consume_outcome(task: asyncio.Task[object]) -> None:
    # A query left to finish on its own may fail; its error is not news (the claim loop
    # meets any real trouble itself), but an unretrieved one would be logged as a bug.
    if not task.cancelled():
        task.exception()


def _name(exc: BaseException) -> str:
    return type(exc).__name__

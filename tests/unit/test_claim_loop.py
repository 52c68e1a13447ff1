"""The queue core's claim loop, driven by an in-memory queue (no I/O)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from mailer.queue.loop import Claim, ClaimLoop, LoopOptions, Work
from mailer.queue.wakeup import Signal


class MemoryQueue:
    """A queue of numbered units; each run waits until the test releases it."""

    def __init__(self, size: int) -> None:
        self.waiting = list(range(size))
        self.running: set[int] = set()
        self.most_running = 0
        self.done: list[int] = []
        self.given_back: list[int] = []
        self.claims: list[int] = []
        self.release = asyncio.Event()
        self.fail_claims = 0
        self.due: datetime | None = None

    async def claim(self, places: int) -> Claim:
        self.claims.append(places)
        if self.fail_claims:
            self.fail_claims -= 1
            raise OSError("database away")
        taken, self.waiting = self.waiting[:places], self.waiting[places:]
        work = [Work(run=partial(self.run, n), give_back=partial(self.give_back, n)) for n in taken]
        return Claim(work, full=len(taken) == places)

    async def next_due(self) -> datetime | None:
        return self.due

    async def run(self, n: int) -> None:
        self.running.add(n)
        self.most_running = max(self.most_running, len(self.running))
        await self.release.wait()
        self.running.discard(n)
        self.done.append(n)

    async def give_back(self, n: int) -> None:
        self.given_back.append(n)


def loop_over(queue: MemoryQueue, signal: Signal | None = None, **options: Any) -> ClaimLoop:
    return ClaimLoop(
        "test",
        claim=queue.claim,
        next_due=queue.next_due,
        signal=signal,
        options=LoopOptions(**options),
    )


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


async def test_runs_at_most_concurrency_with_ahead_claimed_behind() -> None:
    queue = MemoryQueue(20)
    loop = loop_over(queue, concurrency=3, ahead=2, min_free=1, poll_interval=0.05)
    loop.start()
    await until(lambda: len(queue.running) == 3 and loop.in_flight == 5)
    await asyncio.sleep(0.05)
    assert queue.claims[0] == 5  # running + ahead
    assert loop.in_flight == 5 and len(queue.running) == 3
    queue.release.set()
    await until(lambda: len(queue.done) == 20)
    await loop.stop()
    assert queue.most_running == 3 and sorted(queue.done) == list(range(20))


async def test_claims_again_only_once_min_free_places_are_free() -> None:
    queue = MemoryQueue(100)
    loop = loop_over(queue, concurrency=4, ahead=4, min_free=4, poll_interval=0.05)
    loop.start()
    await until(lambda: loop.in_flight == 8)
    await asyncio.sleep(0.05)
    assert queue.claims == [8]  # seven units busy, one free place: not worth a claim
    queue.release.set()
    await until(lambda: len(queue.done) == 100)
    await loop.stop()
    assert all(places >= 4 for places in queue.claims)


async def test_stop_lets_running_units_finish_and_gives_back_the_rest() -> None:
    queue = MemoryQueue(10)
    loop = loop_over(queue, concurrency=2, ahead=3, poll_interval=0.05)
    loop.start()
    await until(lambda: len(queue.running) == 2 and loop.in_flight == 5)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # the two running units are still at work
    queue.release.set()
    await asyncio.wait_for(stopping, 2)
    assert len(queue.done) == 2 and len(queue.given_back) == 3
    assert queue.waiting == list(range(5, 10))  # nothing claimed after the stop


async def test_a_unit_without_give_back_runs_even_when_stopping() -> None:
    ran: list[int] = []
    claimed: list[int] = []
    gate = asyncio.Event()

    async def claim(places: int) -> Claim:
        async def run(n: int) -> None:
            await gate.wait()
            ran.append(n)

        first = not claimed
        claimed.append(places)
        return Claim([Work(run=partial(run, n)) for n in range(3)] if first else [], full=False)

    async def next_due() -> datetime | None:
        return None

    options = LoopOptions(concurrency=1, poll_interval=0.05)
    loop = ClaimLoop("test", claim=claim, next_due=next_due, signal=None, options=options)
    loop.start()
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(loop.stop())
    gate.set()
    await asyncio.wait_for(stopping, 2)
    assert sorted(ran) == [0, 1, 2]


async def test_a_failed_claim_is_retried() -> None:
    queue = MemoryQueue(3)
    queue.fail_claims = 1
    queue.release.set()
    loop = loop_over(queue, concurrency=2, poll_interval=0.05)
    loop.start()
    await until(lambda: len(queue.done) == 3, seconds=3)
    await loop.stop()
    assert len(queue.claims) >= 2


async def test_an_idle_loop_wakes_on_its_signal() -> None:
    queue = MemoryQueue(0)
    queue.release.set()
    signal = Signal()
    loop = loop_over(queue, signal, poll_interval=30.0)
    loop.start()
    await until(lambda: len(queue.claims) == 1)
    await asyncio.sleep(0.05)
    queue.waiting = [7]
    signal.event.set()
    await until(lambda: queue.done == [7], seconds=1)
    await loop.stop()


async def test_an_idle_loop_wakes_when_work_comes_due() -> None:
    queue = MemoryQueue(0)
    queue.release.set()
    queue.due = datetime.now(UTC) + timedelta(seconds=0.1)
    loop = loop_over(queue, Signal(), poll_interval=30.0)
    loop.start()
    await until(lambda: len(queue.claims) == 1)
    queue.waiting = [1]
    await until(lambda: queue.done == [1], seconds=1)
    await loop.stop()


async def test_recovery_runs_and_wakes_the_loop() -> None:
    queue = MemoryQueue(0)
    queue.release.set()
    signal = Signal()
    recovered = 0

    async def recover() -> int:
        nonlocal recovered
        recovered += 1
        queue.waiting = [recovered]
        return 1

    loop = ClaimLoop(
        "test",
        claim=queue.claim,
        next_due=queue.next_due,
        recover=recover,
        signal=signal,
        options=LoopOptions(lease_seconds=4.0, poll_interval=30.0),
    )
    loop.start()
    await until(lambda: len(queue.done) >= 1, seconds=3)  # recovery every lease/4 = 1 s
    await loop.stop()
    assert recovered >= 1


async def test_an_outage_is_logged_once_and_its_end_too(caplog: pytest.LogCaptureFixture) -> None:
    queue = MemoryQueue(2)
    queue.fail_claims = 3
    queue.release.set()
    loop = loop_over(queue, concurrency=2, poll_interval=0.05)
    with caplog.at_level(logging.DEBUG, logger="mailer.queue.loop"):
        loop.start()
        await until(lambda: len(queue.done) == 2, seconds=6)
        await loop.stop()
    actions = [(r.levelno, getattr(r, "action", None)) for r in caplog.records]
    assert actions.count((logging.WARNING, "claim_failed")) == 1
    assert actions.count((logging.DEBUG, "claim_failed")) == 2
    assert (logging.INFO, "claims_resumed") in actions

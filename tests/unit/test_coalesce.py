"""Group commit: concurrent submissions share writes; a bad item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from mailer.db.coalesce import Coalescer


async def test_concurrent_items_share_a_write_and_each_gets_its_result() -> None:
    writes: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(write, writers=1)
    await coalescer.start()
    try:
        results = await asyncio.gather(*(coalescer.submit(i) for i in range(20)))
    finally:
        await coalescer.stop()
    assert results == [i * 10 for i in range(20)]
    assert len(writes) < 20  # coalesced
    assert sorted(i for w in writes for i in w) == list(range(20))


async def test_a_failing_item_fails_alone() -> None:
    async def write(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(write, writers=2)
    await coalescer.start()
    try:
        results = await asyncio.gather(
            *(coalescer.submit(i) for i in range(30)), return_exceptions=True
        )
    finally:
        await coalescer.stop()
    assert isinstance(results[13], ValueError)
    assert [r for i, r in enumerate(results) if i != 13] == [i for i in range(30) if i != 13]


async def test_stop_writes_what_was_submitted() -> None:
    written: list[int] = []

    async def write(items: Sequence[int]) -> list[None]:
        written.extend(items)
        return [None] * len(items)

    coalescer: Coalescer[int, None] = Coalescer(write)
    await coalescer.start()
    pending = [asyncio.ensure_future(coalescer.submit(i)) for i in range(5)]
    await asyncio.sleep(0)  # let the submissions reach the queue
    await coalescer.stop()
    await asyncio.wait_for(asyncio.gather(*pending), 5)
    assert sorted(written) == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        await coalescer.submit(99)


async def test_a_caller_that_goes_away_does_not_stop_the_write() -> None:
    written: list[int] = []
    release = asyncio.Event()

    async def write(items: Sequence[int]) -> list[int]:
        await release.wait()
        written.extend(items)
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(write, writers=1)
    await coalescer.start()
    try:
        leaving = asyncio.ensure_future(coalescer.submit(1))
        staying = asyncio.ensure_future(coalescer.submit(2))
        await asyncio.sleep(0.01)
        leaving.cancel()
        release.set()
        assert await asyncio.wait_for(staying, 5) == 2
    finally:
        await coalescer.stop()
    assert sorted(written) == [1, 2]


async def test_items_arriving_during_a_write_go_into_one_next_write() -> None:
    writes: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[None]:
        writes.append(list(items))
        await asyncio.sleep(0.05)
        return [None] * len(items)

    # A spare writer would split the arrivals; it is not needed while writes are quick.
    coalescer: Coalescer[int, None] = Coalescer(write, writers=2, spare_after=1.0)
    await coalescer.start()
    try:
        first = asyncio.ensure_future(coalescer.submit(0))
        await asyncio.sleep(0.01)  # the first write is in flight
        later = []
        for i in range(1, 6):
            later.append(asyncio.ensure_future(coalescer.submit(i)))
            await asyncio.sleep(0.001)
        await asyncio.gather(first, *later)
    finally:
        await coalescer.stop()
    assert writes == [[0], [1, 2, 3, 4, 5]]


class HeldWrites:
    """A write that echoes its items, holds those it is told to until `release` is set, and
    counts the writes in flight."""

    def __init__(self, held: Callable[[Sequence[Any]], bool]) -> None:
        self.held = held
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, items: Sequence[Any]) -> list[Any]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.held(items):
                await self.release.wait()
            return list(items)
        finally:
            self.in_flight -= 1


async def test_a_slow_write_does_not_hold_up_the_next() -> None:
    write = HeldWrites(lambda items: "slow" in items)
    coalescer: Coalescer[str, str] = Coalescer(write, writers=2, spare_after=0.01)
    await coalescer.start()
    try:
        slow = asyncio.ensure_future(coalescer.submit("slow"))
        await asyncio.sleep(0.005)
        # Written by the spare writer once the slow write has run for `spare_after`.
        assert await asyncio.wait_for(coalescer.submit("quick"), 2) == "quick"
        assert await asyncio.wait_for(coalescer.submit("next"), 2) == "next"
        assert not slow.done()
        write.release.set()
        assert await slow == "slow"
    finally:
        await coalescer.stop()
    assert write.most_in_flight == 2


async def test_no_more_writes_in_flight_than_writers() -> None:
    write = HeldWrites(lambda items: True)
    coalescer: Coalescer[int, int] = Coalescer(write, writers=2, spare_after=0.001)
    await coalescer.start()
    try:
        submitted = []
        for i in range(5):
            submitted.append(asyncio.ensure_future(coalescer.submit(i)))
            await asyncio.sleep(0.01)
        assert write.most_in_flight == 2
        write.release.set()
        assert await asyncio.gather(*submitted) == [0, 1, 2, 3, 4]
    finally:
        await coalescer.stop()


async def test_a_group_stops_growing_at_its_weight() -> None:
    writes: list[list[int]] = []
    release = asyncio.Event()

    async def write(items: Sequence[int]) -> list[None]:
        writes.append(list(items))
        if items == [0]:
            await release.wait()
        return [None] * len(items)

    coalescer: Coalescer[int, None] = Coalescer(
        write, writers=1, weigh=lambda item: item, max_weight=10
    )
    await coalescer.start()
    try:
        submitted = [asyncio.ensure_future(coalescer.submit(0))]
        await asyncio.sleep(0.01)  # the first write is in flight; the rest wait behind it
        submitted += [asyncio.ensure_future(coalescer.submit(i)) for i in (6, 4, 7, 1, 1)]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*submitted)
    finally:
        await coalescer.stop()
    # 6 + 4 reaches 10: that group is full; 7 + 1 + 1 stays under.
    assert writes == [[0], [6, 4], [7, 1, 1]]

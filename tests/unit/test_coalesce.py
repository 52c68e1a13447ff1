"""Group commit: concurrent submissions share writes; a bad item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

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

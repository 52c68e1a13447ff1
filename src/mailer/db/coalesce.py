"""Group commit: writes submitted concurrently are made together, each caller answered alone.

Whatever arrives while a write is in flight goes into the next one, so the commit rate, not
the request rate, bounds the database work; at low load each item is written at once. One
write is in flight at a time, which keeps the groups large; a spare writer starts only when
the writes in flight have run for `spare_after` seconds, so one slow write (a lock wait, a
huge email) does not hold up everything behind it. If a combined write fails, its items are
written one by one, so one bad item never fails its neighbours. A caller gets its result
only once its write has committed, and a caller that goes away does not cancel the write.
A group is bounded in items and, optionally, in weight (bytes, say).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from mailer.aio import cancel_and_wait

Item = TypeVar("Item")
Result = TypeVar("Result")

WriteMany = Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]


class Coalescer(Generic[Item, Result]):
    """Runs `write(items) -> results` (one result per item, in order) over groups of items,
    with at most `writers` writes in flight."""

    def __init__(
        self,
        write: WriteMany[Item, Result],
        *,
        writers: int = 2,
        max_group: int = 500,
        spare_after: float = 0.02,
        weigh: Callable[[Item], int] = lambda _: 0,
        max_weight: float = math.inf,
    ) -> None:
        self._write_many = write
        self._writers = writers
        self._max_group = max_group
        self._spare_after = spare_after
        # A group stops growing once its items weigh `max_weight` (one item may take it past).
        self._weigh = weigh
        self._max_weight = max_weight
        self._pending: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] = asyncio.Queue()
        self._in_flight: dict[asyncio.Task[None], float] = {}  # write -> when it started
        self._grouper: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        """Start grouping and writing."""
        self._grouper = asyncio.create_task(self._group_loop())

    async def stop(self) -> None:
        """Write everything submitted so far, then stop."""
        self._stopped = True
        await self._pending.join()
        await cancel_and_wait(self._grouper, *self._in_flight)
        self._grouper = None

    async def submit(self, item: Item) -> Result:
        """Write one item (together with whatever else is pending); its result once committed."""
        if self._stopped:
            raise RuntimeError("this writer is stopped")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((item, future))
        # Not shielded: a caller cancelled while waiting cancels only its wait; the write
        # owns the item and skips answering a future that is done.
        return await future

    async def _group_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._pending.get()]
            await self._writer_free()
            self._fill(group)
            write = asyncio.create_task(self._write_group(group))
            self._in_flight[write] = loop.time()
            write.add_done_callback(self._in_flight.pop)

    def _fill(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        """Add pending items to `group` up to `max_group` items and `max_weight`."""
        weight = self._weigh(group[0][0])
        while (
            len(group) < self._max_group and weight < self._max_weight and not self._pending.empty()
        ):
            entry = self._pending.get_nowait()
            group.append(entry)
            weight += self._weigh(entry[0])

    async def _writer_free(self) -> None:
        """Wait until a write may start: none is in flight, or a writer is free and the
        youngest write in flight has run for `spare_after` seconds."""
        loop = asyncio.get_running_loop()
        while self._in_flight:
            wait: float | None = None
            if len(self._in_flight) < self._writers:
                wait = max(self._in_flight.values()) + self._spare_after - loop.time()
                if wait <= 0:
                    return
            await asyncio.wait(
                set(self._in_flight), timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )

    async def _write_group(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            await self._write(group)
        finally:
            for _ in group:
                self._pending.task_done()

    async def _write(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write_many([item for item, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _, future = group[0]
                if not future.done():
                    future.set_exception(exc)
                return
            for one in group:
                await self._write([one])
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

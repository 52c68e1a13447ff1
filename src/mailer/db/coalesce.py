"""Group commit: writes submitted concurrently are made together, each caller answered alone.

Whatever arrives while a write is in flight goes into the next one, so the commit rate, not
the request rate, bounds the database work; at low load each item is written at once. If a
combined write fails, its items are written one by one, so one bad item never fails its
neighbours. A caller gets its result only once its write has committed, and a caller that
goes away does not cancel the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from mailer.aio import cancel_and_wait

Item = TypeVar("Item")
Result = TypeVar("Result")

WriteMany = Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]


class Coalescer(Generic[Item, Result]):
    """Runs `write(items) -> results` (one result per item, in order) over groups of items."""

    def __init__(
        self, write: WriteMany[Item, Result], *, writers: int = 4, max_group: int = 500
    ) -> None:
        self._write_many = write
        self._writers = writers
        self._max_group = max_group
        self._pending: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    async def start(self) -> None:
        """Start the writer tasks."""
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(self._writers)]

    async def stop(self) -> None:
        """Write everything submitted so far, then stop the writers."""
        self._stopped = True
        await self._pending.join()
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    async def submit(self, item: Item) -> Result:
        """Write one item (together with whatever else is pending); its result once committed."""
        if self._stopped:
            raise RuntimeError("this writer is stopped")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((item, future))
        # Not shielded: a caller cancelled while waiting cancels only its wait; the writer
        # owns the write and skips answering a future that is done.
        return await future

    async def _write_loop(self) -> None:
        while True:
            group = [await self._pending.get()]
            while len(group) < self._max_group and not self._pending.empty():
                group.append(self._pending.get_nowait())
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

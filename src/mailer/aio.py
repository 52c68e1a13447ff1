"""Small asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel background tasks and wait until each has finished unwinding."""
    for task in tasks:
        if task is not None:
            task.cancel()
    for task in tasks:
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Startable:
    """A server with `start()` and `stop()` that is also used as `async with server:`."""

    async def start(self) -> None:
        """Begin serving; returns once the server accepts connections."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving and release what `start()` took."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

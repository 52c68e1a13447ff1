"""uvicorn's server for our processes: a signal asks it to exit, and nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn

__all__ = ["GracefulServer"]


class GracefulServer(uvicorn.Server):
    """uvicorn's server, minus its habit of re-raising SIGTERM/SIGINT once it has shut down.

    Re-raised, the signal kills the process before our own clean-up runs (the embedded
    PostgreSQL would be left running) and its exit status says "killed" after a clean
    stop. Here a signal only asks the server to exit.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

"""What a process did, counted in memory and logged once a minute as one summary line.

Counting is a dict increment, cheap enough for the hot paths. Only counters a part of the
process declared appear in its summary, so a line never reports a zero for something that
is not counted there. The API counts what it accepts and stores; the worker's parts (sent,
failed, webhooks delivered) declare theirs with `declare` and count with `add`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from mailer.aio import cancel_and_wait

log = logging.getLogger(__name__)

SUMMARY_INTERVAL = 60.0


class Activity:
    """Named counters of one process, read and reset by each summary."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._totals: dict[str, int] = {}

    def declare(self, names: Iterable[str]) -> None:
        """Make counters appear in the summaries, zero until counted."""
        for name in names:
            self._counts.setdefault(name, 0)
            self._totals.setdefault(name, 0)

    def add(self, name: str, n: int = 1) -> None:
        """Count `n` more of `name` (declaring it if needed)."""
        try:
            self._counts[name] += n
        except KeyError:
            self.declare([name])
            self._counts[name] += n

    def take(self) -> dict[str, int]:
        """The counts since the last `take`, which start again from zero."""
        taken = dict(self._counts)
        for name, n in taken.items():
            self._totals[name] += n
            self._counts[name] = 0
        return taken

    def totals(self) -> dict[str, int]:
        """Everything counted since the process started (up to the last `take`)."""
        return dict(self._totals)


# The process's counters: every part of one process counts into the same summary.
ACTIVITY = Activity()


class Summary:
    """Logs `ACTIVITY` (or another `Activity`) every `interval` seconds while started."""

    def __init__(
        self,
        process: str,
        *,
        interval: float = SUMMARY_INTERVAL,
        activity: Activity = ACTIVITY,
    ) -> None:
        self._process = process
        self._interval = interval
        self._activity = activity
        self._task: asyncio.Task[None] | None = None
        self._last = time.monotonic()

    async def start(self) -> None:
        """Start logging summaries (none when the interval is 0)."""
        self._last = time.monotonic()
        self._activity.take()
        if self._interval > 0:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop; the last partial interval is logged as a final summary."""
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None
        self.log_now()

    def log_now(self) -> None:
        """Log the counts since the last summary."""
        now = time.monotonic()
        counts = self._activity.take()
        log.info(
            f"{self._process} activity",
            extra={
                "action": "summary",
                "role": self._process,
                "seconds": round(now - self._last),
            }
            | counts,
        )
        self._last = now

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.log_now()

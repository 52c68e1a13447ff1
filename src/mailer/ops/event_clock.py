"""The event clock: when Mailjet's events of each type last arrived, and whether the
`sent` events went silent while Mailer was sending.

Mailjet's callbacks can stop without an error anywhere: a callback URL deleted or
suspended, a `sent` trigger never set up, a registration lost to another system (MJ18).
Mailjet then simply posts nothing. So Mailer keeps the time of the last event of each type
(`event_clock`, migration 0010), written by the intake after each stored body, and the
time since which sends Mailjet accepted wait for a `sent` event, written by the worker.
"Silent" means: Mailjet accepted sends more than `MAILER_EVENT_SILENCE_AFTER` seconds ago
and no `sent` event has arrived since. A quiet period with nothing sent is not silence.

Both writes happen outside the intake and recording transactions, at most once every
:data:`WRITE_EVERY` seconds per process and type, so they cost the hot paths nothing
measurable and never hold a lock for long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.db.rows import Column, Row
from mailer.logs import describe
from mailer.ops.outage import is_unavailable

__all__ = [
    "RECEIVED",
    "SENDS",
    "WRITE_EVERY",
    "AcceptedSends",
    "ClockRow",
    "ReceivedTypes",
    "Silence",
    "SilenceWatch",
    "event_clock",
    "event_silence",
    "silence_of",
]

Q = Queries("mailer.ops")
log = logging.getLogger(__name__)

WRITE_EVERY = 5.0


class ClockRow(Row):
    """One row of the event clock (``event_clock``): a Mailjet event type, or ``accepted``."""

    type = Column[str]()
    last_at = Column[datetime]()
    waiting_since = Column[datetime | None]()
    seconds_ago = Column[float]()
    waiting_seconds = Column[float | None]()


class ReceivedTypes:
    """Writes the event types Mailjet posted to the clock, each at most every `every` s."""

    def __init__(self, every: float = WRITE_EVERY) -> None:
        self._every = every
        self._written: dict[str, float] = {}

    async def note(self, pool: asyncpg.Pool, types: Iterable[str]) -> None:
        """Mailjet just posted events of these types (called once their body is stored).

        Best effort: a failure is logged at debug level and forgotten (a later body writes it).
        """
        now = time.monotonic()
        never = float("-inf")
        due = sorted(t for t in set(types) if now - self._written.get(t, never) >= self._every)
        if not due:
            return
        for event_type in due:
            self._written[event_type] = now
        try:
            await pool.execute(Q.note_events_received, due, datetime.now(UTC))
        except Exception as exc:  # the events are stored: the clock must not fail the intake
            for event_type in due:
                self._written.pop(event_type, None)
            log.debug("event clock not written", extra={"error": describe(exc)})


# The intake's notes, shared by the process's requests.
RECEIVED = ReceivedTypes()


class AcceptedSends:
    """Sends Mailjet accepted in this process since the last write (a counter: cheap)."""

    def __init__(self) -> None:
        self.first: datetime | None = None
        self.last: datetime | None = None

    def note(self) -> None:
        """Mailjet accepted a send just now."""
        now = datetime.now(UTC)
        if self.first is None:
            self.first = now
        self.last = now

    async def write(self, pool: asyncpg.Pool) -> None:
        """Write what was noted to the clock, then start again."""
        first, last = self.first, self.last
        if first is None or last is None:
            return
        self.first = self.last = None
        await pool.execute(Q.note_sends_accepted, first, last)


# The worker's sends, noted by the send loop and written by its SilenceWatch.
SENDS = AcceptedSends()


@dataclass(frozen=True)
class Silence:
    """Whether `sent` events have gone silent, and the times that say so."""

    silent: bool
    waiting_seconds: float | None
    """Since when accepted sends wait for a `sent` event (None: none wait)."""
    last_sent_seconds_ago: float | None
    """Age of the last `sent` event (None: never received)."""


async def event_clock(conn: Conn) -> list[ClockRow]:
    """Every row of the event clock: each event type's last arrival, and `accepted`."""
    return list(await conn.fetch(Q.event_clock, record_class=ClockRow))


def silence_of(rows: Iterable[ClockRow], after: float) -> Silence:
    """Whether the clock's rows show silence: sends accepted over ``after`` seconds ago
    wait for a `sent` event that has not come."""
    by_type = {row.type: row for row in rows}
    accepted, sent = by_type.get("accepted"), by_type.get("sent")
    waiting_since = accepted.waiting_since if accepted is not None else None
    waiting = accepted.waiting_seconds if accepted is not None else None
    if waiting_since is None or (sent is not None and sent.last_at >= waiting_since):
        waiting = None
    return Silence(
        silent=waiting is not None and waiting > after,
        waiting_seconds=waiting,
        last_sent_seconds_ago=sent.seconds_ago if sent is not None else None,
    )


async def event_silence(conn: Conn, after: float) -> Silence:
    """:func:`silence_of` the current clock."""
    return silence_of(await event_clock(conn), after)


class SilenceWatch:
    """In a worker: writes its accepted sends to the clock, and logs once when `sent`
    events go silent (``action=event_silence``) and once when they come back."""

    def __init__(self, pool: asyncpg.Pool, *, after: float, sends: AcceptedSends = SENDS) -> None:
        self._pool = pool
        self._after = after
        self._sends = sends
        self._task: asyncio.Task[None] | None = None
        self.silent = False

    async def start(self) -> None:
        """Start the periodic write and check."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop; what was noted since the last write is written (best effort)."""
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await self._sends.write(self._pool)
        except Exception as exc:
            log.debug("event clock not written", extra={"error": describe(exc)})

    async def check(self) -> Silence:
        """Write the noted sends, read the clock, log a change; return what it found."""
        await self._sends.write(self._pool)
        async with self._pool.acquire() as conn:
            found = await event_silence(conn, self._after)
        if found.silent and not self.silent:
            log.warning(
                "no `sent` events from Mailjet while sending: check the callbacks "
                "(mailer mailjet doctor), then fill the gap (mailer mailjet backfill)",
                extra={
                    "action": "event_silence",
                    "waiting_seconds": round(found.waiting_seconds or 0),
                    "last_sent_seconds_ago": _rounded(found.last_sent_seconds_ago),
                    "silence_after": self._after,
                },
            )
        elif self.silent and not found.silent:
            log.info("`sent` events arrive again", extra={"action": "event_silence_ended"})
        self.silent = found.silent
        return found

    async def _loop(self) -> None:
        interval = min(WRITE_EVERY, self._after / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception as exc:
                if not is_unavailable(exc):  # the database away: its outage is logged anyway
                    log.warning(
                        "event silence not checked",
                        extra={"action": "event_silence_check_failed", "error": describe(exc)},
                    )


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)

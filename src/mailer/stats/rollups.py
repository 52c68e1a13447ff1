"""Reading the hourly rollups per hour or day, with rates; folding hours that closed.

The counts are written where the things happen, in the same statements (migration 0013
describes the table): `accepted` when jobs are stored, `sent` when Mailjet's answer is
recorded, the rest when Mailjet's events are applied. Nothing here counts jobs or events.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

import asyncpg

from mailer.aio import cancel_and_wait
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.stats.rows import PeriodRow

Q = Queries("mailer.stats")
log = logging.getLogger(__name__)

__all__ = [
    "MAX_PERIODS",
    "Counts",
    "Folder",
    "Granularity",
    "Period",
    "aligned",
    "as_json",
    "read_periods",
    "total",
]

Granularity = Literal["hour", "day"]
STEP: dict[Granularity, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_PERIODS: dict[Granularity, int] = {"hour": 31 * 24, "day": 400}
"""The most periods one read answers: 31 days by the hour, 400 days by the day."""


class Counts(NamedTuple):
    """What happened to an app's emails in some span of time, per recipient (a tuple:
    720 hours of them are summed and shown per request)."""

    accepted: int = 0
    sent: int = 0
    delivered: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    blocked: int = 0
    complained: int = 0
    unsubscribed: int = 0
    opened: int = 0
    opened_unique: int = 0
    opened_human: int = 0
    opened_human_unique: int = 0
    clicked: int = 0
    clicked_unique: int = 0
    clicked_human: int = 0
    clicked_human_unique: int = 0

    def rates(self) -> dict[str, float | None]:
        """Each rate as the hosted APIs define it: failures against what was sent,
        engagement (unique recipients) against what was delivered; None over nothing."""
        sent, delivered = self.sent, self.delivered
        if not sent and not delivered:
            return dict(_NO_RATES)
        bounced = self.bounced_hard + self.bounced_soft
        return {
            "delivered": _ratio(delivered, sent),
            "bounced": _ratio(bounced, sent),
            "hard_bounced": _ratio(self.bounced_hard, sent),
            "blocked": _ratio(self.blocked, sent),
            "complained": _ratio(self.complained, delivered),
            "unsubscribed": _ratio(self.unsubscribed, delivered),
            "opened": _ratio(self.opened_unique, delivered),
            "opened_human": _ratio(self.opened_human_unique, delivered),
            "clicked": _ratio(self.clicked_unique, delivered),
            "clicked_human": _ratio(self.clicked_human_unique, delivered),
        }


_RATES = (
    "delivered",
    "bounced",
    "hard_bounced",
    "blocked",
    "complained",
    "unsubscribed",
    "opened",
    "opened_human",
    "clicked",
    "clicked_human",
)
_NO_RATES: dict[str, float | None] = dict.fromkeys(_RATES)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True, slots=True)
class Period:
    """The counts of one hour or day (UTC), starting at `start`."""

    start: datetime
    counts: Counts


def aligned(moment: datetime, granularity: Granularity, *, up: bool = False) -> datetime:
    """`moment` (UTC) rounded down (or `up`) to the start of its hour or day."""
    utc = moment.astimezone(UTC)
    floor = utc.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        floor = floor.replace(hour=0)
    if up and floor != utc:
        floor += STEP[granularity]
    return floor


async def read_periods(
    conn: Conn,
    app_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    *,
    tag: str = "",
) -> list[Period]:
    """Every period from `start` to `end` (aligned by the caller: `aligned`), empty ones as
    zeros, from the rollups only."""
    rows = await conn.fetch(
        Q.stats_periods, app_id, start, end, granularity, tag, record_class=PeriodRow
    )
    # The columns after `start` are the counts, in `Counts`' order.
    found = {row.start: Counts._make(itertools.islice(row, 1, None)) for row in rows}
    step = STEP[granularity]
    periods = []
    moment = start
    while moment < end:
        periods.append(Period(moment, found.get(moment, Counts())))
        moment += step
    return periods


def total(periods: list[Period]) -> Counts:
    """The counts of all `periods` together."""
    if not periods:
        return Counts()
    return Counts(*map(sum, zip(*(p.counts for p in periods), strict=True)))


def as_json(counts: Counts) -> dict[str, object]:
    """Counts as `GET /stats` shows them: each count by name, and the rates."""
    shown: dict[str, object] = counts._asdict()
    shown["rates"] = counts.rates()
    return shown


class Folder:
    """Folds closed hours' per-connection rows into one row each, every `every` seconds
    (any number of workers may run one: folds skip what another holds)."""

    def __init__(self, pool: asyncpg.Pool, *, every: float = 60.0, batch: int = 10_000) -> None:
        self._pool = pool
        self._every = every
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start folding in the background."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop folding (a fold in progress is rolled back: nothing is lost)."""
        await cancel_and_wait(self._task)
        self._task = None

    async def fold_once(self) -> int:
        """Fold up to `batch` rows; answers how many were folded."""
        status: str = await self._pool.execute(Q.fold_closed_hours, self._batch)
        return int(status.rsplit(" ", 1)[-1])

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                for _ in range(100):  # bounded: what is left waits for the next turn
                    if await self.fold_once() == 0:
                        break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "folding the stats failed; trying again later",
                    extra={"action": "stats_fold_failed", "error": type(exc).__name__},
                )

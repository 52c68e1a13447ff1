"""What each dashboard page shows, read from the database: plain data, no HTML.

Every read is bounded: searches by a LIMIT and a cursor, the overview by the stats
rollups (a few hundred rows per app, whatever the number of jobs). Operators see every
app, so nothing here is scoped by an app's key; the routes let only operators in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg

from mailer.dashboard.rows import (
    AppRow,
    JobHeader,
    MessageKey,
    MessageRow,
    QueueDepth,
    SuppressionRow,
)
from mailer.dashboard.sessions import Operator
from mailer.db.queries import Queries
from mailer.delivery.job_status import read_job_status
from mailer.ids import uuid7_floor
from mailer.ops import heartbeat
from mailer.ops.status import last_events
from mailer.stats.rollups import Counts, Granularity, aligned, read_periods, total
from mailer.tracking.precedence import RecipientStatus

__all__ = [
    "BOUNCE_RATE",
    "COMPLAINT_RATE",
    "MESSAGE_FIELDS",
    "PAGE_SIZE",
    "PERIODS",
    "SCAN_LIMIT",
    "Action",
    "MessageCursor",
    "MessageFilter",
    "MessagePage",
    "Overview",
    "Period",
    "Summary",
    "Threshold",
    "apps",
    "mailjet_health",
    "message_actions",
    "message_detail",
    "overview",
    "search_messages",
    "search_suppressions",
]

Q = Queries("mailer.dashboard")

PAGE_SIZE = 50
MESSAGE_FIELDS = ("recipient", "app", "status", "since", "until")
# A search without an address looks at most at this many recipient messages per page
# (newest first), whatever its app or status filter keeps, so that a rare status costs
# the same as a common one; the page then offers to look further back.
SCAN_LIMIT = 20_000

_NO_ID = uuid.UUID(int=0)
_LAST_ID = uuid.UUID(int=(1 << 128) - 1)


@dataclass(frozen=True)
class Period:
    """A period the overview can show, read from the rollups by the hour or by the day."""

    name: str
    length: timedelta
    granularity: Granularity

    @property
    def step(self) -> timedelta:
        """The width of one bar of the chart: an hour or a day."""
        return timedelta(hours=1) if self.granularity == "hour" else timedelta(days=1)

    def bucket_label(self, start: datetime) -> str:
        """How a bucket starting at `start` is named under the chart."""
        return start.strftime("%H:%M" if self.granularity == "hour" else "%d %b")

    def span(self, now: datetime) -> tuple[datetime, datetime]:
        """The period's first and end hour or day (UTC): whole periods of the rollups, the
        last one holding `now`."""
        end = aligned(now, self.granularity) + self.step
        return end - self.length, end


PERIODS = {
    p.name: p
    for p in (
        Period("24h", timedelta(days=1), "hour"),
        Period("7d", timedelta(days=7), "day"),
        Period("30d", timedelta(days=30), "day"),
        Period("90d", timedelta(days=90), "day"),
    )
}

# The series of the overview's two charts (columns of `columns_of`).
CHART_SERIES = ("accepted", "sent", "delivered", "bounced", "blocked")
ENGAGEMENT_SERIES = ("opened", "clicked", "complained")


def columns_of(counts: Counts) -> dict[str, int]:
    """The overview's columns from rollup counts: bounces hard and soft together, opens
    and clicks as the recipients who opened or clicked (each once)."""
    return {
        "accepted": counts.accepted,
        "sent": counts.sent,
        "delivered": counts.delivered,
        "bounced": counts.bounced_hard + counts.bounced_soft,
        "blocked": counts.blocked,
        "complained": counts.complained,
        "opened": counts.opened_unique,
        "clicked": counts.clicked_unique,
    }


@dataclass(frozen=True)
class Threshold:
    """Where a rate becomes worrying (warn) and endangers the sending account (risk)."""

    warn: float
    risk: float

    def level(self, rate: float | None) -> str:
        """``ok``, ``warn`` or ``risk`` for a rate from 0 to 1; ``none`` without one."""
        if rate is None:
            return "none"
        if rate >= self.risk:
            return "risk"
        return "warn" if rate >= self.warn else "ok"


# useSend's thresholds: bounces of what was sent, complaints of what was delivered.
BOUNCE_RATE = Threshold(warn=0.05, risk=0.10)
COMPLAINT_RATE = Threshold(warn=0.001, risk=0.005)


@dataclass(frozen=True)
class Summary:
    """One app's (or all apps') period: its columns and its two rates with their levels."""

    name: str
    columns: dict[str, int]
    bounce_rate: float | None
    complaint_rate: float | None

    @classmethod
    def of(cls, name: str, counts: Counts) -> Summary:
        """The summary of `counts` (rates as `GET /stats` computes them)."""
        rates = counts.rates()
        return cls(name, columns_of(counts), rates["bounced"], rates["complained"])

    @property
    def bounce_level(self) -> str:
        """ok, warn, risk (or none) against :data:`BOUNCE_RATE`."""
        return BOUNCE_RATE.level(self.bounce_rate)

    @property
    def complaint_level(self) -> str:
        """ok, warn, risk (or none) against :data:`COMPLAINT_RATE`."""
        return COMPLAINT_RATE.level(self.complaint_rate)


async def apps(pool: asyncpg.Pool) -> list[AppRow]:
    """Every app, by name (for the filters)."""
    return await pool.fetch(Q.apps, record_class=AppRow)


@dataclass
class Overview:
    """The overview page: the queue now, the workers, and the period's counts."""

    period: Period
    start: datetime
    end: datetime
    depth: QueueDepth
    live_workers: int
    per_app: list[Summary]
    total: Summary
    labels: list[str]
    series: dict[str, list[int]]
    engagement: dict[str, list[int]]


async def overview(
    pool: asyncpg.Pool, period: Period, *, app: uuid.UUID | None = None, now: datetime | None = None
) -> Overview:
    """The queue depth, live workers and the period's counts per app and per hour or day,
    read from the stats rollups by `GET /stats`' own function (`read_periods`); the
    chart shows `app`'s, or all apps' together."""
    start, end = period.span(now or datetime.now(UTC))
    async with pool.acquire() as conn:
        depth = await conn.fetchrow(Q.queue_depth, record_class=QueueDepth)
        live = await heartbeat.live_worker_count(conn)
        known: list[AppRow] = await conn.fetch(Q.apps, record_class=AppRow)
        by_app = {
            a.id: await read_periods(conn, a.id, start, end, period.granularity) for a in known
        }
    assert depth is not None
    charted = [by_app[app]] if app in by_app else list(by_app.values())
    starts = [start + i * period.step for i in range(int(period.length / period.step))]
    per_bucket = [
        columns_of(total([periods[index] for periods in charted])) for index in range(len(starts))
    ]
    app_totals = {a.id: total(by_app[a.id]) for a in known}
    return Overview(
        period=period,
        start=start,
        end=end,
        depth=depth,
        live_workers=live,
        per_app=[Summary.of(a.name, app_totals[a.id]) for a in known],
        total=Summary.of("all apps", _sum(list(app_totals.values()))),
        labels=[period.bucket_label(s) for s in starts],
        series={name: [b[name] for b in per_bucket] for name in CHART_SERIES},
        engagement={name: [b[name] for b in per_bucket] for name in ENGAGEMENT_SERIES},
    )


def _sum(counts: list[Counts]) -> Counts:
    return Counts(*map(sum, zip(*counts, strict=True))) if counts else Counts()


@dataclass(frozen=True)
class MessageCursor:
    """Where a page of messages ends: the last (job id, position) shown."""

    job_id: uuid.UUID = _LAST_ID
    position: int = 32767

    def encode(self) -> str:
        return f"{self.job_id}.{self.position}"

    @classmethod
    def decode(cls, text: str) -> MessageCursor:
        """Raises ValueError for text that is not a cursor."""
        job_id, _, position = text.partition(".")
        return cls(uuid.UUID(job_id), int(position))


@dataclass(frozen=True)
class MessageFilter:
    """A search of the Messages page; every field is optional."""

    recipient: str | None = None
    app: uuid.UUID | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: MessageCursor = field(default_factory=MessageCursor)


@dataclass(frozen=True)
class MessagePage:
    """A page of the Messages search. `next` goes on, older; `partial` says the page stopped
    at `SCAN_LIMIT` messages looked at before it was full."""

    rows: list[MessageRow]
    next: MessageCursor | None
    partial: bool = False


async def search_messages(
    pool: asyncpg.Pool, search: MessageFilter, app_ids: Sequence[uuid.UUID]
) -> MessagePage:
    """A page of recipient messages, newest first, and the cursor of the next page."""
    wanted = [search.app] if search.app is not None else list(app_ids)
    low = _NO_ID if search.since is None else uuid7_floor(search.since)
    high = _LAST_ID if search.until is None else uuid7_floor(search.until)
    cursor = (search.after.job_id, search.after.position)
    if search.recipient:
        address = search.recipient.strip().lower()
        rows = await pool.fetch(
            Q.messages_to_recipient,
            *(wanted, address, low, high, search.status, *cursor, PAGE_SIZE + 1),
            record_class=MessageRow,
        )
    else:
        rows = await pool.fetch(
            Q.recent_messages,
            *(wanted, low, high, search.status, *cursor, PAGE_SIZE + 1, SCAN_LIMIT),
            record_class=MessageRow,
        )
    if len(rows) > PAGE_SIZE:
        last = rows[PAGE_SIZE - 1]
        return MessagePage(rows[:PAGE_SIZE], MessageCursor(last.job_id, last.position))
    if search.recipient:
        return MessagePage(rows, None)
    edge = await pool.fetchrow(Q.scan_edge, low, high, *cursor, SCAN_LIMIT, record_class=MessageKey)
    if edge is None:
        return MessagePage(rows, None)
    return MessagePage(rows, MessageCursor(edge.job_id, edge.position), partial=True)


async def message_detail(
    pool: asyncpg.Pool, job_id: uuid.UUID
) -> tuple[JobHeader, dict[str, Any]] | None:
    """A job of any app and its status document (recipients and their timelines, from
    `mailer.delivery.job_status`), or None."""
    header = await pool.fetchrow(Q.job_header, job_id, record_class=JobHeader)
    if header is None:
        return None
    status = await read_job_status(pool, header.app_id, job_id)
    if status is None:  # removed between the two reads
        return None
    return header, status


@dataclass(frozen=True)
class Action:
    """Something an admin may do from a page: a link to its confirmation page."""

    label: str
    href: str


def message_actions(operator: Operator, job: JobHeader, status: dict[str, Any]) -> list[Action]:
    """What an admin may do to a job from its page (nothing for a viewer).

    Today: take a suppressed recipient off the app's list. This is the seam for the job
    actions of branch `jobs` (cancel a queued job, retry a failed one): each is one more
    `Action` here, its confirmation page and POST route beside `unsuppress`.
    """
    if not operator.may_act:
        return []
    page = f"/dashboard/messages/{job.id}"
    return [
        Action(
            f"Unsuppress {r['email']}",
            "/dashboard/suppressions/remove?"
            + urlencode({"app": str(job.app_id), "email": r["email"], "next": page}),
        )
        for r in status["recipients"]
        if r["status"] == RecipientStatus.SUPPRESSED
    ]


def prefix_successor(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (None: no bound)."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


async def search_suppressions(
    pool: asyncpg.Pool,
    app_ids: Sequence[uuid.UUID],
    prefix: str = "",
    after: tuple[uuid.UUID, str] = (_NO_ID, ""),
) -> tuple[list[SuppressionRow], tuple[uuid.UUID, str] | None]:
    """Suppressed addresses starting with `prefix`, by app and address, one page."""
    prefix = prefix.strip().lower()
    rows = await pool.fetch(
        Q.search_suppressions,
        list(app_ids),
        prefix,
        prefix_successor(prefix),
        *after,
        PAGE_SIZE + 1,
        record_class=SuppressionRow,
    )
    if len(rows) <= PAGE_SIZE:
        return rows, None
    last = rows[PAGE_SIZE - 1]
    return rows[:PAGE_SIZE], (last.app_id, last.email)


async def mailjet_health(pool: asyncpg.Pool) -> dict[str, Any]:
    """The Mailjet page: workers and their heartbeats, the last event of each type."""
    async with pool.acquire() as conn:
        workers = await heartbeat.workers(conn)
        events, callback = await last_events(conn)
    return {
        "workers": [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "version": w.version,
                "started_at": w.started_at,
                "seen_seconds_ago": w.seen_seconds_ago,
                "alive": w.alive,
            }
            for w in workers
        ],
        "live_workers": sum(1 for w in workers if w.alive),
        "last_event_by_type": events,
        "last_callback_seconds_ago": callback,
    }

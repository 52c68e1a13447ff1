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
    AuditRow,
    BulkJob,
    JobHeader,
    LimitedApp,
    MessageKey,
    MessageRow,
    QueueCount,
    QueueDepth,
    QueueWait,
    SuppressionRow,
)
from mailer.dashboard.sessions import Operator
from mailer.db.queries import Queries
from mailer.delivery import limits
from mailer.delivery.job_search import JobFilters, id_range
from mailer.delivery.job_status import QueueFacts, read_job_status, waiting_of
from mailer.delivery.limits import Hold
from mailer.ids import uuid7_floor
from mailer.ops import heartbeat
from mailer.ops.status import last_events
from mailer.stats.rollups import Counts, Granularity, aligned, read_periods, total
from mailer.tracking.precedence import RecipientStatus

__all__ = [
    "AUDIT_SCAN",
    "BOUNCE_RATE",
    "BULK_ACTIONS",
    "BULK_MAX",
    "COMPLAINT_RATE",
    "COUNT_CAP",
    "MESSAGE_FIELDS",
    "PAGE_SIZE",
    "PERIODS",
    "QUEUE_STATES_SHOWN",
    "SCAN_LIMIT",
    "WAIT_REASONS",
    "WAIT_SAMPLE",
    "Action",
    "AppQueue",
    "AuditFilter",
    "AuditPage",
    "BulkFilter",
    "BulkSelection",
    "MessageCursor",
    "MessageFilter",
    "MessagePage",
    "Overview",
    "Period",
    "QueuePage",
    "Summary",
    "Threshold",
    "apps",
    "audit_page",
    "mailjet_health",
    "message_actions",
    "message_detail",
    "overview",
    "queue",
    "search_messages",
    "search_suppressions",
    "select_bulk",
]

Q = Queries("mailer.dashboard")

PAGE_SIZE = 50
MESSAGE_FIELDS = ("recipient", "app", "status", "tag", "since", "until")
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
    tag: str | None = None
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
            *(wanted, address, low, high, search.status, *cursor, PAGE_SIZE + 1, search.tag),
            record_class=MessageRow,
        )
    else:
        rows = await pool.fetch(
            Q.recent_messages,
            *(wanted, low, high, search.status, *cursor, PAGE_SIZE + 1, SCAN_LIMIT, search.tag),
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
    """What an admin may do to a job from its page (nothing for a viewer): cancel it while
    it is queued, retry it once it ended with failed recipients, take a suppressed recipient
    off the app's list. Each is a link to a confirmation page; the POST behind it uses the
    same functions as the app API (`POST /jobs/{id}/cancel`, `/retry`), which still refuse
    when it has become too late meanwhile."""
    if not operator.may_act:
        return []
    page = f"/dashboard/messages/{job.id}"
    found: list[Action] = []
    if job.state == "queued":
        found.append(Action("Cancel this job", f"{page}/cancel"))
    statuses = {r["status"] for r in status["recipients"]}
    if job.state in ("done", "failed") and RecipientStatus.FAILED in statuses:
        found.append(Action("Retry the failed recipients", f"{page}/retry"))
    found.extend(
        Action(
            f"Unsuppress {r['email']}",
            "/dashboard/suppressions/remove?"
            + urlencode({"app": str(job.app_id), "email": r["email"], "next": page}),
        )
        for r in status["recipients"]
        if r["status"] == RecipientStatus.SUPPRESSED
    )
    return found


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


# The Queue page counts each app's jobs per state up to this many (shown as "10000+"), so
# that a large backlog costs a bounded read of jobs_by_app_state per app.
COUNT_CAP = 10_000
WAIT_SAMPLE = 1000
"""Why queued jobs wait is read from the rows of each app's oldest this many queued jobs
(a heap read each, where the counts need only the index)."""
QUEUE_STATES_SHOWN = ("queued", "sending", "failed", "canceled")
WAIT_REASONS = ("due", "scheduled", "retrying", "paused", "rate_limited")
"""Why queued jobs wait, as `/status` says (`waiting.reason`); `due`: they do not, they go
as workers free up."""


@dataclass
class AppQueue:
    """One app on the Queue page."""

    app_id: uuid.UUID
    name: str
    counts: dict[str, int]
    waits: dict[str, int]
    oldest_queued_seconds: float | None
    hold: Hold | None
    limits: LimitedApp | None

    @property
    def paused(self) -> bool:
        return self.limits is not None and self.limits.paused_at is not None


@dataclass
class QueuePage:
    """The Queue page: the whole queue now, then per app."""

    depth: QueueDepth
    apps: list[AppQueue]
    cap: int = COUNT_CAP
    sample: int = WAIT_SAMPLE


def wait_reason(row: QueueWait, hold: Hold | None) -> str:
    """Why the jobs of a `queued_by_wait` group wait, by `delivery.job_status.waiting_of`
    (the one place the reasons are decided) applied to the group's facts."""
    facts = QueueFacts(
        state="queued",
        run_at=row.first_run_at,
        attempts=1 if row.attempted else 0,
        last_error=None,
        hold=hold,
    )
    waiting = waiting_of(facts, row.now)
    return "due" if waiting is None else str(waiting["reason"])


async def queue(pool: asyncpg.Pool) -> QueuePage:
    """Jobs by state and app, why the queued ones wait, each app's oldest queued job and
    its pause or limits; every count bounded by `COUNT_CAP` per app."""
    async with pool.acquire() as conn:
        depth = await conn.fetchrow(Q.queue_depth, record_class=QueueDepth)
        counts: list[QueueCount] = await conn.fetch(
            Q.queue_by_app, COUNT_CAP, list(QUEUE_STATES_SHOWN), record_class=QueueCount
        )
        waits: list[QueueWait] = await conn.fetch(
            Q.queued_by_wait, WAIT_SAMPLE, record_class=QueueWait
        )
        limited: list[LimitedApp] = await conn.fetch(Q.limited_apps, record_class=LimitedApp)
        holds = {row.app_id: await limits.hold_of(conn, row.app_id) for row in limited}
    assert depth is not None
    by_app: dict[uuid.UUID, AppQueue] = {}
    limits_by_app = {row.app_id: row for row in limited}
    for count in counts:
        entry = by_app.get(count.app_id)
        if entry is None:
            entry = by_app[count.app_id] = AppQueue(
                app_id=count.app_id,
                name=count.app,
                counts={},
                waits=dict.fromkeys(WAIT_REASONS, 0),
                oldest_queued_seconds=None,
                hold=holds.get(count.app_id),
                limits=limits_by_app.get(count.app_id),
            )
        entry.counts[count.state] = count.jobs
    for wait in waits:
        entry = by_app[wait.app_id]
        entry.waits[wait_reason(wait, entry.hold)] += wait.jobs
        age = (wait.now - wait.oldest_created_at).total_seconds()
        entry.oldest_queued_seconds = max(entry.oldest_queued_seconds or 0.0, age)
    return QueuePage(depth=depth, apps=list(by_app.values()))


BULK_MAX = 1000
"""A bulk action acts on at most this many jobs (the newest that match); the confirmation
says when more may match, and the action can be run again for them."""
BULK_SCAN = 20_000
"""The selection looks at most at this many of the app's jobs in the action's state."""
BULK_ACTIONS = {"cancel": "queued", "retry": "failed"}
"""Each bulk action and the queue state it selects: cancel queued jobs (scheduled or
waiting), retry failed ones (the state a job ends in when its attempts ran out)."""


@dataclass(frozen=True)
class BulkFilter:
    """Which of an app's jobs a bulk action is for."""

    action: str
    app: uuid.UUID
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    @property
    def state(self) -> str:
        """The queue state of the jobs the action applies to."""
        return BULK_ACTIONS[self.action]

    def query(self) -> dict[str, str]:
        """The filter as the Queue page's form fields."""
        fields = {"action": self.action, "app": str(self.app), "tag": self.tag or ""}
        for name in ("created_from", "created_to"):
            value: datetime | None = getattr(self, name)
            fields[name] = "" if value is None else value.strftime("%Y-%m-%dT%H:%M")
        return fields


@dataclass(frozen=True)
class BulkSelection:
    """The jobs a bulk action will act on; `more`: others may match beyond them."""

    job_ids: list[uuid.UUID]
    more: bool


async def select_bulk(pool: asyncpg.Pool, bulk: BulkFilter) -> BulkSelection:
    """The app's jobs in the action's state matching the filter, newest first, at most
    `BULK_MAX` among the `BULK_SCAN` newest in that state (jobs_by_app_state)."""
    below, lowest = id_range(
        JobFilters(created_from=bulk.created_from, created_to=bulk.created_to), None
    )
    rows: list[BulkJob] = await pool.fetch(
        Q.bulk_jobs,
        bulk.app,
        bulk.state,
        below,
        lowest,
        bulk.created_from,
        bulk.created_to,
        bulk.tag,
        BULK_SCAN,
        BULK_MAX + 1,
        record_class=BulkJob,
    )
    found = [r.id for r in rows]
    if len(found) > BULK_MAX:
        return BulkSelection(found[:BULK_MAX], more=True)
    full = await pool.fetchval(Q.bulk_scan_full, bulk.app, bulk.state, below, lowest, BULK_SCAN)
    return BulkSelection(found, more=bool(full))


AUDIT_SCAN = 5000
"""The Audit page looks at most at this many entries of its leading index per page."""


@dataclass(frozen=True)
class AuditFilter:
    """A search of the Audit page; every field is optional."""

    app: uuid.UUID | None = None
    actor: str | None = None
    action: str | None = None
    before: int | None = None


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first; `next`: the entry id the next page starts below; `partial`:
    the page stopped at `AUDIT_SCAN` entries looked at before it was full."""

    rows: list[AuditRow]
    next: int | None
    partial: bool = False


async def audit_page(pool: asyncpg.Pool, search: AuditFilter) -> AuditPage:
    """A page of the audit log, newest first, from the index of its first filter."""
    if search.app is not None:
        query = Q.audit_page_by_app
    elif search.actor is not None:
        query = Q.audit_page_by_actor
    elif search.action is not None:
        query = Q.audit_page_by_action
    else:
        query = Q.audit_page
    before = search.before if search.before is not None else (1 << 63) - 1
    found: list[AuditRow] = await pool.fetch(
        query,
        search.app,
        search.actor,
        search.action,
        before,
        PAGE_SIZE + 1,
        AUDIT_SCAN,
        record_class=AuditRow,
    )
    rows = [r for r in found if r.id is not None]
    if len(rows) > PAGE_SIZE:
        return AuditPage(rows[:PAGE_SIZE], rows[PAGE_SIZE - 1].id)
    edge = found[0] if found else None
    if edge is not None and edge.scanned >= AUDIT_SCAN and edge.scan_floor is not None:
        return AuditPage(rows, edge.scan_floor, partial=True)
    return AuditPage(rows, None)

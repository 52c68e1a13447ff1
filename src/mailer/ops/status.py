"""What `/readyz` and `mailer status` report: readiness, queue depth, workers, events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from mailer.db import migrate
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.logs import describe
from mailer.ops import heartbeat
from mailer.ops.event_clock import ClockRow, event_clock, silence_of
from mailer.ops.outage import is_unavailable
from mailer.ops.rows import DueJobs, JobStateCount

Q = Queries("mailer.ops")

JOB_STATES = ("queued", "sending", "done", "failed", "canceled")


@dataclass
class Readiness:
    """The answer of `/readyz`: ready, or why not."""

    ready: bool
    reason: str | None = None
    message: str | None = None
    workers: int | None = None
    error: BaseException | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        """The JSON body of `/readyz`."""
        if self.ready:
            return {"ready": True, "live_workers": self.workers}
        return {"ready": False, "reason": self.reason, "message": self.message}


async def readiness(pool: asyncpg.Pool, *, timeout: float = 3.0) -> Readiness:
    """Whether this process can serve: the database answers within `timeout` seconds and
    has every migration this code needs; with the number of live workers."""
    try:
        async with asyncio.timeout(timeout):
            async with pool.acquire() as conn:
                await migrate.check(conn)  # type: ignore[arg-type]
                workers = await heartbeat.live_worker_count(conn)
    except migrate.PendingMigrations as exc:
        return Readiness(False, "migrations_pending", str(exc))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return Readiness(
            False,
            "database_unreachable",
            f"the database is unreachable ({describe(exc)})",
            error=exc,
        )
    return Readiness(True, workers=workers)


async def status_report(conn: Conn, *, silence_after: float = 900.0) -> dict[str, Any]:
    """Everything `mailer status` shows, as plain data; `silence_after` is
    MAILER_EVENT_SILENCE_AFTER (see ops/event_clock.py)."""
    states = dict.fromkeys(JOB_STATES, 0)
    for row in await conn.fetch(Q.job_states, record_class=JobStateCount):
        states[row.state] = row.jobs
    due = await conn.fetchrow(Q.due_jobs, record_class=DueJobs)
    assert due is not None
    workers = [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "version": w.version,
            "started_at": w.started_at.isoformat(),
            "last_seen_seconds_ago": round(w.seen_seconds_ago, 1),
            "alive": w.alive,
        }
        for w in await heartbeat.workers(conn)
    ]
    clock = await event_clock(conn)
    silence = silence_of(clock, silence_after)
    return {
        "jobs": states,
        "due_now": due.due,
        "oldest_due_seconds": round(due.oldest_seconds, 1),
        "live_workers": sum(1 for w in workers if w["alive"]),
        "workers": workers,
        "last_callback_seconds_ago": _last_callback_of(clock),
        "last_event_by_type": _events_of(clock),
        "event_silence": {
            "silent": silence.silent,
            "sends_waiting_seconds": _rounded(silence.waiting_seconds),
            "last_sent_seconds_ago": _rounded(silence.last_sent_seconds_ago),
            "silence_after_seconds": silence_after,
        },
    }


async def last_events(conn: Conn) -> tuple[list[dict[str, Any]], float | None]:
    """When the last Mailjet event of each type came (a type that stays silent points at a
    missing or wrong event callback), and how long ago the last of any arrived (None:
    never); one read of the event clock."""
    clock = await event_clock(conn)
    return _events_of(clock), _last_callback_of(clock)


def _events_of(clock: list[ClockRow]) -> list[dict[str, Any]]:
    return [
        {
            "type": row.type,
            "last_received_at": row.last_at.isoformat(),
            "seconds_ago": round(row.seconds_ago, 1),
        }
        for row in clock
        if row.type != "accepted"
    ]


def _last_callback_of(clock: list[ClockRow]) -> float | None:
    # From the clock, not from the stored bodies: a backfill stores bodies too.
    ages = [row.seconds_ago for row in clock if row.type != "accepted"]
    return _rounded(min(ages, default=None))


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines of text for a terminal."""
    jobs = report["jobs"]
    lines = [
        "jobs:     " + "  ".join(f"{state} {jobs[state]}" for state in JOB_STATES),
        f"due now:  {report['due_now']} (oldest waiting {report['oldest_due_seconds']:.0f} s)",
        f"workers:  {report['live_workers']} alive",
    ]
    for w in report["workers"]:
        state = "alive" if w["alive"] else "gone"
        lines.append(
            f"  {w['id']}  {state}, version {w['version']}, started {w['started_at']}, "
            f"seen {_age(w['last_seen_seconds_ago'])}"
        )
    lines.append(f"Mailjet callbacks: last {_age(report['last_callback_seconds_ago'])}")
    if report["last_event_by_type"]:
        lines.append("last event by type:")
        for event in report["last_event_by_type"]:
            lines.append(f"  {event['type']:<18} {_age(event['seconds_ago'])}")
    else:
        lines.append("no Mailjet events yet")
    silence = report["event_silence"]
    if silence["silent"]:
        lines.append(
            f"EVENT SILENCE: Mailjet accepted sends {_age(silence['sends_waiting_seconds'])} "
            f"and no `sent` event came since (last {_age(silence['last_sent_seconds_ago'])}): "
            "run `mailer mailjet doctor`, then `mailer mailjet backfill --since …`"
        )
    return "\n".join(lines)

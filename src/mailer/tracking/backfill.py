"""``mailer mailjet backfill --since T``: fill the gaps lost callbacks left, from Mailjet.

Mailjet retries a failed callback for a day at most (the docs disagree on how long), so
events of an outage longer than that, or of a callback that was never registered, are
lost unless asked for. The backfill asks:

1. ``GET /v3/REST/message`` for the window (``FromTS``/``ToTS``, ``ShowCustomID``,
   ``ShowContactAlt``), one page of ``Limit`` rows at a time from ``Offset``;
2. for each message that is ours (by MessageID, else CustomID = job id and address) and
   whose Mailjet ``Status`` says more than our status does, ``GET
   /v3/REST/messagehistory/{id}``; messages already as far as Mailjet says cost no call;
3. turns each history row that no stored event matches (same type, same second) into the
   event object a callback would have carried, marked ``"mailer_backfill": true``, and
   stores them through the same intake as callbacks (:func:`intake.store_body`): raw body,
   events, links, statuses by precedence, suppressions, webhooks, one transaction per page.

**Idempotent with callbacks.** A callback posted later for the same message, type and
second is not stored again (``insert_events`` checks the backfilled events, migration
0010); a second backfill skips what is stored. **Bounded**: at most ``max_calls`` Mailjet
calls per run. **Resumable**: after each page the offset is checkpointed in
``mailjet_backfills``; the same ``--since`` (or ``--resume``) continues an unfinished run
with its window.

History rows carry less than callbacks (no IP, no clicked URL, no ``error_related_to``):
a bounce's class comes from its error (reference §3.4) and its permanence from the error
and the message's ``hardbounced`` status. [infer] that ``EventAt`` equals the callback's
``time``: the simulator does so; were Mailjet's to differ, a late callback would add a
second event of that type to the feed (statuses are unaffected: they only move forward).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from mailer.db.conflicts import retrying_conflicts
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.mailjet import LookedUpMessage, MailjetClient, MessageEvent
from mailer.tracking.columns import job_id_of
from mailer.tracking.intake import store_body
from mailer.tracking.precedence import STATUS_RANK, RecipientStatus
from mailer.tracking.rows import BackfillMessage, BackfillRun

__all__ = ["BACKFILL_MARK", "BackfillReport", "NothingToResume", "backfill", "event_from_history"]

Q = Queries("mailer.tracking")

BACKFILL_MARK = "mailer_backfill"
"""The key that marks an event object a backfill rebuilt (see migration 0010)."""
PAGE_LIMIT = 1000

# /messagehistory's EventType -> the callback's `event`.
_EVENT_OF = {
    "sent": "sent",
    "opened": "open",
    "clicked": "click",
    "bounced": "bounce",
    "blocked": "blocked",
    "unsub": "unsub",
    "spam": "spam",
}
# /message's Status -> the recipient status it implies.
_STATUS_OF = {
    "sent": RecipientStatus.SENT,
    "opened": RecipientStatus.OPENED,
    "clicked": RecipientStatus.CLICKED,
    "unsub": RecipientStatus.UNSUBSCRIBED,
    "spam": RecipientStatus.SPAM,
    "bounce": RecipientStatus.BOUNCED,
    "hardbounced": RecipientStatus.BOUNCED,
    "softbounced": RecipientStatus.DEFERRED,
    "deferred": RecipientStatus.DEFERRED,
    "blocked": RecipientStatus.BLOCKED,
}
# Mailjet's bounce and block errors by class (reference §3.4).
_ERROR_CLASS = {
    **dict.fromkeys(
        ("user unknown", "mailbox inactive", "quota exceeded", "blacklisted", "spam reporter"),
        "recipient",
    ),
    **dict.fromkeys(
        ("invalid domain", "no mail host", "relay/access denied", "greylisted", "typofix"),
        "domain",
    ),
    **dict.fromkeys(("bad or empty template", "error in template language"), "content"),
    **dict.fromkeys(("sender blocked", "content blocked", "policy issue"), "spam"),
    **dict.fromkeys(("system issue", "protocol issue", "connection issue"), "system"),
    **dict.fromkeys(("preblocked", "duplicate in campaign"), "mailjet"),
}
_TEMPORARY = frozenset({"quota exceeded", "greylisted", "connection issue", "system issue"})


@dataclass
class BackfillReport:
    """What a backfill run did (cumulative over resumed runs of the same window)."""

    run_id: int
    since: datetime
    until: datetime
    total: int
    offset: int
    messages_seen: int
    histories_fetched: int
    events_stored: int
    calls: int
    finished: bool
    resumed: bool


def event_from_history(message: LookedUpMessage, row: MessageEvent) -> dict[str, Any] | None:
    """The callback event object for one history row (None for a type callbacks lack)."""
    event_type = _EVENT_OF.get(row.event_type)
    if event_type is None:
        return None
    event: dict[str, Any] = {
        "event": event_type,
        "time": row.event_at,
        "MessageID": message.message_id,
        "email": message.email or "",
        "CustomID": message.custom_id or "",
        BACKFILL_MARK: True,
    }
    if event_type in ("open", "click", "unsub") and row.useragent:
        event["agent"] = row.useragent
    elif event_type in ("bounce", "blocked"):
        error = row.state.strip().lower()
        event["error"] = error
        event["error_related_to"] = _ERROR_CLASS.get(error, "")
        if row.comment:
            event["comment"] = row.comment
        if event_type == "bounce":
            permanent = message.status == "hardbounced" or error in (
                "user unknown",
                "mailbox inactive",
            )
            event["hard_bounce"] = permanent and error not in _TEMPORARY
            event["blocked"] = False
    return event


def _says_more(mailjet_status: str | None, ours: str) -> bool:
    implied = _STATUS_OF.get(mailjet_status or "")
    return implied is not None and STATUS_RANK[implied] > STATUS_RANK[RecipientStatus(ours)]


def _new_events(
    message: LookedUpMessage, ours: BackfillMessage, history: Sequence[MessageEvent]
) -> list[dict[str, Any]]:
    known = set(zip(ours.known_types, ours.known_times, strict=True))
    events = []
    for row in history:
        event = event_from_history(message, row)
        if event is not None and (event["event"], row.event_at) not in known:
            events.append(event)
    return events


async def _ours(conn: Conn, page: Sequence[LookedUpMessage]) -> dict[int, BackfillMessage]:
    rows = await conn.fetch(
        Q.backfill_messages,
        [m.message_id for m in page],
        [job_id_of(m.custom_id) for m in page],
        [(m.email or "").lower() for m in page],
        record_class=BackfillMessage,
    )
    return {row.ord - 1: row for row in rows}


class NothingToResume(Exception):
    """``backfill(since=None)`` found no unfinished run to go on with."""


async def _start(
    pool: asyncpg.Pool, since: datetime | None, until: datetime | None, restart: bool
) -> tuple[BackfillRun, bool]:
    async with pool.acquire() as conn:
        if not restart:
            run = await conn.fetchrow(Q.backfill_resume, since, record_class=BackfillRun)
            if run is not None:
                return run, True
        if since is None:
            raise NothingToResume("no unfinished backfill to resume")
        run = await conn.fetchrow(
            Q.backfill_start, since, until or datetime.now(UTC), record_class=BackfillRun
        )
    assert run is not None
    return run, False


async def backfill(
    pool: asyncpg.Pool,
    client: MailjetClient,
    since: datetime | None,
    *,
    until: datetime | None = None,
    max_calls: int = 5000,
    page_size: int = PAGE_LIMIT,
    restart: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> BackfillReport:
    """Backfill the window from ``since`` (to ``until``, default now) with at most
    ``max_calls`` Mailjet calls; ``on_progress(done, total)`` after each message. An
    unfinished run of the same ``since`` is resumed with its window; ``since=None`` resumes
    the latest unfinished run (:class:`NothingToResume` if there is none). See the
    module's docstring."""
    run, resumed = await _start(pool, since, until, restart)
    report = BackfillReport(
        run.id, run.from_ts, run.to_ts, run.total or 0, run.next_offset, run.messages_seen,
        run.histories_fetched, run.events_stored, 0, False, resumed,
    )  # fmt: skip
    calls_before = run.calls
    while report.calls < max_calls:
        page, report.total = await client.list_messages_page(
            since=report.since, until=report.until, offset=report.offset, limit=page_size
        )
        report.calls += 1
        if not page:
            report.finished = True
            break
        done = await _backfill_page(pool, client, page, report, max_calls, on_progress)
        report.offset += done
        report.finished = report.offset >= report.total
        await _checkpoint(pool, report, calls_before)
        if report.finished or done < len(page):
            break
    await _checkpoint(pool, report, calls_before)
    return report


async def _backfill_page(
    pool: asyncpg.Pool,
    client: MailjetClient,
    page: Sequence[LookedUpMessage],
    report: BackfillReport,
    max_calls: int,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Fetch the histories the page needs (within the budget) and store what they add;
    return how many of the page's messages were handled (the rest wait for the next run)."""
    async with pool.acquire() as conn:
        ours = await _ours(conn, page)
    events: list[dict[str, Any]] = []
    done = 0
    for index, message in enumerate(page):
        mine = ours.get(index)
        if mine is not None and _says_more(message.status, mine.status):
            if report.calls >= max_calls:
                break
            history = await client.message_history(message.message_id)
            report.calls += 1
            report.histories_fetched += 1
            events += _new_events(message, mine, history)
        done += 1
        report.messages_seen += 1
        if on_progress is not None:
            on_progress(report.offset + done, report.total)
    if events:
        report.events_stored += await _store(pool, events)
    return done


async def _store(pool: asyncpg.Pool, events: list[dict[str, Any]]) -> int:
    body = orjson.dumps(events)

    async def attempt() -> int:
        async with pool.acquire() as conn, conn.transaction():
            return (await store_body(conn, body)).stored

    return await retrying_conflicts(attempt, action="backfill_retry")


async def _checkpoint(pool: asyncpg.Pool, report: BackfillReport, calls_before: int) -> None:
    await pool.execute(
        Q.backfill_checkpoint,
        report.run_id,
        report.offset,
        report.total,
        report.messages_seen,
        report.histories_fetched,
        report.events_stored,
        calls_before + report.calls,
        report.finished,
    )

"""Re-deriving events and statuses from the stored callback bodies (after a parser fix).

Every body Mailjet posted is kept byte for byte (``event_posts``). Reprocessing parses them
again, in arrival order and with the time each was first parsed at, and:

- rewrites what the parser derives for events already stored (type, status, MessageID,
  CustomID, details, suppression reason …). An event keeps its id, its raw object, its link
  to its message and its place in the feed: apps never see an event move or repeat;
- stores events the old parser had not produced, and links them like new ones;
- re-derives the statuses of the messages whose events changed, from scratch: our own
  verdict raised by the highest-ranked event (so a status can also go *down* when a
  fixed parser takes back what a buggy one claimed);
- removes suppressions whose causing event no longer suppresses (unless another event
  still does; manual entries are never touched) and adds those now warranted;
- retries linking every still unlinked event that names a MessageID or one of our jobs.

Running it twice changes nothing the second time: only events whose derived fields differ
are rewritten, and everything after follows from those.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from typing import TypeVar

import asyncpg

from mailer.db.conflicts import retrying_conflicts
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.tracking.apply import apply_linked, link_unlinked
from mailer.tracking.columns import columns_of, may_contain_nul
from mailer.tracking.engagement import DEFAULT_SCANNER_SECONDS
from mailer.tracking.parse import InvalidCallbackBody, parse_callback_body
from mailer.tracking.precedence import STATUS_CHAIN, STATUS_RANK, RecipientStatus
from mailer.tracking.rows import LinkedEvent, PendingEvent, Post, ReparsedEvent
from mailer.tracking.timing import with_timing

__all__ = ["ReprocessReport", "reprocess"]

Q = Queries("mailer.tracking")
log = logging.getLogger(__name__)

_ACCEPTED_RANK = STATUS_RANK[RecipientStatus.ACCEPTED]
_Keyed = TypeVar("_Keyed", Post, PendingEvent)


@dataclass
class ReprocessReport:
    """Counts of what one reprocessing run did."""

    posts: int = 0
    unreadable_posts: int = 0
    events: int = 0
    new_events: int = 0
    changed_events: int = 0
    linked: int = 0
    statuses_changed: int = 0
    suppressions_removed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return dict(self.__dict__)

    def add(self, other: ReprocessReport) -> None:
        """Count what another (committed) part of the run did, too."""
        for name, value in other.__dict__.items():
            setattr(self, name, getattr(self, name) + value)


async def reprocess(
    pool: asyncpg.Pool, *, batch: int = 100, scanner_seconds: float = DEFAULT_SCANNER_SECONDS
) -> ReprocessReport:
    """Re-derive events, links, statuses and suppressions from every stored body.

    Opens and clicks are classified by timing (``scanner_seconds``, see
    :mod:`mailer.tracking.timing`) with every event stored so far.

    Each batch of ``batch`` bodies is one transaction, so an interrupted run can simply be
    started again; one that loses a deadlock (with an intake or a worker recording the
    same messages) runs again.
    """
    report = ReprocessReport()
    async for posts in _pages(pool, Q.posts_after, Post, batch):
        batch_report = partial(_reprocess_posts, pool, posts, scanner_seconds)
        report.add(await retrying_conflicts(batch_report, action="events_reprocess_retry"))
        log.info(
            "reprocessed event posts",
            extra={
                "action": "events_reprocessed",
                "through_post": posts[-1].id,
                **report.as_dict(),
            },
        )
    await _link_pending(pool, report, batch * 100)
    return report


REPROCESS_REASON = "reprocessed: the event that caused it no longer suppresses"


async def _reprocess_posts(
    pool: asyncpg.Pool, posts: list[Post], scanner_seconds: float
) -> ReprocessReport:
    """Reprocess `posts` in one transaction; what it did, once committed."""
    counts = ReprocessReport()
    async with pool.acquire() as conn, conn.transaction():
        # What the suppression history records for the changes this transaction makes.
        await conn.execute(Q.set_change_context, REPROCESS_REASON, "reprocess")
        for post in posts:
            await _reprocess_post(conn, post, counts, scanner_seconds)
    return counts


async def _reprocess_post(
    conn: Conn, post: Post, report: ReprocessReport, scanner_seconds: float
) -> None:
    report.posts += 1
    received = post.received_at.astimezone(UTC)
    try:
        body = bytes(post.body)
        events = parse_callback_body(body, now=received)
    except InvalidCallbackBody:
        report.unreadable_posts += 1
        return
    report.events += len(events)
    columns = columns_of(events, nul_free=not may_contain_nul(body))
    if not columns:
        return
    columns = await with_timing(conn, columns, scanner_seconds)
    changed = await conn.fetch(
        Q.reparse_events, post.id, *columns.args(), record_class=ReparsedEvent
    )
    if not changed:
        return
    report.new_events += sum(1 for r in changed if r.inserted)
    report.changed_events += sum(1 for r in changed if not r.inserted)
    ids = [r.id for r in changed]
    linked_now = await link_unlinked(conn, changed)
    report.linked += len(linked_now)
    keys = [(r.job_id, r.position) for r in changed if r.job_id is not None]
    keys += [(r.job_id, r.position) for r in linked_now if r.job_id is not None]
    if keys:
        updated = await conn.fetch(
            Q.recompute_statuses,
            [k[0] for k in keys],
            [k[1] for k in keys],
            STATUS_CHAIN,
            _ACCEPTED_RANK,
        )
        report.statuses_changed += len(updated)
    report.suppressions_removed += await conn.fetchval(Q.drop_unwarranted_suppressions, ids)
    # Suppressions now warranted, MessageIDs the events reveal, and what those link; the
    # events linked only now also go to the app's webhooks.
    new_ids = {r.id for r in linked_now}
    rows = await conn.fetch(Q.linked_events, ids, record_class=LinkedEvent)
    await apply_linked(conn, [r for r in rows if r.id in new_ids])
    await apply_linked(conn, [r for r in rows if r.id not in new_ids], just_linked=False)


async def _link_pending(pool: asyncpg.Pool, report: ReprocessReport, batch: int) -> None:
    async for pending in _pages(pool, Q.pending_events_after, PendingEvent, batch):
        link = partial(_link_and_apply, pool, pending)
        report.linked += await retrying_conflicts(link, action="events_reprocess_retry")


async def _pages(
    pool: asyncpg.Pool, query: str, row: type[_Keyed], batch: int
) -> AsyncIterator[list[_Keyed]]:
    """The rows of `query` (`id > $1 … ORDER BY id LIMIT $2`), `batch` at a time."""
    after = 0
    while rows := await pool.fetch(query, after, batch, record_class=row):
        yield rows
        after = rows[-1].id


async def _link_and_apply(pool: asyncpg.Pool, pending: list[PendingEvent]) -> int:
    """Link and apply what of `pending` can be, in one transaction; how many were linked."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await link_unlinked(conn, pending)
        await apply_linked(conn, rows)
    return len(rows)

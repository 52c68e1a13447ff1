"""`GET /jobs`: an app's jobs newest first, filtered, one keyset page at a time.

Job ids are UUIDv7, so their order is the order of creation and a page is a range of ids
below the cursor. Each filter that can lead has an index whose range is exactly its jobs
(the recipient: `messages_by_app_email`; a tag: `job_tags`; a queue state:
`jobs_by_app_state`; an idempotency key: its unique index; else `jobs_by_app`), and the
others thin that range out; a page looks at no more than `SCAN_BUDGET` jobs of it. A
time range on `created_at` narrows the id range too: a job's
id is made when it is accepted, `created_at` when it is stored, so the range is widened by
`CLOCK_MARGIN` and the exact test is on `created_at`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from mailer.db.queries import Queries
from mailer.delivery.job_status import QUEUE_STATES, job_status_of, recipient_status_of
from mailer.delivery.rows import ListedJob
from mailer.ids import uuid7_floor
from mailer.tracking.precedence import STATUS_CHAIN

__all__ = ["JOB_STATUSES", "InvalidCursor", "JobFilters", "JobPage", "list_jobs"]

Q = Queries("mailer.delivery")

JOB_STATUSES: tuple[str, ...] = (*QUEUE_STATES, *STATUS_CHAIN)
"""Every status a job can have, as `/status` and the `status` filter name them."""

CLOCK_MARGIN = timedelta(minutes=1)
SCAN_BUDGET = 1000
"""At most this many jobs of the leading index range are looked at per page: a page of a
filter that matches few of them holds fewer jobs (maybe none) and a `next_cursor` that
continues below what it looked at, so that no page costs more than this many jobs."""
_NO_ID = uuid.UUID(int=0)
_PAST_EVERY_ID = uuid.UUID(int=(1 << 128) - 1)
_CURSOR = re.compile(r"^j1\.([0-9a-f]{32})$")


class InvalidCursor(ValueError):
    """The cursor was not made by this listing."""


@dataclass(frozen=True, slots=True)
class JobFilters:
    """What `GET /jobs` filters on; None: not filtered."""

    recipient: str | None = None
    status: str | None = None
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """A page of jobs, and the cursor of the next one (None: this was the last)."""

    jobs: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(job_id: uuid.UUID) -> str:
    """The opaque cursor that continues after `job_id`."""
    return base64.urlsafe_b64encode(f"j1.{job_id.hex}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> uuid.UUID:
    """The job id a cursor of `encode_cursor` continues after; `InvalidCursor` otherwise."""
    try:
        text = base64.b64decode(value + "=" * (-len(value) % 4), b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None
    match = _CURSOR.match(text)
    if match is None:
        raise InvalidCursor("invalid cursor")
    return uuid.UUID(match.group(1))


def _query_for(filters: JobFilters) -> str:
    """The query that reads the page from the narrowest index the filters name."""
    if filters.idempotency_key is not None:
        return Q.list_jobs_by_key
    if filters.recipient is not None:
        return Q.list_jobs_by_recipient
    if filters.tag is not None:
        return Q.list_jobs_by_tag
    if filters.status in QUEUE_STATES:
        return Q.list_jobs_by_state
    return Q.list_jobs


def id_range(filters: JobFilters, after: uuid.UUID | None) -> tuple[uuid.UUID, uuid.UUID]:
    """The ids a page can hold: (below this, at or above that)."""
    below = _PAST_EVERY_ID if after is None else after
    if filters.created_to is not None:
        below = min(below, uuid7_floor(filters.created_to + CLOCK_MARGIN))
    lowest = _NO_ID
    if filters.created_from is not None:
        lowest = uuid7_floor(filters.created_from - CLOCK_MARGIN)
    return below, lowest


async def list_jobs(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    filters: JobFilters,
    *,
    after: str | None = None,
    limit: int = 20,
) -> JobPage:
    """The app's jobs matching `filters`, newest first, `limit` after the cursor `after`.

    Raises:
        InvalidCursor: `after` is not a cursor of this listing.
    """
    below, lowest = id_range(filters, None if after is None else decode_cursor(after))
    rows = await pool.fetch(
        _query_for(filters),
        app_id,
        below,
        lowest,
        filters.created_from,
        filters.created_to,
        filters.status,
        STATUS_CHAIN,
        None if filters.recipient is None else filters.recipient.lower(),
        filters.tag,
        filters.idempotency_key,
        limit + 1,
        SCAN_BUDGET,
        record_class=ListedJob,
    )
    found = [r for r in rows if r.id is not None][: limit + 1]
    if len(found) > limit:
        return JobPage([job_summary(r) for r in found[:limit]], encode_cursor(found[-2].id))
    # A short page: the range is done, unless the scan stopped at its budget.
    floor, scanned = rows[-1].scan_floor, rows[-1].scanned
    cursor = encode_cursor(floor) if floor is not None and scanned == SCAN_BUDGET else None
    return JobPage([job_summary(r) for r in found], cursor)


def job_summary(row: ListedJob) -> dict[str, Any]:
    """A job as `GET /jobs` lists it (`/status/{job_id}` has the whole document)."""
    statuses = [recipient_status_of(row.state, s) for s in row.statuses]
    return {
        "job_id": str(row.id),
        "status": job_status_of(row.state, row.statuses),
        "recipient_statuses": dict(Counter(statuses)),
        "recipients": [
            {"email": e, "kind": k, "status": s}
            for e, k, s in zip(row.emails, row.kinds, statuses, strict=True)
        ],
        "subject": row.subject,
        "tags": row.tags or [],
        "metadata": row.metadata,
        "idempotency_key": row.idempotency_key,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "sent_at": row.sent_at,
    }

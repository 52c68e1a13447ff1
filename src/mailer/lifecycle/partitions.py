"""The tables partitioned by day: raw callback bodies (``event_posts``, migration 0011) and
webhook attempts (``webhook_attempts``, migration 0019). Their partitions are made ahead
and dropped whole once expired.

Mailer makes each day's partition a few days ahead (at every retention run and when a
worker starts), so no operator cron job is needed; a day no partition covers lands in the
default partition, and is emptied by retention's batch deletes. A day whose end is older
than the retention period is detached and dropped: no row-by-row delete, no bloat, and no
long wait for writers (making or dropping a partition that cannot lock the table within a
second is left to the next run). The rows from before a table was partitioned form one
partition (``<table>_until_NNNN``), emptied by the batch deletes and dropped once empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mailer.db.pool import Conn
from mailer.lifecycle.address_key import Q
from mailer.lifecycle.rows import PartitionName

DAYS_AHEAD = 3


@dataclass(frozen=True)
class DayPartitioned:
    """A table partitioned by day, and the partition of its rows from before."""

    table: str
    leftover: str


POSTS = DayPartitioned("event_posts", "event_posts_until_0011")
ATTEMPTS = DayPartitioned("webhook_attempts", "webhook_attempts_until_0019")
TABLES = (POSTS, ATTEMPTS)


async def add_ahead(
    conn: Conn,
    today: date,
    days: int = DAYS_AHEAD,
    tables: tuple[DayPartitioned, ...] = TABLES,
) -> int:
    """Make the partitions of ``today`` and the ``days`` after it, of each table; return
    how many were new."""
    made = 0
    for spec in tables:
        for offset in range(days + 1):
            day = today + timedelta(days=offset)
            made += bool(await conn.fetchval(Q.add_day_partition, spec.table, day))
    return made


async def drop_expired(conn: Conn, spec: DayPartitioned, cutoff: datetime) -> list[str]:
    """Drop the day partitions of ``spec`` that end before ``cutoff``; return their names."""
    dropped = []
    prefix = f"{spec.table}_p"
    for row in await conn.fetch(Q.day_partitions, spec.table, record_class=PartitionName):
        day = datetime.strptime(row.name.removeprefix(prefix), "%Y%m%d").date()
        if day + timedelta(days=1) > cutoff.date():
            break
        if not await conn.fetchval(Q.drop_day_partition, spec.table, row.name):
            break  # the table is busy: the next run drops it
        dropped.append(row.name)
    return dropped


async def drop_emptied_leftover(conn: Conn, spec: DayPartitioned) -> bool:
    """Drop the partition of the rows from before partitioning once retention has emptied
    it; return whether it was dropped."""
    return bool(await conn.fetchval(Q.drop_emptied_leftover, spec.table, spec.leftover))

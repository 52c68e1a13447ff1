"""The day partitions of the raw callback bodies (``event_posts``): made ahead, dropped
whole once expired.

Mailer makes each day's partition a few days ahead (at every retention run and when a
worker starts), so no operator cron job is needed; a day no partition covers lands in the
default partition, and is emptied by retention's batch deletes. A day whose end is older
than the retention period is detached and dropped: no row-by-row delete, no bloat.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from mailer.db.pool import Conn
from mailer.lifecycle.address_key import Q
from mailer.lifecycle.rows import PartitionName

DAYS_AHEAD = 3


async def add_ahead(conn: Conn, today: date, days: int = DAYS_AHEAD) -> int:
    """Make the partitions of ``today`` and the ``days`` after it; return how many were new."""
    made = 0
    for offset in range(days + 1):
        made += bool(await conn.fetchval(Q.add_post_partition, today + timedelta(days=offset)))
    return made


async def drop_expired(conn: Conn, cutoff: datetime) -> list[str]:
    """Drop the day partitions that end before ``cutoff``; return their names."""
    dropped = []
    for row in await conn.fetch(Q.post_partitions, record_class=PartitionName):
        day = datetime.strptime(row.name.removeprefix("event_posts_p"), "%Y%m%d").date()
        if day + timedelta(days=1) > cutoff.date():
            break
        await conn.execute(Q.drop_post_partition, row.name)
        dropped.append(row.name)
    return dropped


async def drop_emptied_leftover(conn: Conn) -> bool:
    """Drop the partition of the rows from before partitioning once retention has emptied
    it; return whether it was dropped."""
    if not await conn.fetchval(Q.leftover_partition_exists):
        return False
    if await conn.fetchval(Q.leftover_posts):
        return False
    await conn.execute(Q.drop_post_partition, "event_posts_until_0011")
    return True

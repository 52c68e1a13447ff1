"""The rows the stats' queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

from datetime import datetime

from mailer.db.rows import Column, Row

__all__ = ["PeriodRow"]


class PeriodRow(Row):
    """One period's sums of the hourly rollups (``stats_periods``)."""

    start = Column[datetime]()
    accepted = Column[int]()
    sent = Column[int]()
    delivered = Column[int]()
    bounced_hard = Column[int]()
    bounced_soft = Column[int]()
    blocked = Column[int]()
    complained = Column[int]()
    unsubscribed = Column[int]()
    opened = Column[int]()
    opened_unique = Column[int]()
    opened_human = Column[int]()
    opened_human_unique = Column[int]()
    clicked = Column[int]()
    clicked_unique = Column[int]()
    clicked_human = Column[int]()
    clicked_human_unique = Column[int]()

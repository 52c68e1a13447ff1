"""The rows the lifecycle queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid
from typing import Any

from mailer.db.rows import Column, Row

__all__ = [
    "AppRetention",
    "BodiesPassed",
    "ExpiredJobs",
    "Id",
    "PartitionName",
    "Post",
    "PostRef",
    "SealedSecret",
]


class Id(Row):
    """A job's id (``jobs_of_address``)."""

    id = Column[uuid.UUID]()


class PostRef(Row):
    """The raw body an erased event came in (``erase_events``)."""

    post_id = Column[int]()


class Post(Row):
    """A raw callback body (``posts_naming_address``)."""

    id = Column[int]()
    body = Column[bytes]()


class SealedSecret(Row):
    """One of Mailer's own sealed secrets (``all_sealed_secrets``)."""

    name = Column[str]()
    sealed = Column[str]()


class AppRetention(Row):
    """An app's retention overrides (``app_retention``)."""

    id = Column[uuid.UUID]()
    retention = Column[dict[str, Any] | None]()


class ExpiredJobs(Row):
    """What one batch of job expiry removed (``expire_jobs``)."""

    jobs = Column[int]()
    events = Column[int]()


class BodiesPassed(Row):
    """One batch of body removal (``remove_bodies``): the last job id passed (None: none
    passed) and how many lost their bodies."""

    upto = Column[uuid.UUID | None]()
    count = Column[int]()


class PartitionName(Row):
    """A day partition of a table partitioned by day (``day_partitions``)."""

    name = Column[str]()

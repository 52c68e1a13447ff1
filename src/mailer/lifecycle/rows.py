"""The rows the lifecycle queries return, typed (see :mod:`mailer.db.rows`)."""

from __future__ import annotations

import uuid

from mailer.db.rows import Column, Row

__all__ = ["Id", "Post", "PostRef", "SealedSecret"]


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

"""What a parsed Mailjet event stores: the columns of the ``events`` table, as arrays.

Nothing here touches the database, so it is unit-tested directly. The SQL that uses these
columns is in ``queries.sql``; the orchestration in :mod:`mailer.tracking.intake`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailer.tracking.engagement import machine_reason
from mailer.tracking.parse import MailjetEvent, status_of, type_and_test
from mailer.tracking.precedence import STATUS_RANK, EventType, RecipientStatus
from mailer.tracking.suppressions import suppression_reason

__all__ = [
    "DETAIL_FIELDS",
    "EventColumns",
    "columns_of",
    "job_id_of",
    "may_contain_nul",
    "stored_type",
]

DETAIL_FIELDS: tuple[str, ...] = (
    "url",
    "hard_bounce",
    "blocked",
    "error_related_to",
    "error",
    "comment",
    "source",
    "smtp_reply",
    "ip",
    "geo",
    "agent",
    "mj_list_id",
)
"""The type-specific fields an app is shown (those the event has)."""


def job_id_of(custom_id: str | None) -> uuid.UUID | None:
    """Our job id when ``custom_id`` is one (we send the job id as Mailjet's CustomID)."""
    if not custom_id or len(custom_id) != 36:
        return None
    try:
        return uuid.UUID(custom_id)
    except ValueError:
        return None


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: replace it (the raw body keeps the original)."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _jsonb(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` made storable as jsonb (no NUL in strings), copied only when needed."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                cleaned: dict[str, Any] = _clean(value)
                return cleaned
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _details(event: MailjetEvent) -> dict[str, Any]:
    details = {}
    for name in DETAIL_FIELDS:
        value = getattr(event, name)
        if value is not None:
            details[name] = _text(value) if isinstance(value, str) else value
    return details


@dataclass(frozen=True, slots=True)
class EventColumns:
    """A batch of parsed events as column arrays, in the order of the ``insert_events`` query.

    Events repeated inside the batch are dropped (the first occurrence stays); the rest are
    ordered by event time, then by their place in the body: the order their ids, and so
    their places in the feed, are given in.
    """

    dedupe_key: list[bytes]
    type: list[str | None]
    understood: list[bool]
    status: list[str | None]
    rank: list[int | None]
    occurred_at: list[datetime]
    time_estimated: list[bool]
    message_id: list[int]
    message_uuid: list[str | None]
    email: list[str]
    custom_id: list[str | None]
    custom_job_id: list[uuid.UUID | None]
    payload: list[str | None]
    is_test: list[bool]
    suppress_reason: list[str | None]
    details: list[dict[str, Any]]
    raw: list[dict[str, Any]]
    machine_reason: list[str | None]

    def __len__(self) -> int:
        return len(self.dedupe_key)

    def args(self) -> tuple[list[Any], ...]:
        """The arrays, as query arguments."""
        return (
            self.dedupe_key,
            self.type,
            self.understood,
            self.status,
            self.rank,
            self.occurred_at,
            self.time_estimated,
            self.message_id,
            self.message_uuid,
            self.email,
            self.custom_id,
            self.custom_job_id,
            self.payload,
            self.is_test,
            self.suppress_reason,
            self.details,
            self.raw,
            self.machine_reason,
        )


def _type_text(event_type: EventType | None, raw: dict[str, Any]) -> str | None:
    if event_type is not None:
        return str(event_type)
    value = raw.get("event")
    return _text(value.strip().lower()) if isinstance(value, str) and value.strip() else None


def _type_of(event: MailjetEvent) -> str | None:
    return _type_text(event.type, event.raw)


def stored_type(item: object) -> tuple[str | None, bool, bool]:
    """The ``type``, ``understood`` and ``is_test`` columns of a decoded item, as
    :func:`columns_of` of its parsed event has them, without the rest of the parse."""
    event_type, is_test = type_and_test(item)
    raw = item if isinstance(item, dict) else {}
    return _type_text(event_type, raw), event_type is not None, is_test


def may_contain_nul(body: bytes) -> bool:
    """Whether a JSON body can decode to a string holding NUL (it must escape it)."""
    return b"\\u0000" in body


def columns_of(events: Sequence[MailjetEvent], *, nul_free: bool = False) -> EventColumns:
    """Turn parsed events into storable column arrays (see :class:`EventColumns`).

    ``nul_free`` (the body had no ``\\u0000``, see :func:`may_contain_nul`) skips looking
    for NUL characters in the raw events, which PostgreSQL cannot store.
    """
    first: dict[bytes, int] = {}
    for index, event in enumerate(events):
        first.setdefault(event.dedupe_key, index)
    ordered = sorted((events[i] for i in first.values()), key=lambda e: e.time)
    statuses: list[RecipientStatus | None] = [status_of(e) for e in ordered]
    return EventColumns(
        dedupe_key=[e.dedupe_key for e in ordered],
        type=[_type_of(e) for e in ordered],
        understood=[e.understood for e in ordered],
        status=[None if s is None else str(s) for s in statuses],
        rank=[None if s is None else STATUS_RANK[s] for s in statuses],
        occurred_at=[e.time for e in ordered],
        time_estimated=[e.time_estimated for e in ordered],
        message_id=[e.message_id for e in ordered],
        message_uuid=[_text(e.message_uuid) for e in ordered],
        email=[_text(e.email) or "" for e in ordered],
        custom_id=[_text(e.custom_id) for e in ordered],
        custom_job_id=[job_id_of(e.custom_id) for e in ordered],
        payload=[_text(e.payload) for e in ordered],
        is_test=[e.is_test for e in ordered],
        suppress_reason=[suppression_reason(e) for e in ordered],
        details=[_details(e) for e in ordered],
        raw=[e.raw for e in ordered] if nul_free else [_jsonb(e.raw) for e in ordered],
        machine_reason=[machine_reason(e.type, e.agent, e.ip) for e in ordered],
    )

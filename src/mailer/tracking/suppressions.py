"""An app's suppression list: addresses it must not send to again.

Entries come from tracking events (hard bounce, spam complaint, unsubscribe, ``preblocked``;
see :func:`suppression_reason`) with the event that caused them, or
from the app through the API. The send path consults the list when it claims a job: a
suppressed recipient gets the status ``suppressed`` and the job's other recipients are sent.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from mailer import audit
from mailer.audit import Actor
from mailer.db.queries import Queries
from mailer.tracking.parse import MailjetEvent
from mailer.tracking.precedence import EventType
from mailer.tracking.rows import (
    AddedSuppression,
    CurrentSuppression,
    Suppression,
    SuppressionChange,
)

__all__ = [
    "InvalidCursor",
    "SuppressionPage",
    "SuppressionReason",
    "add_suppression",
    "history",
    "list_suppressions",
    "reactivate",
    "suppression_reason",
]

Q = Queries("mailer.tracking")


class SuppressionReason:
    """Why an event puts its address on the app's suppression list (the stored `reason`)."""

    HARD_BOUNCE = "hard_bounce"
    SPAM_COMPLAINT = "spam_complaint"
    UNSUBSCRIBED = "unsubscribed"
    PREBLOCKED = "preblocked"
    MANUAL = "manual"
    """Added through the API without a reason."""


def suppression_reason(event: MailjetEvent) -> str | None:
    """The suppression reason ``event`` carries, or ``None`` if it does not suppress.

    A hard bounce of the recipient class (Mailjet's ``error_related_to: recipient``: user
    unknown, mailbox inactive …), a spam complaint, an unsubscribe, and a ``blocked`` event
    whose error is ``preblocked`` (Mailjet itself already refuses the address) suppress.
    Nothing else does: a hard bounce blamed on the domain, the content, a spam filter, the
    system or Mailjet (``no mail host``, ``policy issue``, ``connection issue`` …) says
    nothing permanent about the address, so it is recorded and counted but the address
    stays usable; soft bounces are ``deferred``; other ``blocked`` errors neither. Test
    events never suppress.
    """
    if event.is_test or not event.email:
        return None
    if event.type is EventType.BOUNCE and event.hard_bounce is True:
        related = (event.error_related_to or "").strip().lower()
        return SuppressionReason.HARD_BOUNCE if related == "recipient" else None
    if event.type is EventType.SPAM:
        return SuppressionReason.SPAM_COMPLAINT
    if event.type is EventType.UNSUB:
        return SuppressionReason.UNSUBSCRIBED
    if event.type is EventType.BLOCKED and (event.error or "").strip().lower() == "preblocked":
        return SuppressionReason.PREBLOCKED
    return None


class InvalidCursor(ValueError):
    """The cursor was not made by this list."""


def _encode_cursor(email: str) -> str:
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None


def _view(row: Suppression) -> dict[str, Any]:
    return {
        "email": row.email,
        "reason": row.reason,
        "event_id": None if row.event_id is None else str(row.event_id),
        "created_at": row.created_at,
        "expires_at": row.expires_at,
    }


@dataclass(frozen=True)
class SuppressionPage:
    """A page of the list (by address), and the cursor of the next one if there is more."""

    suppressions: list[dict[str, Any]]
    next_cursor: str | None


async def list_suppressions(
    pool: asyncpg.Pool, app_id: uuid.UUID, *, after: str | None = None, limit: int = 100
) -> SuppressionPage:
    """The app's suppressed addresses in address order, ``limit`` at a time.

    Raises:
        InvalidCursor: ``after`` is not a cursor of this list.
    """
    start = "" if after is None else _decode_cursor(after)
    rows = await pool.fetch(Q.list_suppressions, app_id, start, limit + 1, record_class=Suppression)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode_cursor(rows[-1].email) if more and rows else None
    return SuppressionPage([_view(r) for r in rows], cursor)


async def add_suppression(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    email: str,
    reason: str,
    actor: Actor,
    *,
    expires_at: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Suppress ``email`` (lower-cased) for the app by hand, until ``expires_at`` if given;
    an entry in force is kept as it is, an expired one replaced. An addition is audited.

    Returns the entry and whether it is new.
    """
    address = email.strip().lower()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.set_change_context, "", str(actor))
        for _ in range(3):
            row = await conn.fetchrow(
                Q.add_suppression,
                app_id,
                address,
                reason,
                expires_at,
                record_class=AddedSuppression,
            )
            if row is not None:
                if row.created:
                    await audit.record(
                        conn, actor, "suppression.added", app_id=app_id, target=address
                    )
                return _view(row), row.created
            # Inserted by a transaction that committed after this statement began: again.
    raise RuntimeError(f"could not add or read the suppression of {address}")


async def reactivate(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    email: str,
    *,
    reason: str,
    actor: Actor,
    erased_hash: bytes | None = None,
) -> bool:
    """Take ``email`` off the app's list, recording why (``reason``) and by whom in its
    history and in the audit log; False if no entry in force was there. With
    ``erased_hash`` (the address's keyed hash), a suppression kept as that hash after an
    erasure is lifted too."""
    if not reason.strip():
        raise ValueError("reactivating an address needs a reason")
    address = email.strip().lower()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.set_change_context, reason.strip(), str(actor))
        target = address
        found = await conn.fetchrow(Q.delete_suppression, app_id, address) is not None
        if not found and erased_hash is not None:
            found = (
                await conn.fetchrow(Q.delete_erased_suppression, app_id, erased_hash) is not None
            )
            target = "erased address"
        if found:
            await audit.record(
                conn,
                actor,
                "suppression.removed",
                app_id=app_id,
                target=target,
                details={"reason": reason.strip()},
            )
    return found


def _change(row: SuppressionChange) -> dict[str, Any]:
    return {
        "action": row.action,
        "reason": row.reason,
        "event_id": None if row.event_id is None else str(row.event_id),
        "expires_at": row.expires_at,
        "actor": row.actor,
        "at": row.at,
    }


async def history(
    pool: asyncpg.Pool, app_id: uuid.UUID, email: str, *, limit: int = 1000
) -> dict[str, Any]:
    """An address's entry for the app (``suppressed``: in force now) and every change of it,
    oldest first (the latest ``limit``)."""
    address = email.strip().lower()
    async with pool.acquire() as conn:
        current = await conn.fetchrow(
            Q.current_suppression, app_id, address, record_class=CurrentSuppression
        )
        changes = await conn.fetch(
            Q.suppression_history, app_id, address, limit, record_class=SuppressionChange
        )
    in_force = current is not None and current.in_force
    return {
        "email": address,
        "suppressed": in_force,
        "suppression": _view(current) if current is not None and in_force else None,
        "history": [_change(row) for row in changes],
    }

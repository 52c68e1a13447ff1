"""Erasure of a recipient (GDPR art. 17): `mailer erase ADDRESS [--app APP]`.

In one transaction: every job addressed to them (or naming them in its message or
metadata) with its recipients' rows, the events of those jobs and of the address (the feed
is made of them), the webhook deliveries and attempts about them, their entries in the raw
callback bodies (a body left with no entry is deleted), their suppressions (kept as a keyed
hash, so they still block sending; :mod:`mailer.lifecycle.address_key`), and their name in
the audit log. One audit entry records that an erasure happened, and how much it removed,
never the address.

A job with several recipients is erased for all of them: its body and headers name each.

:func:`preview` counts what an erasure would remove (the dashboard's confirmation) by
running it in a transaction that is rolled back: the same statements, so the same counts.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from mailer import audit
from mailer.audit import Actor
from mailer.db.pool import Conn
from mailer.lifecycle.address_key import Q, address_key
from mailer.lifecycle.rows import Id, Post, PostRef
from mailer.vault import SecretBox


@dataclass(frozen=True)
class Erased:
    """How much an erasure removed."""

    jobs: int
    events: int
    webhook_deliveries: int
    webhook_attempts: int
    callback_entries: int
    suppressions: int


async def erase(
    conn: Conn, address: str, *, app_id: uuid.UUID | None, box: SecretBox, actor: Actor
) -> Erased:
    """Erase ``address`` (of one app, or of every app with ``None``); see the module."""
    target = address.strip().lower()
    async with conn.transaction():
        key = await address_key(conn, box)
        jobs = [r.id for r in await conn.fetch(Q.jobs_of_address, target, app_id, record_class=Id)]
        posts = await conn.fetch(Q.erase_events, target, app_id, jobs, record_class=PostRef)
        deliveries = await conn.fetch(Q.erase_deliveries, target, app_id, jobs)
        attempts = await conn.fetch(Q.erase_attempt_answers, target, app_id)
        await conn.execute(Q.erase_jobs, jobs)
        suppressed = await conn.fetch(Q.erase_suppressions, target, app_id, key.digest(target))
        await conn.execute(Q.erase_suppression_history, target, app_id)
        entries = await _erase_from_posts(conn, target, sorted({p.post_id for p in posts}))
        await conn.execute(Q.redact_audit, target)
        erased = Erased(
            jobs=len(jobs),
            events=len(posts),
            webhook_deliveries=len(deliveries),
            webhook_attempts=len(attempts),
            callback_entries=entries,
            suppressions=len(suppressed),
        )
        await audit.record(conn, actor, "erasure", app_id=app_id, details=asdict(erased))
    return erased


class _RolledBack(Exception):
    def __init__(self, erased: Erased) -> None:
        super().__init__("preview")
        self.erased = erased


async def preview(conn: Conn, address: str, *, app_id: uuid.UUID | None, box: SecretBox) -> Erased:
    """What :func:`erase` would remove now, removing nothing (and auditing nothing): the
    erasure itself, rolled back."""
    try:
        async with conn.transaction():
            erased = await erase(
                conn, address, app_id=app_id, box=box, actor=Actor.system("erasure-preview")
            )
            raise _RolledBack(erased)
    except _RolledBack as done:
        return done.erased


async def _erase_from_posts(conn: Conn, address: str, post_ids: list[int]) -> int:
    """Drop the address's entries from the raw bodies; return how many were dropped."""
    dropped = 0
    for post in await conn.fetch(Q.posts_naming_address, address, post_ids, record_class=Post):
        kept, removed = without_address(post.body, address)
        dropped += removed
        if kept is None:
            await conn.execute(Q.delete_post, post.id)
        else:
            await conn.execute(Q.rewrite_post, post.id, kept[0], kept[1])
    return dropped


def without_address(body: bytes, address: str) -> tuple[tuple[bytes, int] | None, int]:
    """A callback body less the entries that name ``address``: ``((new body, entries
    left), entries dropped)``, or ``(None, n)`` when nothing is left (or the body is not
    JSON and names it: it goes whole)."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, 1
    entries = parsed if isinstance(parsed, list) else [parsed]
    kept = [entry for entry in entries if not _names(entry, address)]
    if not kept:
        return None, len(entries)
    return (orjson.dumps(kept), len(kept)), len(entries) - len(kept)


def _names(entry: Any, address: str) -> bool:
    return f'"{address}"' in orjson.dumps(entry).decode().lower()

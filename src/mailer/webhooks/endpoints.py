"""An app's webhook endpoints: create, read, change, delete, rotate the secret, replay.

Every function is scoped by ``app_id``: another app's endpoint reads as absent (``None``),
so the API answers 404 without revealing that it exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from mailer import audit
from mailer.audit import Actor
from mailer.db.pool import Conn
from mailer.ids import uuid7
from mailer.vault import SecretBox
from mailer.webhooks.outbox import EVENT_TYPES, OLD_EVENT_TYPES, Q, render_body
from mailer.webhooks.rows import Attempt, Endpoint
from mailer.webhooks.signing import generate_secret
from mailer.webhooks.targets import RefusedTarget, TargetPolicy

Db: TypeAlias = "asyncpg.Pool | Conn"
"""A pool or one connection: single-statement functions take either."""

ROTATION_GRACE_S = 24 * 3600
"""After a rotation the previous secret keeps signing for this long."""


class InvalidEndpoint(ValueError):
    """A URL or event type an endpoint cannot have."""


def check_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL without credentials, else raise."""
    if len(url) > 2048:
        raise InvalidEndpoint("url is longer than 2048 characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise InvalidEndpoint(f"url is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidEndpoint("url must start with http:// or https://")
    if not parts.hostname:
        raise InvalidEndpoint("url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("url must not contain credentials")
    if any(ch.isspace() for ch in url):
        raise InvalidEndpoint("url must not contain whitespace")
    return url


async def check_target(url: str, targets: TargetPolicy) -> str:
    """Return ``url`` if it is well formed (:func:`check_url`) and its host is an address
    webhooks may go to, or a name that resolves only to such addresses; else raise."""
    check_url(url)
    try:
        await targets.check_host(urlsplit(url).hostname or "")
    except RefusedTarget as exc:
        raise InvalidEndpoint(f"url is refused: {exc.reason}") from None
    return url


def check_event_types(types: Sequence[str] | None) -> list[str] | None:
    """Return the distinct, known event types (``None`` = all; an old name is taken as
    the type it stands for now), else raise."""
    if types is None:
        return None
    types = [OLD_EVENT_TYPES.get(t, t) for t in types]
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise InvalidEndpoint(
            f"unknown event types {unknown}; known: {', '.join(sorted(EVENT_TYPES))}"
        )
    if not types:
        raise InvalidEndpoint("event_types must not be empty (omit it for every type)")
    return sorted(set(types))


def endpoint_view(row: Endpoint) -> dict[str, Any]:
    """What the API shows of an endpoint (never its secret)."""
    return {
        "id": str(row.id),
        "url": row.url,
        "description": row.description,
        "event_types": row.event_types,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "disabled_at": row.disabled_at,
        "failing_since": row.first_failure_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def create(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    url: str,
    event_types: Sequence[str] | None,
    description: str | None,
    *,
    targets: TargetPolicy,
    box: SecretBox,
    actor: Actor,
) -> tuple[Endpoint, str]:
    """Create an endpoint with a new secret, stored sealed (audited); return the row and
    the clear secret (to show once)."""
    checked_url = await check_target(url, targets)
    types = check_event_types(event_types)
    secret = generate_secret()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            Q.insert_endpoint,
            uuid7(),
            app_id,
            checked_url,
            description,
            types,
            box.seal(secret),
            record_class=Endpoint,
        )
        assert row is not None
        details = {"url": checked_url, "event_types": types}
        await audit.record(
            conn, actor, "endpoint.created", app_id=app_id, target=str(row.id), details=details
        )
    return row, secret


async def list_for(conn: Db, app_id: uuid.UUID) -> list[Endpoint]:
    """The app's endpoints, oldest first."""
    return await conn.fetch(Q.list_endpoints, app_id, record_class=Endpoint)


async def get(conn: Db, app_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint | None:
    """One of the app's endpoints."""
    return await conn.fetchrow(Q.get_endpoint, endpoint_id, app_id, record_class=Endpoint)


@dataclass(frozen=True)
class Changes:
    """A PATCH: ``None`` leaves a field unchanged; ``all_event_types`` clears the filter."""

    url: str | None = None
    description: str | None = None
    event_types: Sequence[str] | None = None
    all_event_types: bool = False
    enabled: bool | None = None

    def audited(self) -> dict[str, Any]:
        """What changed, for the audit log."""
        changed: dict[str, Any] = {
            "url": self.url,
            "description": self.description,
            "event_types": None if self.event_types is None else list(self.event_types),
            "enabled": self.enabled,
        }
        found = {name: value for name, value in changed.items() if value is not None}
        if self.all_event_types:
            found["event_types"] = "all"
        return found


async def update(
    pool: asyncpg.Pool,
    app_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    changes: Changes,
    *,
    targets: TargetPolicy,
    actor: Actor,
) -> Endpoint | None:
    """Apply ``changes`` (audited); enabling an endpoint clears why it was disabled."""
    url = None if changes.url is None else await check_target(changes.url, targets)
    types = check_event_types(changes.event_types)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            Q.update_endpoint,
            endpoint_id,
            app_id,
            url,
            changes.description,
            types,
            changes.enabled,
            changes.all_event_types,
            record_class=Endpoint,
        )
        if row is not None:
            await audit.record(
                conn,
                actor,
                "endpoint.changed",
                app_id=app_id,
                target=str(endpoint_id),
                details=changes.audited(),
            )
    return row


async def delete(
    pool: asyncpg.Pool, app_id: uuid.UUID, endpoint_id: uuid.UUID, actor: Actor
) -> bool:
    """Delete an endpoint with its deliveries and log (audited); False if the app has no
    such one."""
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(Q.delete_endpoint, endpoint_id, app_id) is not None
        if found:
            await audit.record(
                conn, actor, "endpoint.deleted", app_id=app_id, target=str(endpoint_id)
            )
    return found


async def rotate_secret(
    pool: asyncpg.Pool, app_id: uuid.UUID, endpoint_id: uuid.UUID, box: SecretBox, actor: Actor
) -> tuple[Endpoint, str] | None:
    """Give the endpoint a new secret (stored sealed; audited); the old one signs too for
    :data:`ROTATION_GRACE_S`. Return the row and the new clear secret."""
    secret = generate_secret()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            Q.rotate_secret,
            endpoint_id,
            app_id,
            float(ROTATION_GRACE_S),
            box.seal(secret),
            record_class=Endpoint,
        )
        if row is None:
            return None
        await audit.record(
            conn, actor, "endpoint.secret_rotated", app_id=app_id, target=str(endpoint_id)
        )
    return row, secret


async def attempts(
    conn: Db,
    app_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The endpoint's attempt log, newest first, ``limit`` entries older than ``before``."""
    rows = await conn.fetch(
        Q.list_attempts, endpoint_id, app_id, before, limit, record_class=Attempt
    )
    return [
        {
            "id": row.id,
            "delivery_id": str(row.delivery_id),
            "event_id": row.event_id,
            "attempt": row.attempt,
            "status_code": row.status_code,
            "duration_ms": row.duration_ms,
            "error": row.error,
            "response": row.response,
            "created_at": row.created_at,
        }
        for row in rows
    ]


async def resend(
    pool: asyncpg.Pool, app_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> bool | None:
    """Queue one more attempt of a delivery, due now.

    Returns ``None`` when the app has no such delivery, ``False`` when it is being attempted
    right now (nothing to do), ``True`` when queued. A delivered or failed one gets a single
    attempt; a pending one is brought forward and keeps its retry schedule.
    """
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchval(Q.delivery_exists, delivery_id, endpoint_id, app_id)
        if state is None:
            return None
        queued = await conn.fetchval(Q.resend, delivery_id, endpoint_id, app_id) is not None
        if queued:
            await conn.execute(Q.notify)
    return queued


async def recover(
    pool: asyncpg.Pool, app_id: uuid.UUID, endpoint_id: uuid.UUID, since: datetime
) -> int:
    """Re-queue (one attempt each) the endpoint's deliveries that failed since ``since``."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(Q.recover, endpoint_id, app_id, since)
        if rows:
            await conn.execute(Q.notify)
    return len(rows)


async def reenable_and_recover(
    pool: asyncpg.Pool, app_id: uuid.UUID, endpoint_id: uuid.UUID, since: datetime
) -> tuple[Endpoint, int] | None:
    """Enable the endpoint again and re-queue (one attempt each) its deliveries that failed
    since ``since``, in one transaction: the operator's "recover" after an outage.

    Enabling clears why it was disabled and its run of failures; the deliveries that waited
    while it was disabled are due again too. Not audited here: the caller records who did
    it (the dashboard's ``record_action``). Returns the endpoint and how many failed
    deliveries were re-queued, or ``None`` when the app has no such endpoint.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            Q.update_endpoint,
            *(endpoint_id, app_id, None, None, None, True, False),
            record_class=Endpoint,
        )
        if row is None:
            return None
        requeued = await conn.fetch(Q.recover, endpoint_id, app_id, since)
        await conn.execute(Q.notify)
    return row, len(requeued)


async def send_test(
    pool: asyncpg.Pool, app_id: uuid.UUID, endpoint_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """Queue a signed ``webhook.test`` event (one attempt) for the endpoint."""
    delivery_id = uuid7()
    body = render_body("webhook.test", now, {"endpoint_id": str(endpoint_id)})
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(
            Q.insert_test_delivery,
            delivery_id,
            endpoint_id,
            app_id,
            f"test_{delivery_id.hex}",
            body,
        )
        if found is not None:
            await conn.execute(Q.notify)
    return None if found is None else delivery_id

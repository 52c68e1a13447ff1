"""Operators' sessions: a random token in a cookie, only its hash in the database.

A session ends when idle for longer than `SessionPolicy.idle_seconds`, at the latest
`absolute_seconds` after login, at logout, and when its operator is disabled or removed.
Each session has its own CSRF token, which every form of the dashboard carries and every
POST must return.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from mailer.dashboard.operators import Role
from mailer.dashboard.rows import SessionRow
from mailer.db.queries import Queries

__all__ = [
    "Operator",
    "SessionPolicy",
    "close_session",
    "open_session",
    "session_for",
    "tokens_match",
]

Q = Queries("mailer.dashboard")


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lasts: idle, and at most from its login."""

    idle_seconds: float = 30 * 60
    absolute_seconds: float = 12 * 3600


@dataclass(frozen=True)
class Operator:
    """The operator a request comes from, and its session's CSRF token."""

    id: uuid.UUID
    name: str
    role: Role
    csrf_token: str

    @property
    def may_act(self) -> bool:
        """Whether this operator may change anything (admins only)."""
        return self.role is Role.ADMIN


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def tokens_match(expected: str, given: str | None) -> bool:
    """Whether a token sent back is the one expected, compared in constant time."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


async def open_session(
    pool: asyncpg.Pool, operator_id: uuid.UUID, ip: str, policy: SessionPolicy
) -> str:
    """Start a session; return the token for its cookie (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await pool.execute(
        Q.create_session, _token_hash(token), operator_id, csrf, ip, policy.idle_seconds
    )
    return token


async def session_for(
    pool: asyncpg.Pool, token: str | None, policy: SessionPolicy
) -> Operator | None:
    """The operator of a live session token, or None (no token, unknown, expired)."""
    if not token:
        return None
    row = await pool.fetchrow(
        Q.session_for_token,
        _token_hash(token),
        policy.idle_seconds,
        policy.absolute_seconds,
        record_class=SessionRow,
    )
    if row is None:
        return None
    return Operator(row.operator_id, row.name, Role(row.role), row.csrf_token)


async def close_session(pool: asyncpg.Pool, token: str | None) -> None:
    """End the session of this token (nothing if there is none)."""
    if token:
        await pool.execute(Q.end_session, _token_hash(token))

"""Operators, the people who use the dashboard: who they are, and checking their login.

Operators are not apps: they see every app's mail, they log in with a name and a password
(generated, shown once, stored as a scrypt hash) and hold a role, ``admin`` (may act) or
``viewer`` (may look). Failed logins are counted in the database per name and per client
address, so the limit holds across every API process.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from mailer.dashboard.passwords import dummy_hash, generate_password, hash_password, verify_password
from mailer.dashboard.rows import LoginFailures, OperatorLogin, OperatorRow, OperatorSeen
from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.ids import uuid7

__all__ = [
    "InvalidOperatorName",
    "LoginPolicy",
    "LoginThrottled",
    "Role",
    "add_operator",
    "authenticate",
    "disable_operator",
    "list_operators",
    "remove_operator",
]

Q = Queries("mailer.dashboard")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


class Role(StrEnum):
    """What an operator may do: an admin acts, a viewer only looks."""

    ADMIN = "admin"
    VIEWER = "viewer"


class InvalidOperatorName(ValueError):
    """A name that is not 1 to 64 letters, digits and `._@+-` (starting with one of the
    first two)."""


class LoginThrottled(Exception):
    """Too many failed logins lately, for this name or from this address."""


@dataclass(frozen=True)
class LoginPolicy:
    """How many failed logins are allowed within a window before logins are refused."""

    window_seconds: float = 15 * 60
    max_failures_per_name: int = 5
    max_failures_per_ip: int = 20


async def add_operator(conn: Conn, name: str, role: Role) -> tuple[OperatorRow, str] | None:
    """Create an operator; return it and its one-time password (None: the name is taken).

    Raises:
        InvalidOperatorName: the name is not one :class:`InvalidOperatorName` allows.
    """
    if not _NAME.fullmatch(name):
        raise InvalidOperatorName(
            f"{name!r}: an operator's name is 1 to 64 letters, digits and ._@+-"
        )
    password = generate_password()
    stored = await asyncio.to_thread(hash_password, password)
    row = await conn.fetchrow(
        Q.add_operator, uuid7(), name, str(role), stored, record_class=OperatorRow
    )
    return None if row is None else (row, password)


async def list_operators(conn: Conn) -> list[OperatorSeen]:
    """Every operator by name, with when a session of theirs was last used."""
    return await conn.fetch(Q.list_operators, record_class=OperatorSeen)


async def remove_operator(conn: Conn, name: str) -> bool:
    """Delete an operator and its sessions; False if there was none of that name."""
    return await conn.fetchrow(Q.remove_operator, name) is not None


async def disable_operator(conn: Conn, name: str) -> bool:
    """Refuse the operator's logins and end its sessions; False if there is none."""
    return await conn.fetchrow(Q.disable_operator, name) is not None


async def authenticate(
    pool: asyncpg.Pool, name: str, password: str, ip: str, policy: LoginPolicy
) -> OperatorLogin | None:
    """The operator whose name and password these are, or None (the failure is counted).

    An unknown name costs the same hash as a wrong password, and the comparison is in
    constant time, so neither the answer nor its timing tells which names exist.

    Raises:
        LoginThrottled: too many failures within the window; the password is not checked.
    """
    failures = await pool.fetchrow(
        Q.recent_login_failures, name, ip, policy.window_seconds, record_class=LoginFailures
    )
    assert failures is not None
    if (
        failures.by_name >= policy.max_failures_per_name
        or failures.by_ip >= policy.max_failures_per_ip
    ):
        raise LoginThrottled(name)
    operator = await pool.fetchrow(Q.operator_for_login, name, record_class=OperatorLogin)
    stored = operator.password_hash if operator is not None else dummy_hash()
    if await asyncio.to_thread(verify_password, password, stored) and operator is not None:
        return operator
    await pool.execute(Q.record_login_failure, name, ip, policy.window_seconds)
    return None

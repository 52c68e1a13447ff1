"""What operators do, recorded: every dashboard action goes to the audit log (who, what,
when, from where) and to one structured log line.

Two ways in, so that each action is written down exactly once:

- an action whose domain function audits itself, in the transaction of its change
  (`tracking.suppressions.reactivate`, `delivery.limits.pause`, `delivery.job_actions.cancel`
  …), is given :func:`actor` and then only :func:`log_action`-ed;
- an action with no such function (a login, a logout) is written by :func:`record_action`.

A login refused because of too many failures is logged but not audited: anyone can repeat
it without limit, and the audit log is not for filling by strangers (the failures that
lead to the refusal are audited, and they are rate limited).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from mailer import audit
from mailer.audit import Actor

log = logging.getLogger("mailer.dashboard")

__all__ = ["OPERATOR", "actor", "log_action", "record_action"]

OPERATOR = "operator"
"""The audit log's actor kind of an operator: entries say `operator:<name>`."""


def actor(operator: str, ip: str) -> Actor:
    """The audit log's actor for an operator acting from `ip`."""
    return Actor(OPERATOR, operator, ip)


def log_action(
    action: str, *, operator: str, ip: str, target: str | None = None, **details: Any
) -> None:
    """Write the log line of an action that `operator` (from `ip`) did on `target`."""
    log.info(
        f"operator {operator}: {action}" + (f" {target}" if target else ""),
        extra={"action": action, "operator": operator, "ip": ip, "target": target} | details,
    )


async def record_action(
    pool: asyncpg.Pool,
    action: str,
    *,
    operator: str,
    ip: str,
    target: str | None = None,
    app_id: uuid.UUID | None = None,
    **details: Any,
) -> None:
    """Audit and log an action that no domain function audits (`action` is a dotted name,
    as the audit log's others: `operator.login`)."""
    async with pool.acquire() as conn:
        await audit.record(
            conn, actor(operator, ip), action, app_id=app_id, target=target, details=details or None
        )
    log_action(action, operator=operator, ip=ip, target=target, **details)

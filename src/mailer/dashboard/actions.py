"""What operators do, recorded: the one place every dashboard action is written down.

The audit log (branch `lifecycle`, issue 17's "every action is written to the audit log")
is not merged yet: until it is, :func:`record_action` writes one structured log line per
action (`action=...`, who, from where, on what). Wiring it to the audit log changes this
function only; every caller already passes what the log needs.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mailer.dashboard")

__all__ = ["record_action"]


def record_action(
    action: str, *, operator: str, ip: str, target: str | None = None, **details: Any
) -> None:
    """Record that `operator` (from `ip`) did `action` on `target`, with its details."""
    log.info(
        f"operator {operator}: {action}" + (f" {target}" if target else ""),
        extra={"action": action, "operator": operator, "ip": ip, "target": target} | details,
    )

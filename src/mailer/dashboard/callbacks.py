"""The Mailjet page's check of the event callbacks registered at Mailjet: the doctor's own
check (`mailer.tracking.doctor.callback_check`, as `mailer mailjet doctor` runs it),
asked of Mailjet at most once a minute per process so that the page stays fast.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from mailer import runtime
from mailer.config import Settings
from mailer.mailjet import MailjetClient
from mailer.mailjet.errors import MailjetError
from mailer.tracking.doctor import Finding, callback_check

__all__ = ["ASK_TIMEOUT_S", "CallbackCheck", "Checked"]

ASK_TIMEOUT_S = 5.0
"""How long the page waits for Mailjet's list of callbacks."""


@dataclass(frozen=True)
class Checked:
    """The findings, and how many seconds ago Mailjet was asked."""

    findings: list[Finding]
    age_seconds: float


@dataclass
class CallbackCheck:
    """The latest check, kept for `ttl` seconds (one per process: `install` makes it)."""

    ttl: float = 60.0
    _last: tuple[float, list[Finding]] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def findings(self, settings: Settings, *, fresh: bool = False) -> Checked:
        """The kept findings, or new ones when they are older than `ttl` (or `fresh`)."""
        async with self._lock:  # one request to Mailjet at a time, the others wait for it
            now = time.monotonic()
            if fresh or self._last is None or now - self._last[0] > self.ttl:
                self._last = (now, await ask(settings))
            asked, findings = self._last
        return Checked(findings, time.monotonic() - asked)


async def ask(settings: Settings) -> list[Finding]:
    """Ask the configured Mailjet (or simulator) for its callbacks and check them; a
    Mailjet that cannot be asked is one problem finding."""
    try:
        target = runtime.configured_mailjet(settings)
        ours = runtime.our_callback(settings)
    except (RuntimeError, ValueError) as exc:
        return [Finding("problem", "mailjet", str(exc))]
    try:
        async with (
            asyncio.timeout(ASK_TIMEOUT_S),
            MailjetClient(target.url, target.api_key, target.secret_key) as client,
        ):
            return await callback_check(client, ours)
    except (MailjetError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        return [Finding("problem", "mailjet", f"{target.url} could not be asked: {reason}")]

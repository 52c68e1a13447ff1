"""Retry policy for transient failures of Mailjet Send API calls.

Exponential backoff with *equal jitter*: the n-th retry waits a uniform random time in
``[b/2, b]`` where ``b = min(max_delay_s, base_delay_s * factor ** (n - 1))``. Equal jitter
rather than full jitter (``[0, b]``) because the usual transient failure here is Mailjet
throttling (429) or an overloaded server: full jitter sometimes retries almost at once,
which only earns another 429, while the half-delay floor still spreads retries out.

A ``Retry-After`` is treated as a floor ("not before"), clamped to
``[0, max_retry_after_s]`` so one response cannot park a message for hours.

Only *transient* failures belong here (timeouts, connection errors, 429, 5xx, a lost
answer). Permanent errors (a 400 for the message, a 401) are not retried: the caller marks
the recipients ``failed`` at once without consulting this policy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

__all__ = [
    "GIVE_UP_ATTEMPTS",
    "GIVE_UP_TOO_OLD",
    "GiveUp",
    "RetryAt",
    "RetryDecision",
    "RetryPolicy",
]

GIVE_UP_ATTEMPTS = "attempts exhausted"
GIVE_UP_TOO_OLD = "too old"

_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try again at ``at`` (``delay_s`` seconds after the decision's ``now``)."""

    at: datetime
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop retrying; ``reason`` is :data:`GIVE_UP_ATTEMPTS` or :data:`GIVE_UP_TOO_OLD`."""

    reason: str


RetryDecision: TypeAlias = RetryAt | GiveUp


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to retry a send after a transient failure, and when to give up.

    With the defaults the backoff runs 2, 4, 8, ... 512 s, then 900 s (each halved at worst by
    jitter), so the 50 attempts span roughly 5 to 10 hours: a Mailjet outage of an afternoon
    loses nothing. ``max_age`` bounds the total
    when delays are longer (large ``Retry-After`` values, or a policy with a higher cap).
    """

    base_delay_s: float = 2.0
    """Backoff before the first retry (before jitter)."""
    factor: float = 2.0
    """Growth per retry."""
    max_delay_s: float = 900.0
    """Cap on the backoff (before jitter); no jittered delay exceeds it."""
    max_attempts: int = 50
    """Attempts in total, the first one included."""
    max_age: timedelta = timedelta(hours=24)
    """No retry is scheduled later than ``first_queued_at + max_age``."""
    max_retry_after_s: float = 1800.0
    """Upper clamp for a server's ``Retry-After``."""

    def __post_init__(self) -> None:
        if not 0 < self.base_delay_s <= self.max_delay_s:
            raise ValueError("need 0 < base_delay_s <= max_delay_s")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        if self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must be >= 0")

    def backoff(self, attempts_made: int) -> float:
        """Un-jittered delay (seconds) after ``attempts_made`` failed attempts.

        Non-decreasing in ``attempts_made`` and at most ``max_delay_s``; the jittered delay
        lies in ``[backoff / 2, backoff]``, so its expected value is ``0.75 * backoff``.
        """
        if attempts_made < 1:
            raise ValueError("attempts_made must be >= 1")
        try:
            raw = self.base_delay_s * self.factor ** (attempts_made - 1)
        except OverflowError:
            return self.max_delay_s
        return min(self.max_delay_s, raw)

    def decide(
        self,
        attempts_made: int,
        first_queued_at: datetime,
        now: datetime,
        retry_after: float | None = None,
        rng: random.Random = _RNG,
    ) -> RetryDecision:
        """Decide what to do after ``attempts_made`` attempts, the last one transient-failed.

        Args:
            attempts_made: attempts so far, the failed one included (>= 1).
            first_queued_at: when the message was first queued (timezone-aware, like ``now``).
            now: the current time.
            retry_after: seconds from the server's ``Retry-After``, if any.
            rng: random source for the jitter.

        Returns:
            :class:`GiveUp` ("attempts exhausted") when ``max_attempts`` are used up;
            :class:`GiveUp` ("too old") when the next attempt would fall after
            ``first_queued_at + max_age``; otherwise :class:`RetryAt`.
        """
        if attempts_made >= self.max_attempts:
            return GiveUp(GIVE_UP_ATTEMPTS)
        ceiling = self.backoff(attempts_made)
        delay = ceiling / 2 + rng.uniform(0.0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(max(retry_after, 0.0), self.max_retry_after_s))
        at = now + timedelta(seconds=delay)
        if at > first_queued_at + self.max_age:
            return GiveUp(GIVE_UP_TOO_OLD)
        return RetryAt(at=at, delay_s=delay)

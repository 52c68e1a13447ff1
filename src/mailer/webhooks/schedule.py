"""Retry schedule for outbound webhook deliveries.

The first attempt is immediate. After a failure the next attempt waits, in turn:
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (the Svix default), then 1 day twice, so the last
attempt lands about 3.1 days after the first (Standard Webhooks and Stripe retry for about
three days). Each delay gets ±20 % uniform jitter so endpoints that failed together do not
get retried together. A ``Retry-After`` from a 429/503 is honoured within bounds: never
sooner than the schedule says, never later than twice the scheduled delay (as Svix does),
so one response cannot stretch the overall span by more than a step.

The schedule is a list rather than a formula so operators can read it.
"""

from __future__ import annotations

import random
from datetime import timedelta

__all__ = [
    "DISABLE_AFTER",
    "JITTER",
    "MAX_ATTEMPTS",
    "RETRY_AFTER_MAX_FACTOR",
    "RETRY_DELAYS_S",
    "next_attempt_delay",
]

RETRY_DELAYS_S: tuple[int, ...] = (
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
    24 * 3600,
    24 * 3600,
)
"""Base delay (seconds) before attempt ``n + 1`` is ``RETRY_DELAYS_S[n - 1]``."""

MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
"""Attempts per (event, endpoint), the immediate first one included."""

JITTER = 0.2
"""Each delay is multiplied by a uniform factor in ``[1 - JITTER, 1 + JITTER]``."""

RETRY_AFTER_MAX_FACTOR = 2.0
"""A ``Retry-After`` is honoured up to this multiple of the scheduled (base) delay."""

DISABLE_AFTER = timedelta(days=5)
"""Disable an endpoint that has had only failures for this long (the Svix default)."""

_RNG = random.Random()


def next_attempt_delay(
    attempt_number: int,
    *,
    retry_after: float | None = None,
    rng: random.Random = _RNG,
) -> float | None:
    """Seconds to wait after failed attempt ``attempt_number`` (1 = the first), or ``None``.

    Args:
        attempt_number: the 1-based number of the attempt that just failed.
        retry_after: seconds from a ``Retry-After`` header; pass it for 429 and 503 only
            (see :func:`mailer.queue.retry_after.parse_retry_after`). The result is then
            ``max(jittered, min(retry_after, RETRY_AFTER_MAX_FACTOR * base))``.
        rng: random source for the jitter (inject a seeded one in tests).

    Returns:
        The delay in seconds, or ``None`` when ``attempt_number`` was the last attempt
        (give up and record the delivery as failed).

    Raises:
        ValueError: ``attempt_number`` is less than 1.
    """
    if attempt_number < 1:
        raise ValueError("attempt_number is 1-based")
    if attempt_number >= MAX_ATTEMPTS:
        return None
    base = float(RETRY_DELAYS_S[attempt_number - 1])
    delay = base * rng.uniform(1.0 - JITTER, 1.0 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_MAX_FACTOR * base))
    return delay

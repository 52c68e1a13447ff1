"""When to retry and how long to wait: 429 and 503 answers and transport failures, with
exponential backoff and jitter, honouring `Retry-After` up to a bound."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delay-seconds or an HTTP date); None when
    absent or unreadable. A date in the past gives 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RetryPolicy:
    """How a request is retried.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        backoff: the first wait, in seconds, without `Retry-After`; doubles per retry.
        max_backoff: the longest computed wait.
        max_retry_after: the longest wait a server's `Retry-After` can ask for; a longer
            one is cut to this.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt follows attempt number `attempt` (0 is the first)."""
        return attempt < self.max_retries

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before the retry that follows attempt number `attempt`."""
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after)
        base = min(self.max_backoff, self.backoff * 2.0**attempt)
        # Full jitter in the upper half: spreads retries of many clients, never waits ~0.
        return base * self.rng.uniform(0.5, 1.0)

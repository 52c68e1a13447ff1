"""The one ``Retry-After`` parser (RFC 9110, section 10.2.3), for every queue that retries.

A server answers either delay-seconds (``"120"``) or an HTTP-date
(``"Wed, 21 Oct 2015 07:28:00 GMT"``). Some send a decimal (``"1.5"``): it is accepted as
seconds. HTTP-dates are always GMT; one that parses without a zone (``"-0000"``) is GMT too.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``now`` (default: the current time), never negative.

    Returns ``None`` when the header is absent, empty or unparsable. A date in the past,
    or a negative number, gives ``0``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until_date(text, now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until_date(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return (when - reference).total_seconds()

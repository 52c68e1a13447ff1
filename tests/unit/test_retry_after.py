"""The one Retry-After parser, used by the Mailjet client and the webhook dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.queue.retry_after import parse_retry_after

NOW = datetime(2015, 10, 21, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 0 ", 0.0),
        (" 1.5 ", 1.5),  # not RFC 9110, but sent by some servers: it means seconds
        ("-4", 0.0),  # never a negative wait
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1680.0),
        ("Wed, 21 Oct 2015 06:00:00 GMT", 0.0),  # already past
        ("Wed, 21 Oct 2015 07:28:00 -0000", 1680.0),  # HTTP-dates are GMT
        ("Wed, 21 Oct 2015 09:28:00 +0200", 1680.0),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_defaults_to_current_time() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


@given(st.text(max_size=40))
def test_any_header_gives_none_or_a_finite_wait(header: str) -> None:
    seconds = parse_retry_after(header, now=NOW)
    assert seconds is None or 0.0 <= seconds < float("inf")

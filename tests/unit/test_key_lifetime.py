"""API key lifetimes as `--expires` takes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.apps.keys import parse_lifetime


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("30M", timedelta(minutes=30))],
)
def test_lifetimes(text: str, lifetime: timedelta) -> None:
    assert parse_lifetime(text) == lifetime


@pytest.mark.parametrize("text", ["", "0d", "90", "d", "1.5d", "-3d", "9999999d", "3w"])
def test_bad_lifetimes_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="90d, 12h or 30m"):
        parse_lifetime(text)

"""Pure logic of limits and stats: the quota's Retry-After, an app's hold, period
alignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from mailer.delivery.limits import Hold, hold_at, seconds_until_next_utc_day
from mailer.stats.rollups import STEP, aligned

MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


@given(MOMENTS)
def test_the_quota_renews_at_the_next_utc_midnight(now: datetime) -> None:
    wait = seconds_until_next_utc_day(now)
    assert 1 <= wait <= 86_400
    renewed = (now + timedelta(seconds=wait)).astimezone(UTC)
    assert renewed.time() < datetime.min.replace(second=1).time()  # 00:00:00.xxx UTC


@given(MOMENTS, st.sampled_from(["hour", "day"]))
def test_aligned_periods_contain_the_moment(moment: datetime, granularity: str) -> None:
    down = aligned(moment, granularity)  # type: ignore[arg-type]
    up = aligned(moment, granularity, up=True)  # type: ignore[arg-type]
    step = STEP[granularity]  # type: ignore[index]
    assert down <= moment < down + step
    assert up - step < moment <= up
    assert down.tzinfo is UTC and down.minute == down.second == down.microsecond == 0
    if granularity == "day":
        assert down.hour == 0


NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def test_an_apps_hold() -> None:
    assert hold_at(NOW, paused=False, rate=None, tokens=0, tokens_at=NOW) is None  # a quota
    assert hold_at(NOW, paused=True, rate=5.0, tokens=5, tokens_at=NOW) == Hold("paused", None)
    # Half a token, refilling at 2 a second: the next email may go in a quarter second.
    assert hold_at(NOW, paused=False, rate=2.0, tokens=0.5, tokens_at=NOW) == Hold(
        "rate_limited", NOW + timedelta(seconds=0.25)
    )
    # A token refilled since: it goes with the next claim.
    a_second_ago = NOW - timedelta(seconds=1)
    assert hold_at(NOW, paused=False, rate=2.0, tokens=0, tokens_at=a_second_ago) is None


@given(st.floats(0.01, 1000), st.floats(0, 1000), st.floats(0, 3600))
def test_a_rate_limited_app_waits_at_most_one_token(
    rate: float, tokens: float, idle: float
) -> None:
    tokens = min(tokens, max(rate, 1.0))  # a bucket never holds more than it can
    hold = hold_at(
        NOW, paused=False, rate=rate, tokens=tokens, tokens_at=NOW - timedelta(seconds=idle)
    )
    if hold is not None:
        assert hold.reason == "rate_limited" and hold.until is not None
        assert NOW < hold.until <= NOW + timedelta(seconds=1 / rate)

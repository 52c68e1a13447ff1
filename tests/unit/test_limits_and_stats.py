"""Pure logic of limits and stats: the quota's Retry-After, an app's hold, period
alignment, sums and rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from mailer.delivery.limits import Hold, hold_at, seconds_until_next_utc_day
from mailer.stats.rollups import STEP, Counts, Period, aligned, as_json, total

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


@given(st.lists(st.lists(st.integers(0, 10**9), min_size=16, max_size=16), max_size=30))
def test_the_total_is_the_sum_of_its_periods(values: list[list[int]]) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    periods = [Period(start + timedelta(hours=i), Counts(*v)) for i, v in enumerate(values)]
    summed = total(periods)
    for index, name in enumerate(Counts._fields):
        assert getattr(summed, name) == sum(v[index] for v in values)


def test_rates_are_shares_of_sent_and_delivered_and_none_over_nothing() -> None:
    counts = Counts(
        sent=10,
        delivered=8,
        bounced_hard=1,
        bounced_soft=1,
        opened_unique=4,
        opened_human_unique=2,
        clicked_unique=1,
        complained=0,
    )
    rates = counts.rates()
    assert rates["delivered"] == 0.8 and rates["bounced"] == 0.2 and rates["hard_bounced"] == 0.1
    assert rates["opened"] == 0.5 and rates["opened_human"] == 0.25 and rates["clicked"] == 0.125
    assert rates["complained"] == 0.0
    assert all(value is None for value in Counts().rates().values())
    shown = as_json(counts)
    assert shown["bounced_hard"] == 1 and shown["rates"] == rates


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

"""The dashboard's pure parts: passwords, the SVG chart, cursors, bounds and counts."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from mailer.dashboard.chart import ChartLayout, bar_chart, bars, nice_ceiling
from mailer.dashboard.operators import Role
from mailer.dashboard.pages import (
    BOUNCE_RATE,
    COMPLAINT_RATE,
    PERIODS,
    MessageCursor,
    Summary,
    message_actions,
    prefix_successor,
    wait_reason,
)
from mailer.dashboard.passwords import hash_password, verify_password
from mailer.dashboard.rows import JobHeader, QueueWait
from mailer.dashboard.sessions import Operator, tokens_match
from mailer.dashboard.trail import MASK, masked
from mailer.dashboard.web import safe_next
from mailer.delivery.limits import Hold
from mailer.ids import uuid7, uuid7_floor
from mailer.stats.rollups import Counts


def test_a_password_verifies_against_its_hash_only() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$5$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horse!", stored)
    assert hash_password("correct horse") != stored  # a fresh salt every time


def test_a_malformed_stored_hash_verifies_nothing() -> None:
    for stored in ("", "plain", "bcrypt$1$2$3$abc$def", "scrypt$x$8$1$abc$def"):
        assert not verify_password("anything", stored)


def test_tokens_are_compared_whole() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("abc", None)
    assert not tokens_match("abc", "")


def test_after_login_only_a_dashboard_path_is_followed() -> None:
    assert safe_next("/dashboard/messages?x=1") == "/dashboard/messages?x=1"
    for elsewhere in ("https://evil.example/", "//evil.example/dashboard", "/docs", None, ""):
        assert safe_next(elsewhere) == "/dashboard"


@given(st.integers(min_value=0, max_value=10**12))
def test_the_axis_top_is_a_round_number_at_or_above_the_value(value: int) -> None:
    top = nice_ceiling(value)
    assert top >= max(value, 1)
    assert str(top).lstrip("125").strip("0") == "" and str(top)[0] in "125"
    assert top < max(value, 1) * 5 + 1  # never more than five times too tall


_counts = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=40)


@given(_counts, _counts)
def test_every_bar_stands_inside_the_plot_and_in_proportion(
    first: list[int], second: list[int]
) -> None:
    size = min(len(first), len(second))
    series = {"accepted": first[:size], "bounced": second[:size]}
    layout = ChartLayout()
    drawn, top = bars([str(i) for i in range(size)], series, layout)
    assert len(drawn) == sum(1 for v in first[:size] + second[:size] if v > 0)
    for bar in drawn:
        assert layout.left <= bar.x and bar.x + bar.width <= layout.width - layout.right + 1e-6
        assert layout.top - 1e-6 <= bar.y
        assert abs(bar.y + bar.height - (layout.top + layout.plot_height)) < 1e-6
        assert abs(bar.height - layout.plot_height * bar.value / top) < 1e-6


def test_the_chart_is_well_formed_svg_with_a_bar_per_value() -> None:
    svg = bar_chart(["09:00", "10:00", "<b>"], {"sent": [3, 0, 5]}, title="Sent & more")
    root = ET.fromstring(str(svg))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 2 and "<b>" not in str(svg)


def test_a_message_cursor_survives_the_url() -> None:
    cursor = MessageCursor(uuid7(), 3)
    assert MessageCursor.decode(cursor.encode()) == cursor


@given(st.text(min_size=1, max_size=10), st.text(max_size=10))
def test_every_address_with_the_prefix_lies_below_its_successor(prefix: str, rest: str) -> None:
    upper = prefix_successor(prefix)
    assert upper is not None and prefix <= prefix + rest < upper


def test_uuid7_floor_bounds_the_ids_made_from_that_moment() -> None:
    before = uuid7_floor(datetime.now(UTC) - timedelta(milliseconds=5))
    made = uuid7()
    after = uuid7_floor(datetime.now(UTC) + timedelta(milliseconds=5))
    assert before.bytes < made.bytes < after.bytes


def test_rollup_counts_add_up_to_the_overview_columns_and_rated_levels() -> None:
    counts = Counts(
        accepted=110, sent=100, delivered=90, bounced_hard=4, bounced_soft=3, blocked=2,
        complained=1, opened=50, opened_unique=30, clicked=9, clicked_unique=6,
    )  # fmt: skip
    summary = Summary.of("shop", counts)
    assert summary.columns == {
        "accepted": 110,
        "sent": 100,
        "delivered": 90,
        "bounced": 7,
        "blocked": 2,
        "complained": 1,
        "opened": 30,
        "clicked": 6,
    }
    assert summary.bounce_rate == 0.07 and summary.bounce_level == "warn"
    assert summary.complaint_rate == round(1 / 90, 4) and summary.complaint_level == "risk"
    assert Summary.of("blog", Counts()).bounce_level == "none"


def test_rates_against_use_send_thresholds() -> None:
    assert [BOUNCE_RATE.level(r) for r in (None, 0.0, 0.0499, 0.05, 0.0999, 0.1, 1.0)] == [
        "none", "ok", "ok", "warn", "warn", "risk", "risk",
    ]  # fmt: skip
    assert [COMPLAINT_RATE.level(r) for r in (0.0, 0.0009, 0.001, 0.0049, 0.005)] == [
        "ok", "ok", "warn", "warn", "risk",
    ]  # fmt: skip


def _row(values: dict[str, object]) -> JobHeader:
    """A job header without a database: the same attribute access."""
    return cast(JobHeader, SimpleNamespace(**values))


def test_an_admin_may_unsuppress_a_suppressed_recipient_and_a_viewer_nothing() -> None:
    job = _row({"id": uuid7(), "app_id": uuid.uuid4(), "state": "done"})
    status = {
        "recipients": [
            {"email": "ann@example.org", "status": "suppressed"},
            {"email": "bob@example.org", "status": "sent"},
        ]
    }
    admin = Operator(uuid.uuid4(), "ann", Role.ADMIN, "t")
    viewer = Operator(uuid.uuid4(), "vic", Role.VIEWER, "t")
    [action] = message_actions(admin, job, status)
    assert action.label == "Unsuppress ann@example.org"
    assert "email=ann%40example.org" in action.href and str(job.app_id) in action.href
    assert message_actions(viewer, job, status) == []


def test_a_queued_job_may_be_canceled_and_one_with_failed_recipients_retried() -> None:
    admin = Operator(uuid.uuid4(), "ann", Role.ADMIN, "t")
    viewer = Operator(uuid.uuid4(), "vic", Role.VIEWER, "t")
    queued = _row({"id": uuid7(), "app_id": uuid.uuid4(), "state": "queued"})
    waiting = {"recipients": [{"email": "ann@example.org", "status": "queued"}]}
    [cancel] = message_actions(admin, queued, waiting)
    assert cancel.href == f"/dashboard/messages/{queued.id}/cancel"
    failed = {"recipients": [{"email": "ann@example.org", "status": "failed"}]}
    for state in ("done", "failed"):
        job = _row({"id": uuid7(), "app_id": uuid.uuid4(), "state": state})
        [retry] = message_actions(admin, job, failed)
        assert retry.href == f"/dashboard/messages/{job.id}/retry"
        assert message_actions(viewer, job, failed) == []
    sent = _row({"id": uuid7(), "app_id": uuid.uuid4(), "state": "done"})
    assert (
        message_actions(admin, sent, {"recipients": [{"email": "a@b.c", "status": "sent"}]}) == []
    )


def _wait(ahead: bool, attempted: bool) -> QueueWait:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = now + (timedelta(minutes=5) if ahead else -timedelta(minutes=5))
    return cast(
        QueueWait,
        SimpleNamespace(
            ahead=ahead, attempted=attempted, first_run_at=first, oldest_created_at=first, now=now
        ),
    )


def test_the_queue_page_says_why_jobs_wait_as_the_status_document_does() -> None:
    paused = Hold("paused", None)
    limited = Hold("rate_limited", datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert wait_reason(_wait(ahead=True, attempted=False), None) == "scheduled"
    assert wait_reason(_wait(ahead=True, attempted=True), paused) == "retrying"
    assert wait_reason(_wait(ahead=True, attempted=False), paused) == "scheduled"
    assert wait_reason(_wait(ahead=False, attempted=False), None) == "due"
    assert wait_reason(_wait(ahead=False, attempted=True), None) == "retrying"
    assert wait_reason(_wait(ahead=False, attempted=False), paused) == "paused"
    assert wait_reason(_wait(ahead=False, attempted=True), limited) == "rate_limited"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_the_overview_buckets_fall_on_whole_hours_and_days_and_end_with_now(
    naive: datetime,
) -> None:
    now = naive.replace(tzinfo=UTC)
    for period in PERIODS.values():
        start, end = period.span(now)
        assert start.timestamp() % period.step.total_seconds() == 0
        assert end - start == period.length
        assert end - period.step <= now < end


def test_credentials_in_a_raw_event_are_masked_and_the_rest_kept() -> None:
    event = {
        "event": "click",
        "MessageID": 2**60 + 3,
        "url": "https://shop.example/reset?token=abc123&step=2&apiKey=k",
        "Payload": {"password": "hunter2", "order": "42", "nested": [{"Auth": "x"}]},
        "callback": "https://user:pw@hooks.example/in",
        "agent": "Mozilla/5.0",
    }
    shown = masked(event)
    assert shown["event"] == "click" and shown["MessageID"] == 2**60 + 3
    assert shown["url"] == f"https://shop.example/reset?token={MASK}&step=2&apiKey={MASK}"
    assert shown["Payload"] == {"password": MASK, "order": "42", "nested": [{"Auth": MASK}]}
    assert shown["callback"] == f"https://{MASK}@hooks.example/in"
    assert shown["agent"] == "Mozilla/5.0"
    assert "abc123" not in str(shown) and "hunter2" not in str(shown) and "pw@" not in str(shown)

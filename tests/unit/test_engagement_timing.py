"""Timing: a scanner's click burst right after delivery is a machine; a fast person is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.config import Settings
from mailer.tracking.columns import EventColumns, columns_of
from mailer.tracking.engagement import (
    DEFAULT_SCANNER_SECONDS,
    MachineReason,
    timing_reason,
)
from mailer.tracking.parse import parse_event
from mailer.tracking.timing import BodyKey, MessageTiming, candidates, classify

DELIVERED = datetime(2026, 12, 3, 9, 30, 0, tzinfo=UTC)  # the `sent` event's time
SCANNER = MachineReason.SCANNER_TIMING
RESET = "https://shop.example/reset?token=4f1c"
ORDER = "https://shop.example/orders/42"
HELP = "https://shop.example/help"
UNSUB = "https://shop.example/unsubscribe?u=91"


def at(seconds: float) -> datetime:
    return DELIVERED + timedelta(seconds=seconds)


# (what happened, event type, its time after delivery, the message's clicks, the reason)
SAMPLES = [
    (
        "Safe Links / Mimecast follow every link of the message one second after delivery",
        "click",
        1,
        [(ORDER, 1), (HELP, 1), (UNSUB, 1)],
        SCANNER,
    ),
    (
        "two links a second apart, soon after delivery: a fast person, or a burst that "
        "straddles a second boundary (counted human)",
        "click",
        2,
        [(ORDER, 2), (HELP, 3)],
        None,
    ),
    (
        "a before-queue scanner clicking before Mailjet saw the 250",
        "click",
        -1,
        [(ORDER, -1), (HELP, -1)],
        SCANNER,
    ),
    (
        "the pixel fetched by the same scanner in the burst's second",
        "open",
        1,
        [(ORDER, 1), (HELP, 1)],
        SCANNER,
    ),
    ("a person clicking a password reset the moment it lands", "click", 2, [(RESET, 2)], None),
    ("a double click on the same link", "click", 2, [(RESET, 2), (RESET, 2)], None),
    ("a person reading two links forty seconds apart", "click", 45, [(ORDER, 5), (HELP, 45)], None),
    (
        "two links within a second, but an hour after delivery (tabs opened by a person)",
        "click",
        3600,
        [(ORDER, 3600), (HELP, 3600)],
        None,
    ),
    ("an open on delivery with no clicks (timing alone is not enough)", "open", 0, [], None),
    ("an open a second after a lone click", "open", 2, [(RESET, 1)], None),
    ("a click whose link Mailjet did not report", "click", 1, [(None, 1), (None, 1)], None),
]


@pytest.mark.parametrize(
    ("what", "event_type", "seconds", "clicks", "reason"), SAMPLES, ids=[s[0] for s in SAMPLES]
)
def test_samples(
    what: str,
    event_type: str,
    seconds: float,
    clicks: list[tuple[str | None, float]],
    reason: str | None,
) -> None:
    timed = [(url, at(t)) for url, t in clicks]
    assert timing_reason(event_type, at(seconds), DELIVERED, timed) == reason, what


def test_nothing_without_a_delivery_time_or_with_timing_off() -> None:
    burst = [(ORDER, at(1)), (HELP, at(1))]
    assert timing_reason("click", at(1), None, burst) is None
    assert timing_reason("click", at(1), DELIVERED, burst, window=0) is None
    assert timing_reason("sent", at(1), DELIVERED, burst) is None
    assert timing_reason("click", at(1), DELIVERED, burst, window=0.5) is None
    assert timing_reason("click", at(1), DELIVERED, burst, window=1) == SCANNER


def test_the_setting_defaults_to_the_rule_s_default() -> None:
    assert Settings().scanner_click_seconds == DEFAULT_SCANNER_SECONDS


_urls = st.sampled_from([ORDER, HELP, UNSUB, RESET, None])
_offsets = st.integers(min_value=-30, max_value=120)
_clicks = st.lists(st.tuples(_urls, _offsets), max_size=8)
_types = st.sampled_from(["open", "click"])


@given(_types, _offsets, _clicks, st.integers(min_value=0, max_value=10_000))
def test_later_never_makes_a_person_a_machine(
    event_type: str, offset: int, clicks: list[tuple[str | None, int]], later: int
) -> None:
    """The same engagement, shifted later relative to delivery, is never more machine."""
    before = timing_reason(event_type, at(offset), DELIVERED, [(u, at(t)) for u, t in clicks])
    after = timing_reason(
        event_type, at(offset + later), DELIVERED, [(u, at(t + later)) for u, t in clicks]
    )
    if before is None:
        assert after is None


@given(_types, _offsets, st.lists(_offsets, max_size=8), _urls)
def test_one_link_is_never_a_burst(
    event_type: str, offset: int, times: list[int], url: str | None
) -> None:
    """However fast, clicks on a single link (a password reset) stay a person's."""
    assert timing_reason(event_type, at(offset), DELIVERED, [(url, at(t)) for t in times]) is None


@given(_types, _offsets, _clicks, st.floats(0, 600), st.floats(0, 600))
def test_a_wider_window_only_adds_machines(
    event_type: str, offset: int, clicks: list[tuple[str | None, int]], a: float, b: float
) -> None:
    narrow, wide = sorted((a, b))
    timed = [(u, at(t)) for u, t in clicks]
    if timing_reason(event_type, at(offset), DELIVERED, timed, window=narrow) is not None:
        assert timing_reason(event_type, at(offset), DELIVERED, timed, window=wide) == SCANNER


# The body-level half (tracking/timing.py): which events of a body are looked up, and how
# a body's own `sent` events and clicks join what is stored of the message.

MESSAGE_ID = 1_152_921_600_000_000_123  # > 2**53, as Mailjet's are
T = int(DELIVERED.timestamp())


def body(*events: dict[str, object]) -> EventColumns:
    now = DELIVERED + timedelta(hours=1)
    return columns_of([parse_event(e, now=now) for e in events])


def mj(
    kind: str, seconds: int, message_id: int = MESSAGE_ID, **fields: object
) -> dict[str, object]:
    event: dict[str, object] = {
        "event": kind,
        "time": T + seconds,
        "MessageID": message_id,
        "email": "ann@example.org",
        "CustomID": "",
    }
    if kind in ("open", "click"):
        event.update(agent=CHROME, ip="198.51.100.7")
    event.update(fields)
    return event


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def stored_as(
    sent: datetime | None,
    accepted: datetime | None,
    clicks: frozenset[tuple[str, datetime]] = frozenset(),
) -> dict[BodyKey, MessageTiming]:
    """What is stored of the message, as `engagement_context` would find it."""
    return {MESSAGE_ID: MessageTiming(sent, accepted, frozenset(clicks))}


def reasons(columns: EventColumns) -> dict[tuple[str | None, int], str | None]:
    return {
        (kind, int(at.timestamp()) - T): reason
        for kind, at, reason in zip(
            columns.type, columns.occurred_at, columns.machine_reason, strict=True
        )
    }


def test_a_body_without_a_burst_is_not_looked_up() -> None:
    # Ordinary opens and clicks, nearly all the traffic, cost no query.
    columns = body(
        mj("sent", 0),
        mj("open", 1),
        mj("click", 2, url=RESET),
        mj("click", 2, url=RESET),  # a double click: one link
        mj("click", 3, url=HELP),  # another link, but the next second
        mj("open", 30, message_id=MESSAGE_ID + 1),
    )
    assert candidates(columns) == {}
    # Nor a burst whose clicks their User-Agent already names a machine's.
    scanner = "Mimecast-URL-Protect/1.0"
    columns = body(
        mj("click", 1, url=ORDER, agent=scanner), mj("click", 1, url=HELP, agent=scanner)
    )
    assert candidates(columns) == {}


def test_a_burst_is_looked_up_once_per_message_with_its_events() -> None:
    columns = body(
        mj("sent", 0),
        mj("open", 1),
        mj("click", 1, url=ORDER),
        mj("click", 1, url=HELP),
        mj("click", 400, message_id=MESSAGE_ID + 1, url=RESET),
    )
    found = candidates(columns)
    assert list(found) == [MESSAGE_ID]
    assert len(found[MESSAGE_ID]) == 4  # the sent event gives the delivery time
    stored = stored_as(None, at(-5))
    assert reasons(classify(columns, found, stored, 10.0)) == {
        ("sent", 0): None,
        ("open", 1): SCANNER,
        ("click", 1): SCANNER,
        ("click", 400): None,
    }
    # A message that is not ours (no stored entry) is left alone.
    assert classify(columns, found, {}, 10.0) is columns


def test_stored_clicks_count_towards_the_burst() -> None:
    columns = body(mj("open", 1), mj("click", 1, url=ORDER))
    found: dict[BodyKey, list[int]] = {MESSAGE_ID: [0, 1]}
    # The message's other link was clicked in an earlier post, in the same second.
    stored = stored_as(at(0), at(-5), frozenset({(HELP, at(1))}))
    assert set(reasons(classify(columns, found, stored, 10.0)).values()) == {SCANNER}
    alone = stored_as(at(0), at(-5))
    assert set(reasons(classify(columns, found, alone, 10.0)).values()) == {None}


def test_before_the_sent_event_the_accept_time_stands_in() -> None:
    columns = body(mj("click", 8, url=ORDER), mj("click", 8, url=HELP))
    found = candidates(columns)
    accepted_just_before = stored_as(None, at(0))
    assert set(reasons(classify(columns, found, accepted_just_before, 10.0)).values()) == {SCANNER}
    # A stored `sent` event is preferred to the accept time.
    delivered_long_before = stored_as(at(-600), at(0))
    assert set(reasons(classify(columns, found, delivered_long_before, 10.0)).values()) == {None}

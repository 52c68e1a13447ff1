"""UUIDv7: version and variant bits, and ids that sort by creation time."""

from __future__ import annotations

import time
import uuid

from mailer.ids import uuid7


def test_version_variant_and_timestamp() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_ids_are_unique_and_ordered_across_milliseconds() -> None:
    first = [uuid7() for _ in range(1000)]
    time.sleep(0.002)
    second = [uuid7() for _ in range(1000)]
    assert len(set(first + second)) == 2000
    assert max(first) < min(second)

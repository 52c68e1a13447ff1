"""Why a job waits: the one pure function `/status` asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailer.delivery.job_status import QueueFacts, recipient_status_of, waiting_of
from mailer.delivery.limits import Hold

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
AHEAD = NOW + timedelta(minutes=5)
PAST = NOW - timedelta(seconds=1)
ERROR = {"status": 500, "message": "Mailjet answered 500"}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            QueueFacts("queued", AHEAD, 0, None),
            {"reason": "scheduled", "until": AHEAD, "error": None},
        ),
        (
            QueueFacts("queued", AHEAD, 2, ERROR),
            {"reason": "retrying", "until": AHEAD, "error": ERROR},
        ),
        # Due again, not yet claimed: still retrying after that error, until no longer known.
        (
            QueueFacts("queued", PAST, 2, ERROR),
            {"reason": "retrying", "until": None, "error": ERROR},
        ),
        # A lease that expired: attempted, no error recorded.
        (QueueFacts("queued", PAST, 1, None), {"reason": "retrying", "until": None, "error": None}),
        (QueueFacts("queued", PAST, 0, None), None),  # due now: about to be claimed
        # Due, but the app is held back: its pause, or its rate until its next email.
        (
            QueueFacts("queued", PAST, 0, None, Hold("paused", None)),
            {"reason": "paused", "until": None, "error": None},
        ),
        (
            QueueFacts("queued", PAST, 2, ERROR, Hold("rate_limited", AHEAD)),
            {"reason": "rate_limited", "until": AHEAD, "error": ERROR},
        ),
        # Scheduled or backing off: that comes first; the hold may be gone by then.
        (
            QueueFacts("queued", AHEAD, 0, None, Hold("paused", None)),
            {"reason": "scheduled", "until": AHEAD, "error": None},
        ),
        (QueueFacts("queued", NOW, 0, None), None),
        (QueueFacts("sending", AHEAD, 1, None), None),
        (QueueFacts("done", PAST, 1, None), None),
        (QueueFacts("failed", PAST, 3, ERROR), None),
        (QueueFacts("canceled", AHEAD, 0, None), None),
    ],
)
def test_waiting_of(facts: QueueFacts, expected: dict[str, Any] | None) -> None:
    assert waiting_of(facts, NOW) == expected


def test_a_canceled_jobs_unsent_recipients_show_canceled() -> None:
    assert recipient_status_of("canceled", "queued") == "canceled"
    assert recipient_status_of("canceled", "accepted") == "accepted"
    assert recipient_status_of("queued", "queued") == "queued"

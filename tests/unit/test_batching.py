"""Packing claimed jobs into Send API calls, and matching Mailjet's answer back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mailer.delivery.batching import (
    ClaimedJob,
    Recipient,
    build_message,
    match_accepted,
    pack,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(recipients: list[tuple[str, str, str]]) -> ClaimedJob:
    message: dict[str, Any] = {
        "From": {"Email": "a@shop.example"},
        "Subject": "s",
        "TextPart": "t",
    }
    for kind, key in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")):
        group = [{"Email": e.upper()} for k, e, _ in recipients if k == kind]
        if group:
            message[key] = group
    return ClaimedJob(
        id=uuid.uuid4(),
        app_id=uuid.uuid4(),
        message=message,
        attempts=1,
        created_at=NOW,
        needs_lookup=False,
        recipients=[Recipient(i, k, e, s) for i, (k, e, s) in enumerate(recipients)],
    )


def one_recipient_jobs(n: int) -> list[ClaimedJob]:
    return [job([("to", f"u{i}@example.org", "queued")]) for i in range(n)]


@given(st.lists(st.integers(1, 50), max_size=200))
def test_pack_respects_the_limit_and_keeps_every_job_once(sizes: list[int]) -> None:
    jobs = [
        job([("to", f"j{n}r{i}@x.org", "queued") for i in range(s)]) for n, s in enumerate(sizes)
    ]
    calls = pack(jobs)
    assert all(sum(len(j.sendable()) for j in call) <= 50 for call in calls)
    packed = [j.id for call in calls for j in call]
    assert sorted(packed) == sorted(j.id for j in jobs)
    # Within a call, claim order is kept.
    order = {j.id: i for i, j in enumerate(jobs)}
    assert all([order[j.id] for j in call] == sorted(order[j.id] for j in call) for call in calls)


def test_pack_120_single_recipient_jobs_into_three_calls() -> None:
    assert [len(call) for call in pack(one_recipient_jobs(120))] == [50, 50, 20]


def test_build_message_drops_suppressed_recipients_and_tags_the_job() -> None:
    claimed = job(
        [
            ("to", "a@x.org", "queued"),
            ("to", "b@x.org", "suppressed"),
            ("bcc", "c@x.org", "suppressed"),
        ]
    )
    message = build_message(claimed)
    assert message["To"] == [{"Email": "A@X.ORG"}]
    assert "Bcc" not in message
    assert message["CustomID"] == str(claimed.id)
    assert len(message["CustomID"]) <= 64
    assert "CustomID" not in claimed.message  # the stored message is not changed


def test_every_to_suppressed_means_nothing_to_send_with() -> None:
    claimed = job([("to", "a@x.org", "suppressed"), ("cc", "b@x.org", "queued")])
    assert claimed.sendable() and not claimed.has_to_recipient()


def test_match_accepted_is_case_insensitive_and_kind_aware() -> None:
    claimed = job([("to", "a@x.org", "queued"), ("cc", "b@x.org", "queued")])
    matched = match_accepted(
        claimed,
        [("B@X.ORG", "cc", 2**60 + 2, "u2"), ("A@x.org", "to", 2**60 + 1, "u1")],
    )
    assert [(m.position, m.message_id) for m in matched] == [(0, 2**60 + 1), (1, 2**60 + 2)]


def test_a_recipient_missing_from_the_answer_is_accepted_without_an_id() -> None:
    claimed = job([("to", "a@x.org", "queued"), ("to", "b@x.org", "queued")])
    matched = match_accepted(claimed, [("a@x.org", "to", 7, "u")])
    assert [(m.position, m.message_id) for m in matched] == [(0, 7), (1, None)]

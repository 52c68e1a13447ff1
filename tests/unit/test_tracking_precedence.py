from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.tracking.precedence import (
    LOCAL_FINAL_STATUSES,
    STATUS_RANK,
    EventType,
    RecipientStatus,
    derive_job_status,
    status_for_event,
)

S = RecipientStatus
statuses = st.sampled_from(list(RecipientStatus))
event_statuses = st.sampled_from(
    [status_for_event(t, hard_bounce=h) for t in EventType for h in (True, False)]
)


def test_rank_covers_every_status_once() -> None:
    assert set(STATUS_RANK) == set(RecipientStatus)
    assert sorted(STATUS_RANK.values()) == list(range(len(RecipientStatus)))


def test_precedence_chain() -> None:
    chain = [
        S.QUEUED, S.ACCEPTED, S.DEFERRED, S.SENT, S.OPENED, S.CLICKED,
        S.UNSUBSCRIBED, S.SPAM, S.BOUNCED, S.BLOCKED,
    ]  # fmt: skip
    ranks = [STATUS_RANK[s] for s in chain]
    assert ranks == sorted(ranks)
    for local in LOCAL_FINAL_STATUSES:
        assert STATUS_RANK[S.QUEUED] < STATUS_RANK[local] < STATUS_RANK[S.ACCEPTED]


@pytest.mark.parametrize(
    ("event_type", "hard_bounce", "expected"),
    [
        (EventType.SENT, None, S.SENT),
        (EventType.OPEN, None, S.OPENED),
        (EventType.CLICK, None, S.CLICKED),
        (EventType.SPAM, None, S.SPAM),
        (EventType.BLOCKED, None, S.BLOCKED),
        (EventType.UNSUB, None, S.UNSUBSCRIBED),
        (EventType.BOUNCE, True, S.BOUNCED),
        (EventType.BOUNCE, False, S.DEFERRED),
        (EventType.BOUNCE, None, S.DEFERRED),
        (EventType.SENT, True, S.SENT),  # hard_bounce ignored for non-bounce events
    ],
)
def test_status_for_event(
    event_type: EventType, hard_bounce: bool | None, expected: RecipientStatus
) -> None:
    assert status_for_event(event_type, hard_bounce=hard_bounce) is expected


def test_enum_values_are_the_wire_strings() -> None:
    assert [t.value for t in EventType] == [
        "sent", "open", "click", "bounce", "spam", "blocked", "unsub",
    ]  # fmt: skip
    assert S("opened") is S.OPENED
    assert str(S.OPENED) == "opened"


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        ([S.OPENED], S.OPENED),
        ([S.OPENED, S.SENT, S.CLICKED], S.SENT),
        ([S.QUEUED, S.SENT], S.QUEUED),
        ([S.SUPPRESSED, S.SENT], S.SENT),
        ([S.FAILED, S.BOUNCED], S.BOUNCED),
        ([S.FAILED, S.SUPPRESSED], S.FAILED),
        ([S.SUPPRESSED, S.SUPPRESSED], S.SUPPRESSED),
        ([S.FAILED], S.FAILED),
        ([S.DEFERRED, S.OPENED], S.DEFERRED),
    ],
)
def test_derive_job_status(recipients: list[RecipientStatus], expected: RecipientStatus) -> None:
    assert derive_job_status(recipients) is expected


def test_derive_job_status_rejects_empty() -> None:
    with pytest.raises(ValueError):
        derive_job_status([])


@given(st.lists(statuses, min_size=1), st.randoms(use_true_random=False))
def test_job_status_is_order_independent(
    recipients: list[RecipientStatus], rnd: random.Random
) -> None:
    shuffled = list(recipients)
    rnd.shuffle(shuffled)
    assert derive_job_status(shuffled) is derive_job_status(recipients)


@given(st.lists(statuses, min_size=1))
def test_job_status_is_least_advanced_that_went(recipients: list[RecipientStatus]) -> None:
    job = derive_job_status(recipients)
    assert job in recipients
    went = [s for s in recipients if s not in LOCAL_FINAL_STATUSES]
    if went:
        assert job not in LOCAL_FINAL_STATUSES
        assert all(STATUS_RANK[job] <= STATUS_RANK[s] for s in went)
    else:
        assert job in LOCAL_FINAL_STATUSES


@given(st.lists(statuses, min_size=1), st.data())
def test_job_status_never_moves_backward(
    recipients: list[RecipientStatus], data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(recipients) - 1))
    event = data.draw(event_statuses)
    before = derive_job_status(recipients)
    advanced = list(recipients)
    advanced[index] = max(advanced[index], event, key=STATUS_RANK.__getitem__)  # moved on
    after = derive_job_status(advanced)
    if recipients[index] in LOCAL_FINAL_STATUSES:
        # A recipient we had written off turned out to be at Mailjet: it now counts, and may
        # legitimately be the least advanced one.
        assert after is min(
            (s for s in advanced if s not in LOCAL_FINAL_STATUSES), key=STATUS_RANK.__getitem__
        )
    else:
        assert STATUS_RANK[after] >= STATUS_RANK[before]


def test_revived_failed_recipient_can_pull_job_back() -> None:
    assert derive_job_status([S.FAILED, S.OPENED]) is S.OPENED
    assert derive_job_status([S.DEFERRED, S.OPENED]) is S.DEFERRED  # failed, then deferred

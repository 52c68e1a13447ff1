"""What the metrics count: Mailjet answers classified, counts held until commit, the switch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from mailer.delivery.send import answer_outcome, call_outcome
from mailer.mailjet import (
    MailjetConnectionError,
    MailjetError,
    MailjetRateLimited,
    MailjetRequestRejected,
    MailjetServerError,
    MailjetTimeout,
    MailjetUnexpectedResponse,
    MessageAccepted,
    MessageError,
    MessageRejected,
    SendResponse,
)
from mailer.metrics import count
from mailer.metrics.families import MAILJET_CALL_OUTCOMES


@pytest.fixture(autouse=True)
def counting() -> Iterator[None]:
    count.set_enabled(True)
    yield
    count.set_enabled(True)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (MailjetRequestRejected("no", status=401), "401_403"),
        (MailjetRequestRejected("no", status=403), "401_403"),
        (MailjetRequestRejected("bad", status=400, code="mj-0002"), "4xx"),
        (MailjetRateLimited("slow down"), "429"),
        (MailjetServerError("oops", status=503), "5xx"),
        (MailjetTimeout("late"), "timeout"),
        (MailjetConnectionError("refused", outcome_unknown=False), "connection"),
        (MailjetUnexpectedResponse("html", status=200), "unexpected"),
        (MailjetError("other"), "unexpected"),
    ],
)
def test_a_failed_call_is_counted_by_what_failed(error: MailjetError, outcome: str) -> None:
    assert call_outcome(error) == outcome
    assert outcome in MAILJET_CALL_OUTCOMES


def test_an_answer_is_success_partial_or_4xx_by_its_messages() -> None:
    accepted = MessageAccepted(custom_id="j", recipients=[])
    rejected = MessageRejected(errors=[MessageError("send-0003", "bad", ["To"], 400)])
    assert answer_outcome(SendResponse(200, [accepted, accepted])) == "success"
    assert answer_outcome(SendResponse(400, [accepted, rejected])) == "partial"
    assert answer_outcome(SendResponse(400, [rejected])) == "4xx"


def _events(kind: str, outcome: str, app: str = "") -> float:
    labels = {"type": kind, "outcome": outcome, "app": app}
    return REGISTRY.get_sample_value("mailer_mailjet_events_total", labels) or 0.0


def test_a_transaction_s_counts_appear_only_once_committed() -> None:
    app = uuid.uuid4()
    pending = count.Pending()
    pending.event("bounce", "applied", app, 2)
    pending.event("made-up-type", "unknown_message", None)
    pending.suppressed(["hard_bounce"])
    before = REGISTRY.get_sample_value("mailer_suppressions_added_total", {"reason": "hard_bounce"})
    assert _events("bounce", "applied", str(app)) == 0
    pending.commit()
    assert _events("bounce", "applied", str(app)) == 2
    assert _events("other", "unknown_message") >= 1  # an unknown type keeps the label bounded
    after = REGISTRY.get_sample_value("mailer_suppressions_added_total", {"reason": "hard_bounce"})
    assert after == (before or 0) + 1


def test_with_metrics_off_nothing_is_counted() -> None:
    app = uuid.uuid4()
    count.set_enabled(False)
    count.enqueued(app, "accepted")
    count.recipients(app, "accepted", 3)
    pending = count.Pending()
    pending.event("sent", "applied", app)
    pending.commit()
    count.flush()
    labels = {"app": str(app), "outcome": "accepted"}
    assert REGISTRY.get_sample_value("mailer_emails_enqueued_total", labels) is None
    assert _events("sent", "applied", str(app)) == 0
    count.set_enabled(True)
    count.enqueued(app, "accepted", 2)
    count.flush()
    assert REGISTRY.get_sample_value("mailer_emails_enqueued_total", labels) == 2


@given(st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), max_size=60))
def test_observing_many_at_once_gives_the_samples_observing_each_gives(values: list[float]) -> None:
    buckets = (0.1, 1.0, 5.0, 60.0)
    one_by_one = Histogram("h_each", "h", buckets=buckets, registry=CollectorRegistry())
    at_once = Histogram("h_many", "h", buckets=buckets, registry=CollectorRegistry())
    for value in values:
        one_by_one.observe(value)
    count.observe_many(at_once, values)

    def samples(histogram: Histogram) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name.split("_", 2)[-1], s.labels, s.value)
            for family in histogram.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    many, each = samples(at_once), samples(one_by_one)
    assert [(name, labels) for name, labels, _ in many] == [(n, lb) for n, lb, _ in each]
    assert [v for _, _, v in many] == pytest.approx([v for _, _, v in each])

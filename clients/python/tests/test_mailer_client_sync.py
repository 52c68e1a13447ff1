"""The sync client against a scripted local server: bodies, keys, retries, errors, pages."""

from __future__ import annotations

import random
import socket

import pytest

from conftest import Scripted
from mailer_client import (
    Client,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    ServiceUnavailableError,
    TransportError,
)

EMAIL = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "b@example.org"}],
    "subject": "Hi",
    "text": "Hello",
}


def client(url: str, sleeps: list[float], **options: object) -> Client:
    policy = options.pop("retry", RetryPolicy(rng=random.Random(1)))
    assert isinstance(policy, RetryPolicy)
    return Client(url, "mk_test", retry=policy, sleep=sleeps.append, timeout=5)


def test_send_posts_the_email_with_a_fresh_key_and_returns_the_job_id(scripted: Scripted) -> None:
    scripted.answer(202, {"job_id": "j1", "status": "queued"})
    scripted.answer(202, {"job_id": "j2", "status": "queued"})
    with client(scripted.url, []) as mailer:
        assert mailer.send(EMAIL) == "j1"
        assert (
            mailer.send(
                from_="Shop <noreply@shop.example>",
                to=["ann@example.org", {"email": "c@x.org"}],
                subject="S",
                text="T",
            )
            == "j2"
        )
    first, second = scripted.received
    assert (first.method, first.path) == ("POST", "/queue")
    assert first.headers["authorization"] == "Bearer mk_test"
    assert first.json() == EMAIL
    assert second.json() == {
        "from": {"email": "noreply@shop.example", "name": "Shop"},
        "to": [{"email": "ann@example.org"}, {"email": "c@x.org"}],
        "subject": "S",
        "text": "T",
    }
    keys = {first.headers["idempotency-key"], second.headers["idempotency-key"]}
    assert len(keys) == 2 and all(k.startswith("mc_") for k in keys)


def test_a_retried_send_reuses_its_key_and_honours_retry_after(scripted: Scripted) -> None:
    scripted.answer(429, {"error": "rate_limited", "message": "slow down"}, Retry_After="7")
    scripted.answer(503, {"error": "unavailable", "message": "db"})
    scripted.answer(202, {"job_id": "j1", "status": "queued"})
    sleeps: list[float] = []
    with client(scripted.url, sleeps) as mailer:
        assert mailer.send(EMAIL) == "j1"
    assert len({r.headers["idempotency-key"] for r in scripted.received}) == 1
    assert len(scripted.received) == 3
    assert sleeps[0] == 7.0
    assert 0.5 * 1.0 <= sleeps[1] <= 1.0  # backoff 0.5 * 2**1, jittered in the upper half


def test_retry_after_is_bounded(scripted: Scripted) -> None:
    scripted.answer(503, {"error": "unavailable", "message": "later"}, Retry_After="3600")
    scripted.answer(202, {"job_id": "j1", "status": "queued"})
    sleeps: list[float] = []
    policy = RetryPolicy(max_retry_after=20.0)
    with Client(scripted.url, "k", retry=policy, sleep=sleeps.append) as mailer:
        mailer.send(EMAIL, idempotency_key="order-42")
    assert sleeps == [20.0]
    assert {r.headers["idempotency-key"] for r in scripted.received} == {"order-42"}


def test_retries_give_up_with_the_error_body(scripted: Scripted) -> None:
    for _ in range(4):
        scripted.answer(429, {"error": "rate_limited", "message": "slow down"})
    sleeps: list[float] = []
    with client(scripted.url, sleeps) as mailer, pytest.raises(RateLimitedError) as caught:
        mailer.send(EMAIL)
    assert len(scripted.received) == 4 and len(sleeps) == 3
    assert caught.value.status == 429 and caught.value.code == "rate_limited"
    assert caught.value.retryable


def test_other_errors_are_not_retried_and_carry_mailers_body(scripted: Scripted) -> None:
    details = [{"field": "to[0].email", "message": "not a valid email address"}]
    scripted.answer(
        422,
        {"error": "invalid_request", "message": "invalid fields: to[0].email", "details": details},
    )
    scripted.answer(500, {"error": "internal_error", "message": "internal error"})
    scripted.answer(404, {"error": "not_found", "message": "no job x"})
    sleeps: list[float] = []
    with client(scripted.url, sleeps) as mailer:
        with pytest.raises(InvalidRequestError) as invalid:
            mailer.send(EMAIL)
        with pytest.raises(ServiceUnavailableError):
            mailer.send(EMAIL)
        with pytest.raises(NotFoundError) as missing:
            mailer.status("x")
    assert invalid.value.details == details and not invalid.value.retryable
    assert "to[0].email: not a valid email address" in str(invalid.value)
    assert missing.value.body == {"error": "not_found", "message": "no job x"}
    assert sleeps == [] and len(scripted.received) == 3


def test_transport_failures_are_retried_then_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    sleeps: list[float] = []
    with (
        Client(
            f"http://127.0.0.1:{port}", "k", retry=RetryPolicy(max_retries=2), sleep=sleeps.append
        ) as mailer,
        pytest.raises(TransportError),
    ):
        mailer.send(EMAIL)
    assert len(sleeps) == 2


def test_send_batch_sends_one_keyed_request(scripted: Scripted) -> None:
    scripted.answer(
        202, {"jobs": [{"job_id": "a", "status": "queued"}, {"job_id": "b", "status": "queued"}]}
    )
    with client(scripted.url, []) as mailer:
        assert mailer.send_batch([EMAIL, EMAIL]) == ["a", "b"]
    (request,) = scripted.received
    assert request.path == "/queue/batch" and request.json() == {"emails": [EMAIL, EMAIL]}
    assert request.headers["idempotency-key"].startswith("mc_")


def test_feed_follows_the_cursor_until_caught_up(scripted: Scripted) -> None:
    scripted.answer(
        200, {"events": [{"id": "1"}, {"id": "2"}], "next_cursor": "c2", "has_more": True}
    )
    scripted.answer(200, {"events": [{"id": "3"}], "next_cursor": "c3", "has_more": False})
    with client(scripted.url, []) as mailer:
        events = list(mailer.feed(limit=2, types=["open", "click"]))
    assert [e["id"] for e in events] == ["1", "2", "3"]
    first, second = scripted.received
    assert first.path == "/feed?limit=2&type=open%2Cclick"
    assert second.path == "/feed?limit=2&after=c2&type=open%2Cclick"


def test_jobs_pages_pass_filters_and_cursor(scripted: Scripted) -> None:
    scripted.answer(200, {"jobs": [{"job_id": "a"}], "next_cursor": "n1", "has_more": True})
    scripted.answer(200, {"jobs": [], "next_cursor": "n1", "has_more": False})
    with client(scripted.url, []) as mailer:
        pages = list(mailer.jobs_pages(after="n0", limit=1, status="sent"))
    assert [p.next_cursor for p in pages] == ["n1", "n1"]
    assert [r.path for r in scripted.received] == [
        "/jobs?limit=1&after=n0&status=sent",
        "/jobs?limit=1&after=n1&status=sent",
    ]
